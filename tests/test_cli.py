import csv
import io
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from photos import write_photo_tree

runner = CliRunner()


def _csv(output: str):
    return list(csv.DictReader(io.StringIO(output, newline="")))


def test_scores_a_folder_of_every_format_and_mode(use_tiny_manifest, tmp_path):
    made = write_photo_tree(tmp_path)
    result = runner.invoke(app, ["score", str(tmp_path), "-b", "4", "-j", "2"])
    assert result.exit_code == 0, result.output
    rows = _csv(result.stdout)
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in made)
    assert all(r["error"] == "" and 0.0 <= float(r["score"]) <= 1.0 for r in rows)


def test_jsonl_and_bad_files_keep_their_rows(use_tiny_manifest, tmp_path):
    write_photo_tree(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "empty.png").write_bytes(b"")
    result = runner.invoke(app, ["score", str(tmp_path), "-f", "jsonl", "-j", "0"])
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    bad = {os.path.basename(r["path"]): r for r in rows if r["error"]}
    assert set(bad) == {"broken.jpg", "empty.png"}
    assert bad["empty.png"]["error"] == "empty file (0 bytes)" and bad["empty.png"]["score"] is None
    assert len(rows) == 15
    assert "broken.jpg" in result.stderr and "could not be scored" in result.stderr


def test_paths_from_stdin(use_tiny_manifest, tmp_path):
    made = write_photo_tree(tmp_path)
    chosen = [str(made[0]), str(made[3])]
    result = runner.invoke(app, ["score", "-"], input="\n".join(chosen) + "\n")
    assert result.exit_code == 0, result.output
    assert [r["path"] for r in _csv(result.stdout)] == chosen
    result = runner.invoke(app, ["score", "-", "--null", "-f", "tsv"],
                           input="\0".join(chosen) + "\0")
    assert result.exit_code == 0 and result.stdout.count("\n") == 3


def test_output_file_and_format_from_extension(use_tiny_manifest, tmp_path):
    made = write_photo_tree(tmp_path / "photos")
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["score", str(tmp_path / "photos"), "-o", str(out), "-q"])
    assert result.exit_code == 0 and result.stdout == ""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(made)


def test_same_scores_in_every_format_and_batch_size(use_tiny_manifest, tmp_path):
    made = write_photo_tree(tmp_path)
    one = runner.invoke(app, ["score", str(tmp_path), "-b", "1", "-j", "0"])
    many = runner.invoke(app, ["score", str(tmp_path), "-b", "16", "-f", "jsonl"])
    assert one.exit_code == 0, one.output
    assert many.exit_code == 0, many.output
    one = _csv(one.stdout)
    many = [json.loads(line) for line in many.stdout.splitlines()]
    assert sorted(r["path"] for r in one) == sorted(str(p) for p in made)
    assert [r["path"] for r in many] == [r["path"] for r in one]
    for a, b in zip(one, many, strict=True):
        assert abs(float(a["score"]) - b["score"]) < 1e-5


def test_usage_and_configuration_errors_exit_2(use_tiny_manifest, tmp_path):
    assert runner.invoke(app, ["score", str(tmp_path), "-f", "xml"]).exit_code == 2
    assert runner.invoke(app, ["score", str(tmp_path), "-b", "0"]).exit_code == 2
    result = runner.invoke(app, ["score", str(tmp_path), "-m", "no-such-model"])
    assert result.exit_code == 2
    assert "unknown model 'no-such-model'" in result.stderr
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["score", str(tmp_path), "-d", "cuda:7"])
    assert result.exit_code == 2 and "CUDA" in result.stderr
    result = runner.invoke(app, ["score", str(tmp_path), "-w", str(tmp_path / "nope.safetensors")])
    assert result.exit_code == 2 and "no such weights file" in result.stderr


def test_missing_path_and_empty_folder(use_tiny_manifest, tmp_path):
    result = runner.invoke(app, ["score", str(tmp_path / "missing.jpg")])
    assert result.exit_code == 1
    assert _csv(result.stdout)[0]["error"] == "no such file"
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["score", str(tmp_path / "empty")])
    assert result.exit_code == 0 and "no image files found" in result.stderr
    assert result.stdout == "path,score,error,model\n"


def test_models_command_lists_cache_state(use_tiny_manifest):
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["grmp-tiny"]["default"] and rows["grmp-tiny"]["cache"] == "cached"
    weights = rows["grmp-tiny"]["files"][0]
    assert weights["role"] == "weights" and weights["needed_for"] == ["score", "adapt"]
    assert weights["size_from"] == "cache" and weights["size"] == os.path.getsize(
        weights["path"])
    lines = runner.invoke(app, ["models"]).stdout.splitlines()
    assert lines[0].startswith("grmp-tiny (default)  grmp, scoring files cached: tiny random")
    assert lines[1].split()[:5] == ["weights", "for", "score,", "adapt", "cached"]
    assert lines[1].endswith("zzhowe/GRMP-IQA/clive_50_prompt_lda_5.0.pt (unpinned)")
    assert lines[2].split()[:5] == ["backbone", "for", "adapt,", "pretrain", "cached"]


def test_models_command_without_the_cache_knows_no_size(use_tiny_manifest, monkeypatch,
                                                        tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # offline: the Hub is not asked
    from grmpiqa.weights.download import list_models

    rows = {r.name: r for r in list_models(hf_cache=tmp_path)}
    assert rows["grmp-tiny"].cache_state == "not cached"
    assert {(f.size, f.size_from, f.path) for f in rows["grmp-tiny"].files} == {
        (None, None, None)}


def _run(args, **env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_help_imports_neither_torch_nor_open_clip():
    code = ("import sys\nfrom grmpiqa.cli.app import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('torch', 'open_clip', 'numpy') if m in sys.modules]\n"
            "print('IMPORTED', bad)")
    for args in (["--help"], ["score", "--help"], ["models"]):
        out = _run(["-c", code, *args])
        assert "IMPORTED []" in out.stdout, (args, out.stdout, out.stderr)


@pytest.mark.slow
def test_module_entry_point_and_exit_codes(tiny_hub, tmp_path):
    env = {"GRMPIQA_MANIFEST": str(tiny_hub.manifest_path)}
    out = _run(["-m", "grmpiqa", "--version"])
    assert out.returncode == 0 and out.stdout.startswith("grmpiqa ")
    (tmp_path / "x.jpg").write_bytes(b"junk")
    out = _run(["-m", "grmpiqa", "score", str(tmp_path)], **env)
    assert out.returncode == 1 and out.stdout.count("\n") == 2
    assert "Traceback" not in out.stderr
    out = _run(["-m", "grmpiqa", "score", str(tmp_path), "--model", "nope"], **env)
    assert out.returncode == 2 and out.stderr.strip().startswith("grmpiqa: error:")
    out = _run(["-m", "grmpiqa", "--debug", "score", str(tmp_path), "--model", "nope"], **env)
    assert out.returncode == 2 and "Traceback" in out.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "tsv", "table"])
def test_formats_stream_one_row_per_image(use_tiny_manifest, tmp_path, fmt):
    made = write_photo_tree(tmp_path)
    result = runner.invoke(app, ["score", str(tmp_path), "-f", fmt])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == len(made) + (0 if fmt == "jsonl" else 1)


@pytest.mark.slow
def test_rows_stream_before_the_run_ends(tiny_hub, tmp_path):
    """A row reaches a pipe as soon as it is scored, not when the run ends."""
    import time

    import numpy as np
    from PIL import Image

    made = write_photo_tree(tmp_path / "src")
    folder = tmp_path / "shoot"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(made[0].read_bytes())
    ramp = np.linspace(0, 255, 9000).astype(np.uint8)
    slow = np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (12000, 9000, 3)))
    Image.fromarray(slow).save(folder / "z.png", compress_level=1)  # about half a second
    env = {**os.environ, "GRMPIQA_MANIFEST": str(tiny_hub.manifest_path)}
    env.pop("PYTHONUNBUFFERED", None)  # the tool must flush by itself
    proc = subprocess.Popen([sys.executable, "-m", "grmpiqa", "score", str(folder), "-b", "1",
                             "-j", "0"], stdout=subprocess.PIPE, env=env)
    proc.stdout.readline()
    first = proc.stdout.readline()
    first_at = time.monotonic()
    second = proc.stdout.readline()
    waited = time.monotonic() - first_at
    proc.wait(timeout=300)
    assert b"a.jpg" in first and b"z.png" in second
    assert waited > 0.3, "the first row was held back until the second was ready"
