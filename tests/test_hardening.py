"""Issue 12, item by item, run as the product runs: ``python -m grmpiqa`` on real files."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from grmpiqa.io.output import name_bytes, unescape_name
from photos import texture

# each test runs the grmpiqa command in a subprocess: seconds to a minute apiece
pytestmark = pytest.mark.slow


def grmpiqa(args, *, hub, cwd=None, stdin=b"", env=None, preexec_fn=None, timeout=300,
            python=sys.executable):
    """``python -m grmpiqa score ARGS``."""
    full_env = {**os.environ, "GRMPIQA_MANIFEST": str(hub.manifest_path), **(env or {})}
    return subprocess.run([python, "-m", "grmpiqa", "score", *map(str, args)], input=stdin,
                          capture_output=True, cwd=cwd, env=full_env, preexec_fn=preexec_fn,
                          timeout=timeout)


def photo(path: Path, seed: int = 0, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(texture(seed)).save(path, fmt)
    return path


def rows(stdout: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(stdout.decode("utf-8"), newline="")))


def stderr(out) -> str:
    return out.stderr.decode("utf-8", "replace")


# 1. unreadable folders ----------------------------------------------------------------------

def _world_readable_copy(tiny_hub, root: Path) -> dict[str, str]:
    """The tiny model, manifest and caches where an unprivileged user can read them."""
    shutil.copytree(tiny_hub.hf_cache, root / "hub", symlinks=True)
    manifest = root / "manifest.json"
    shutil.copy(tiny_hub.manifest_path, manifest)
    home = root / "home"
    home.mkdir()
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o777 if path.is_dir() else 0o644)
    return {"HF_HUB_CACHE": str(root / "hub"), "HF_HOME": str(home), "HOME": str(home),
            "GRMPIQA_CACHE": str(home / "cache"), "GRMPIQA_MANIFEST": str(manifest)}


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def _unprivileged_python(env: dict[str, str]) -> tuple[str, dict[str, str]] | None:
    """An interpreter that ``nobody`` may run (a virtualenv's may live under /root), with
    this environment's packages on its path; None if there is none."""
    import sysconfig

    # the checkout too: an editable install's .pth file is not read from PYTHONPATH
    checkout = str(Path(__file__).resolve().parent.parent)
    paths = os.pathsep.join([os.environ.get("PYTHONPATH", ""), checkout,
                             sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, f"/usr/bin/{minor}", f"/usr/local/bin/{minor}"):
        extra = {} if python == sys.executable else {"PYTHONPATH": paths}
        try:
            probe = subprocess.run([python, "-c", "import grmpiqa.cli, torch"],
                                   env={**os.environ, **env, **extra}, preexec_fn=_as_nobody,
                                   capture_output=True, timeout=120)
        except OSError:
            continue
        if probe.returncode == 0:
            return python, extra
    return None


def test_unreadable_folder_gets_an_error_row_and_exit_1(tiny_hub):
    """Item 1: run as a user who cannot read the folder (root drops to nobody)."""
    root = Path(tempfile.mkdtemp(prefix="grmpiqa-unreadable-"))
    try:
        root.chmod(0o755)
        env = _world_readable_copy(tiny_hub, root / "model")
        python = sys.executable
        if os.geteuid() == 0:
            found = _unprivileged_python(env)
            if found is None:
                pytest.skip("no Python interpreter the user nobody may run")
            python, extra = found
            env.update(extra)
        shoot = root / "shoot"
        photo(shoot / "a.jpg")
        photo(shoot / "locked" / "hidden_from_us.jpg", 1)
        photo(shoot / "z" / "b.jpg", 2)
        for path in [shoot, *shoot.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (shoot / "locked").chmod(0)
        out = grmpiqa([shoot, "-f", "csv"], hub=tiny_hub, env=env, cwd=root, python=python,
                      preexec_fn=_as_nobody if os.geteuid() == 0 else None)
        got = rows(out.stdout)
        assert [r["path"] for r in got] == [str(shoot / "a.jpg"), str(shoot / "locked"),
                                            str(shoot / "z" / "b.jpg")], stderr(out)
        assert got[1]["error"] == "cannot read folder (Permission denied)"
        assert got[0]["score"] and got[2]["score"]
        assert out.returncode == 1
        assert "1 folder could not be read" in stderr(out)
    finally:
        if (root / "shoot" / "locked").exists():  # not made when the test was skipped
            (root / "shoot" / "locked").chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def _beyond_path_max(shoot: Path) -> str:
    """Folders nested deeper than PATH_MAX under ``shoot``, a photo at the bottom."""
    name = "d" * 200
    fd = os.open(shoot, os.O_RDONLY | os.O_DIRECTORY)
    deep = str(shoot)
    while len(deep) <= 4096 + 300:
        os.mkdir(name, dir_fd=fd)
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd, deep = sub, os.path.join(deep, name)
    with os.fdopen(os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
        Image.fromarray(texture(3)).save(f, "JPEG")
    os.close(fd)
    return deep


def test_folder_beyond_path_max_gets_an_error_row(tiny_hub, tmp_path):
    """Item 1: a folder whose path is longer than PATH_MAX cannot be listed: it says so."""
    shoot = tmp_path / "shoot"
    photo(shoot / "a.jpg")
    deep = _beyond_path_max(shoot)
    out = grmpiqa([shoot, "-f", "csv"], hub=tiny_hub)
    got = rows(out.stdout)
    assert out.returncode == 1, stderr(out)
    assert got[0]["path"] == str(shoot / "a.jpg") and got[0]["score"]
    failed = [r for r in got if r["error"]]
    assert len(failed) == 1 and failed[0]["error"] == "cannot read folder (File name too long)"
    assert len(failed[0]["path"]) > 4096 and deep.startswith(failed[0]["path"])


def test_cull_reports_a_folder_it_cannot_read_also_with_quiet(tiny_hub, tmp_path):
    shoot = tmp_path / "shoot"
    photo(shoot / "a.jpg")
    _beyond_path_max(shoot)
    out = subprocess.run(
        [sys.executable, "-m", "grmpiqa", "cull", shoot, "--below", "0.1", "--move-to",
         tmp_path / "rejects", "--dry-run", "-q"], capture_output=True, timeout=300,
        env={**os.environ, "GRMPIQA_MANIFEST": str(tiny_hub.manifest_path)})
    assert out.returncode == 1, stderr(out)
    (skip,) = [r for r in rows(out.stdout) if r["action"] == "skip"]
    assert skip["error"] == "cannot read folder (File name too long)"
    assert "1 problem, see the error rows" in stderr(out)


# 2. -o never destroys data or wastes a run ------------------------------------------------

def test_output_that_is_a_photo_is_refused_before_any_work(tiny_hub, tmp_path):
    shoot = tmp_path / "shoot"
    target = photo(shoot / "574.JPG")
    before = target.read_bytes()
    (tmp_path / "link.csv").symlink_to(target)
    os.link(target, tmp_path / "hard.csv")
    for output, reason in ((target, ".jpg is a photo's extension"),
                           (tmp_path / "link.csv", "is one of the photos to score"),
                           (tmp_path / "hard.csv", "is one of the photos to score")):
        # weights that cannot be loaded: the check must come before the model loads
        out = grmpiqa([shoot, "-o", output], hub=tiny_hub,
                      env={"HF_HUB_CACHE": str(tmp_path / "empty-cache")})
        assert out.returncode == 2 and reason in stderr(out), stderr(out)
        assert stderr(out).count("\n") == 1 and "Traceback" not in stderr(out)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.csv", "link.csv", "shoot"]


def test_cull_log_checked_before_the_model_loads(tiny_hub, tmp_path):
    shoot = tmp_path / "shoot"
    target = photo(shoot / "a.jpg")
    before = target.read_bytes()
    (tmp_path / "taken").mkdir()
    for log, reason in ((target, "photo's extension"), (tmp_path / "taken", "is a folder"),
                        (tmp_path / "log.jsonl", "the log is CSV")):
        out = subprocess.run(
            [sys.executable, "-m", "grmpiqa", "cull", shoot, "--below", "0.5", "--move-to",
             tmp_path / "rejects", "--log", log], capture_output=True, timeout=300,
            env={**os.environ, "GRMPIQA_MANIFEST": str(tiny_hub.manifest_path),
                 "HF_HUB_CACHE": str(tmp_path / "empty-cache")})
        assert out.returncode == 2 and reason in stderr(out), stderr(out)
    assert target.read_bytes() == before and not (tmp_path / "rejects").exists()


def test_output_folder_missing_or_a_folder(tiny_hub, tmp_path):
    shoot = tmp_path / "shoot"
    photo(shoot / "a.jpg")
    out = grmpiqa([shoot, "-o", tmp_path / "new" / "dir" / "out.csv"], hub=tiny_hub)
    assert out.returncode == 0, stderr(out)  # the folder is made, as cull --log does
    assert len(rows((tmp_path / "new" / "dir" / "out.csv").read_bytes())) == 1
    (tmp_path / "taken.csv").mkdir()
    for folder in (shoot, tmp_path / "taken.csv"):
        out = grmpiqa([shoot, "-o", folder, "-f", "csv"], hub=tiny_hub,
                      env={"GRMPIQA_MANIFEST": str(tmp_path / "no-manifest.json")})
        assert out.returncode == 2 and "is a folder" in stderr(out), stderr(out)
    assert not list(tmp_path.rglob("*.part"))


def test_output_extension_decides_the_format_or_is_refused(tiny_hub, tmp_path):
    shoot = tmp_path / "shoot"
    photo(shoot / "a.jpg")
    for name in ("scores.json", "scores.tsv.gz", "scores.txt"):
        out = grmpiqa([shoot, "-o", tmp_path / name], hub=tiny_hub,
                      env={"GRMPIQA_MANIFEST": str(tmp_path / "no-manifest.json")})
        assert out.returncode == 2, stderr(out)
        assert ".csv, .tsv, .jsonl, .ndjson, .parquet, or give --format" in stderr(out)
        assert not (tmp_path / name).exists()
    out = grmpiqa([shoot, "-o", tmp_path / "scores.ndjson"], hub=tiny_hub)
    assert out.returncode == 0 and json.loads((tmp_path / "scores.ndjson").read_text())["score"]
    out = grmpiqa([shoot, "-o", tmp_path / "scores.txt", "-f", "tsv"], hub=tiny_hub)
    assert out.returncode == 0 and (tmp_path / "scores.txt").read_text().startswith("path\t")


# 3. a non-zero exit always says why -------------------------------------------------------

def test_quiet_sidecar_failure_says_what_failed(tiny_hub, tmp_path):
    shoot = tmp_path / "shoot"
    photo(shoot / "a.jpg")
    photo(shoot / "b.jpg", 1)
    (shoot / "b.xmp").write_text("<not xml")
    out = grmpiqa([shoot, "--xmp", "-q", "-o", tmp_path / "scores.csv", "--summary"],
                  hub=tiny_hub)
    text = stderr(out)
    assert out.returncode == 1
    assert "summary: 2 scored, 0 failed, 1 XMP sidecar not written" in text
    assert text.rstrip().endswith("grmpiqa: 1 XMP sidecar could not be written")
    assert "sidecars" not in text


def test_quiet_failed_files_still_say_how_many(tiny_hub, tmp_path):
    shoot = tmp_path / "shoot"
    photo(shoot / "a.jpg")
    (shoot / "broken.jpg").write_bytes(b"\xff\xd8junk")
    (shoot / "empty.png").write_bytes(b"")
    out = grmpiqa([shoot, "-q", "-f", "csv"], hub=tiny_hub)
    assert out.returncode == 1
    assert stderr(out) == "grmpiqa: 2 of 3 files could not be scored\n"


# 5. globs and camera files ----------------------------------------------------------------

def test_glob_extension_matches_any_case_and_empty_pattern_says_so(tiny_hub, tmp_path):
    photo(tmp_path / "shoot" / "day1" / "IMG_0001.JPG", fmt="JPEG")
    photo(tmp_path / "shoot" / "day1" / "img_0002.jpg", 1)
    photo(tmp_path / "shoot" / "x.png", 2)
    out = grmpiqa(["shoot/**/*.jpg", "nothing/*.jpg"], hub=tiny_hub, cwd=tmp_path)
    got = rows(out.stdout)
    assert [r["path"] for r in got] == ["shoot/day1/IMG_0001.JPG", "shoot/day1/img_0002.jpg",
                                        "nothing/*.jpg"]
    assert got[2]["error"] == "no file matches nothing/*.jpg"
    assert out.returncode == 1 and "1 pattern matched no image file" in stderr(out)


def test_glob_of_raw_files_without_the_extra_gives_the_hint(tiny_hub, tmp_path):
    for name in ("IMG_1.CR2", "IMG_2.cr2"):
        (tmp_path / name).write_bytes(b"II*\0raw")
    (tmp_path / "hide_rawpy.py").write_text(
        "import runpy, sys\nsys.modules['rawpy'] = None\n"
        "sys.argv = ['grmpiqa', *sys.argv[1:]]\nrunpy.run_module('grmpiqa', run_name='__main__')\n")
    out = subprocess.run([sys.executable, "hide_rawpy.py", "score", "*.cr2"], cwd=tmp_path,
                         capture_output=True, timeout=300,
                         env={**os.environ, "GRMPIQA_MANIFEST": str(tiny_hub.manifest_path)})
    assert "skipped 2 camera RAW files: pip install 'grmpiqa[raw]'" in stderr(out), stderr(out)
    assert "no file matches" not in stderr(out)


# 6. non-UTF-8 names -----------------------------------------------------------------------

def test_non_utf8_names_are_escaped_reversibly_and_paths_stay_exact(tiny_hub, tmp_path):
    shoot = tmp_path / "shoot"
    names = [b"caf\xe9.jpg", b"back\\slash.jpg", b"plain.jpg", "été.jpg".encode()]
    for i, raw in enumerate(names):
        photo(Path(os.fsdecode(os.path.join(os.fsencode(shoot), raw))), i, "JPEG")
    expected = sorted(os.path.join(os.fsencode(shoot), raw) for raw in names)
    for fmt in ("csv", "tsv", "jsonl"):
        out = grmpiqa([shoot, "-f", fmt], hub=tiny_hub)
        text = out.stdout.decode("utf-8")  # strict: valid UTF-8 for pandas, jq, spreadsheets
        if fmt == "jsonl":
            cells = [json.loads(line)["path"] for line in text.splitlines()]
        elif fmt == "csv":
            cells = [r["path"] for r in csv.DictReader(io.StringIO(text, newline=""))]
        else:
            cells = [line.split("\t")[0] for line in text.splitlines()[1:]]
        assert [name_bytes(c) for c in cells] == expected, fmt
        assert any(c.endswith("caf\\xe9.jpg") for c in cells)
        assert any(c.endswith("back\\\\slash.jpg") for c in cells)
    out = grmpiqa([shoot, "-f", "paths", "--null"], hub=tiny_hub)
    assert out.stdout.split(b"\0")[:-1] == expected
    # --resume reads the escaped names back: nothing is scored twice
    target = tmp_path / "scores.csv"
    grmpiqa([shoot, "-o", target], hub=tiny_hub)
    out = grmpiqa([shoot, "-o", target, "--resume"], hub=tiny_hub)
    assert out.returncode == 0 and "nothing left to score: all 4 photos" in stderr(out)
    assert sorted(os.fsencode(unescape_name(r["path"])) for r in rows(target.read_bytes())) \
        == expected


def test_table_output_is_valid_utf8(tiny_hub, tmp_path):
    photo(Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.jpg")), fmt="JPEG")
    out = grmpiqa([tmp_path, "-f", "table"], hub=tiny_hub)
    assert "caf\\xe9.jpg" in out.stdout.decode("utf-8")


# 7. the small ones ------------------------------------------------------------------------

def test_nul_separated_list_without_null_says_use_null(tiny_hub, tmp_path):
    out = grmpiqa(["-"], hub=tiny_hub, stdin=b"a.jpg\0b.jpg\0")
    assert out.returncode == 2
    assert stderr(out) == ("grmpiqa: error: --null is needed: the list of paths on stdin "
                           "holds NUL bytes\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--precision", "fp16"], "--precision fp16 needs a GPU"),
    (["--precision", "fp8"], "--precision 'fp8': use one of"),
    (["--device", "cuda:3"], "--device cuda:3"),
    (["--device", "tpu"], "--device 'tpu': use auto, cpu"),
    (["--xmp", "--rating-thresholds", "0.5,0.4,0.6,0.8"], "thresholds must increase"),
    (["--shard", "4/4"], "--shard"),
    (["--min-score", "2"], "scores are between 0 and 1"),
    (["-m", "no-such-model"], "unknown model 'no-such-model'"),
    (["-w", "missing.safetensors"], "missing.safetensors: no such weights file"),
])
def test_option_errors_come_before_the_model_loads(tiny_hub, tmp_path, args, message):
    photo(tmp_path / "a.jpg")
    # a model that would fail to load: an option error must be found before it is tried
    out = grmpiqa([tmp_path, *args], hub=tiny_hub, cwd=tmp_path,
                  env={"HF_HUB_CACHE": str(tmp_path / "empty-cache")})
    assert out.returncode == 2 and message in stderr(out), stderr(out)
    assert "not in the Hugging Face cache" not in stderr(out)


def test_offline_missing_weights_do_not_warn_about_pinning(tiny_hub, tmp_path):
    photo(tmp_path / "a.jpg")
    out = grmpiqa([tmp_path], hub=tiny_hub, env={"HF_HUB_CACHE": str(tmp_path / "empty")})
    assert out.returncode == 2 and "HF_HUB_OFFLINE is set, so nothing is downloaded" in stderr(out)
    assert "pinned" not in stderr(out), stderr(out)
    assert stderr(out).count("\n") == 1


def test_resume_on_a_complete_file_exits_at_once(tiny_hub, tmp_path):
    shoot = tmp_path / "shoot"
    photo(shoot / "a.jpg")
    photo(shoot / "b.jpg", 1)
    target = tmp_path / "scores.csv"
    assert grmpiqa([shoot, "-o", target], hub=tiny_hub).returncode == 0
    before = target.read_bytes()
    out = grmpiqa([shoot, "-o", target, "--resume"], hub=tiny_hub)
    assert out.returncode == 0
    assert stderr(out) == f"grmpiqa: nothing left to score: all 2 photos are in {target}\n"
    assert target.read_bytes() == before
    # the debug log says when a model is loaded: here it never is
    debug = grmpiqa([shoot, "-o", target, "--resume", "--debug"], hub=tiny_hub)
    assert debug.returncode == 0 and "loading model" in grmpiqa(
        [shoot, "--debug", "--no-cache"], hub=tiny_hub).stderr.decode()
    assert "loading model" not in stderr(debug), stderr(debug)


def test_jfif_and_jpe_are_jpeg_extensions(tiny_hub, tmp_path):
    photo(tmp_path / "a.jfif", fmt="JPEG")
    photo(tmp_path / "b.JPE", 1, fmt="JPEG")
    out = grmpiqa([tmp_path], hub=tiny_hub)
    assert [os.path.basename(r["path"]) for r in rows(out.stdout)] == ["a.jfif", "b.JPE"]
    assert out.returncode == 0


def test_malicious_pickle_message_never_suggests_weights_only_false(tiny_hub, tmp_path):
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    evil = tmp_path / "evil.pt"
    torch.save({"w": Payload()}, evil)
    photo(tmp_path / "a.jpg")
    out = grmpiqa([tmp_path / "a.jpg", "-w", evil], hub=tiny_hub)
    assert out.returncode == 2 and "refused, it holds more than plain tensors" in stderr(out)
    assert "weights_only" not in stderr(out) and "Re-running" not in stderr(out)


def test_forged_jpeg_size_is_an_error_not_a_score(tiny_hub, tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(texture(0)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    (tmp_path / "forged.jpg").write_bytes(bytes(data))
    assert len(data) < 2000
    out = grmpiqa([tmp_path, "--max-pixels", "4000000000"], hub=tiny_hub)
    (row,) = rows(out.stdout)
    assert out.returncode == 1 and not row["score"]
    assert row["error"].startswith("60000x60000 pixels declared, but the file holds only")


def test_help_fits_80_columns_with_readable_metavars():
    env = {**os.environ, "COLUMNS": "80"}
    for command in ("score", "cull", "adapt", "evaluate", "pretrain"):
        out = subprocess.run([sys.executable, "-m", "grmpiqa", command, "--help"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0
        assert "…" not in out.stdout and "<str>" not in out.stdout, out.stdout
        assert "<list[" not in out.stdout and "<int" not in out.stdout
    score_help = subprocess.run([sys.executable, "-m", "grmpiqa", "score", "--help"],
                                capture_output=True, text=True, env=env, timeout=60).stdout
    assert "--rating-thresholds T2,T3,T4,T5" in score_help
    assert "--output FILE" in score_help and "--batch-size N" in score_help


def test_rewritten_file_mode_comes_from_a_file_never_a_folder(tmp_path):
    """Item 2: a .part took a folder's 0755 when -o named a folder; only a file's mode is kept."""
    from grmpiqa.io.atomic import file_mode_for

    mask = os.umask(0o022)
    try:
        assert file_mode_for(tmp_path) == 0o644
        (tmp_path / "scores.csv").write_text("x")
        (tmp_path / "scores.csv").chmod(0o600)
        assert file_mode_for(tmp_path / "scores.csv") == 0o600
    finally:
        os.umask(mask)
    assert stat.S_ISDIR(tmp_path.stat().st_mode)


def test_documented_name_bytes_recipe_inverts_the_escaping():
    """Item 6: the dependency-free function docs/cli.md gives scripts is right."""
    from grmpiqa.io.output import escape_name

    doc = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
    blocks = [b.split("```")[0] for b in doc.read_text(encoding="utf-8").split("```python\n")[1:]]
    (code,) = [b for b in blocks if "def name_bytes" in b]
    namespace: dict = {}
    exec(code, namespace)
    for raw in (b"caf\xe9.jpg", b"a\\xff\\\\b\xff.jpg", "été\t.jpg".encode(), b"\\n"):
        cell = escape_name(os.fsdecode(raw))
        assert namespace["name_bytes"](cell) == raw == name_bytes(cell)
        tsv_cell = cell.replace("\t", "\\t")
        assert namespace["name_bytes"](tsv_cell) == raw
