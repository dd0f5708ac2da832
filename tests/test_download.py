"""The download path for real: ``grmpiqa`` in a subprocess, online, against a fake Hub on
127.0.0.1 (tests/hubserver.py), or against no Hub at all.

huggingface_hub reads HF_HUB_OFFLINE and HF_ENDPOINT at import, and this session is
offline (conftest.py), so every online run is a subprocess with its own environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from hubserver import FakeHub

REPO = "test/weights"
FILE = "w.pt"


def _manifest(tmp_path: Path, weights: dict, name: str = "m") -> Path:
    """A one-model manifest whose (never loaded) weights file is ``weights``."""
    backbone = {"architecture": "ViT-B-16", "weights": {
        "repo": "test/backbone", "filename": "open_clip_model.safetensors",
        "revision": None, "sha256": None}}
    model = {"description": "d", "backbone": "b", "config": {"kind": "grmp"},
             "preprocess": {"resize": 244, "crop": 224}, "licence": "l", "source": "s",
             "weights": {"repo": REPO, "filename": FILE, "revision": None, "sha256": None,
                         "format": "authors-pt", **weights}}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema_version": 1, "default": name, "backbones": {
        "b": backbone}, "models": {name: model}}))
    return path


def _env(tmp_path: Path, endpoint: str, manifest: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "GRMPIQA_MANIFEST")}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_CACHE=str(tmp_path / "hub"),
               HF_HOME=str(tmp_path / "hf-home"), NO_PROXY="127.0.0.1,localhost",
               HF_HUB_DISABLE_TELEMETRY="1")
    if manifest is not None:
        env["GRMPIQA_MANIFEST"] = str(manifest)
    return env


def _run(args: list[str], tmp_path: Path, endpoint: str, manifest: Path | None = None,
         ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grmpiqa", *args], capture_output=True,
                          text=True, env=_env(tmp_path, endpoint, manifest), timeout=300)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_first_download_then_the_cache(tmp_path):
    payload = os.urandom(300_000)
    with FakeHub() as hub:
        hub.add(REPO, {FILE: payload})
        manifest = _manifest(tmp_path, {})
        out = _run(["models", "download", "m"], tmp_path, hub.url, manifest)
        assert out.returncode == 0, out.stderr
        path = Path(out.stdout.strip())
        assert path.read_bytes() == payload and str(tmp_path / "hub") in str(path)
        assert len(hub.gets(FILE)) == 1
        assert "downloaded test/weights/w.pt (300.0 kB)" in out.stderr
        assert "m: ready for score offline: 1 file, 300.0 kB" in out.stderr
        assert "adapt and pretrain also need test/backbone/open_clip_model.safetensors " \
               "(size unknown): add --with-backbone" in out.stderr
        assert not hub.gets("open_clip_model.safetensors")  # scoring does not need it
        again = _run(["models", "download", "m", "-q"], tmp_path, hub.url, manifest)
        assert again.returncode == 0 and again.stdout == out.stdout and again.stderr == ""
        assert len(hub.gets(FILE)) == 1  # a cache hit: asked for news (HEAD), not fetched
        listed = _run(["models", "--json"], tmp_path, hub.url, manifest)
        files = {f["filename"]: f for f in json.loads(listed.stdout)[0]["files"]}
        assert files[FILE]["size_from"] == "cache" and files[FILE]["size"] == 300_000
        # the Hub says it has no backbone file: its size stays unknown, never invented
        assert files["open_clip_model.safetensors"]["size"] is None


def test_pinned_revision_is_that_commit_and_then_never_asked(tmp_path):
    with FakeHub() as hub:
        old = hub.add(REPO, {FILE: b"old weights"})
        hub.add(REPO, {FILE: b"new weights"})  # main moves on
        manifest = _manifest(tmp_path, {"revision": old,
                                        "sha256": hashlib.sha256(b"old weights").hexdigest()})
        out = _run(["models", "download", "m"], tmp_path, hub.url, manifest)
        assert out.returncode == 0, out.stderr
        assert Path(out.stdout.strip()).read_bytes() == b"old weights"
        assert {r.revision for r in hub.requests} == {old}
        assert "without a pinned revision" not in out.stderr
        seen = len(hub.requests)
        again = _run(["models", "download", "m"], tmp_path, hub.url, manifest)
        assert again.returncode == 0 and again.stdout == out.stdout
        assert len(hub.requests) == seen  # pinned and cached: no request at all


def test_sha256_mismatch_is_refused_and_evicted(tmp_path):
    with FakeHub() as hub:
        hub.add(REPO, {FILE: b"tampered"})
        manifest = _manifest(tmp_path, {"sha256": hashlib.sha256(b"genuine").hexdigest()})
        out = _run(["models", "download", "m"], tmp_path, hub.url, manifest)
    assert out.returncode == 2 and out.stdout == ""
    assert "test/weights/w.pt: sha256 mismatch" in out.stderr
    assert "removed from the cache" in out.stderr and "Traceback" not in out.stderr
    assert not [p for p in (tmp_path / "hub").rglob("*") if p.is_file() and p.name in
                (FILE, hashlib.sha256(b"tampered").hexdigest())]


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path):
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

    # what huggingface_hub has written when the connection drops: whole chunks only
    payload, cut = os.urandom(2 * DOWNLOAD_CHUNK_SIZE + 1000), DOWNLOAD_CHUNK_SIZE + 5000
    with FakeHub() as hub:
        hub.add(REPO, {FILE: payload})
        hub.drop_after[FILE] = cut
        out = _run(["models", "download", "m"], tmp_path, hub.url, _manifest(tmp_path, {}))
        gets = hub.gets(FILE)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).read_bytes() == payload
    assert len(gets) == 2 and gets[0].range is None
    resumed_at = int(gets[1].range.removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= cut


@pytest.mark.parametrize(("repo", "message"), [
    (REPO, "test/weights/w.pt not found on the Hub"),
    ("test/elsewhere", "Hub repository 'test/weights' not found"),
])
def test_not_on_the_hub_is_one_clear_line(tmp_path, repo, message):
    with FakeHub() as hub:
        hub.add(repo, {"other.bin": b"x"})
        out = _run(["models", "download", "m"], tmp_path, hub.url, _manifest(tmp_path, {}))
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1


@pytest.mark.slow  # grmpiqa score in a subprocess
def test_scoring_downloads_the_checkpoint_alone_then_asks_nothing(tiny_hub, tmp_path):
    """The authors' checkpoint holds every tensor: the backbone weights are never fetched."""
    from PIL import Image

    from grmpiqa.weights import hub as weights_hub
    from grmpiqa.weights.manifest import parse_manifest
    from photos import texture

    entry = parse_manifest(tiny_hub.manifest, "tiny").get("grmp-tiny")
    Image.fromarray(texture(1)).save(tmp_path / "a.jpg")
    with FakeHub() as hub:
        for part in entry.files():
            data = weights_hub.cached_path(part.file, tiny_hub.hf_cache).read_bytes()
            repo = hub.repos.get(part.file.repo)
            if repo:
                repo[-1].files[part.file.filename] = data
            else:
                hub.add(part.file.repo, {part.file.filename: data})
        out = _run(["score", str(tmp_path / "a.jpg"), "-q"], tmp_path, hub.url,
                   tiny_hub.manifest_path)
        assert out.returncode == 0, out.stderr
        assert {g.filename for g in hub.gets()} == {"clive_50_prompt_lda_5.0.pt",
                                                    "open_clip_config.json"}
        seen = len(hub.requests)
        # what loading asks for next time: the cache alone, not even a HEAD request
        code = ("import sys\nfrom grmpiqa.weights import hub\n"
                "from grmpiqa.weights.manifest import load_manifest\n"
                "for f in load_manifest().get('grmp-tiny').scoring_files():\n"
                "    print(hub.fetch(f))\n")
        again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env=_env(tmp_path, hub.url, tiny_hub.manifest_path), timeout=120)
        assert again.returncode == 0 and again.stdout.count("\n") == 2, again.stderr
        assert len(hub.requests) == seen


@pytest.mark.slow  # grmpiqa score in a subprocess: torch's import is most of it
@pytest.mark.parametrize("endpoint", ["closed port", "http://no-such-host.invalid"])
def test_no_weights_and_no_hub_is_one_message_at_once(tmp_path, endpoint):
    """A newcomer's first offline `score`: exit 2 with what is missing and what to do, no
    retries (benchmarks/offline_start.py times it)."""
    if endpoint == "closed port":
        endpoint = f"http://127.0.0.1:{_closed_port()}"
    (tmp_path / "a.jpg").write_bytes(b"not decoded: the model is needed first")
    out = _run(["score", str(tmp_path)], tmp_path, endpoint)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr
    line = out.stderr
    assert line.startswith("grmpiqa: error: grmp-clive50 needs "
                           "zzhowe/GRMP-IQA/clive_50_prompt_lda_5.0.pt, which is not in the "
                           f"Hugging Face cache {tmp_path / 'hub'}; the Hub ({endpoint}) "
                           "cannot be reached (ConnectError: "), line
    assert "Fetch it while online with `grmpiqa models download grmp-clive50`; then " \
           "HF_HUB_OFFLINE=1 uses the cache without asking the Hub" in line


def test_download_without_a_hub_says_so(tmp_path):
    out = _run(["models", "download", "m"], tmp_path, f"http://127.0.0.1:{_closed_port()}",
               _manifest(tmp_path, {}))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "m needs test/weights/w.pt, which is not in the Hugging Face cache" in out.stderr
    assert "run this again once it can be reached" in out.stderr


def test_download_offline_says_unset_it(use_tiny_manifest, tmp_path):
    result = CliRunner().invoke(app, ["models", "download", "grmp-tiny", "--cache-dir",
                                      str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "HF_HUB_OFFLINE is set, so nothing is downloaded; unset it to download" \
        in result.stderr
    result = CliRunner().invoke(app, ["models", "download", "grmp-tiny", "no-such-model"])
    assert result.exit_code == 2 and "unknown model 'no-such-model'" in result.stderr


def test_require_model_fails_torch_free_before_any_load(use_tiny_manifest, tmp_path):
    from grmpiqa.errors import WeightsUnavailable
    from grmpiqa.weights.download import require_model

    assert require_model("grmp-tiny") == []  # all cached: nothing to download
    assert require_model("grmp-tiny", with_backbone=True) == []
    with pytest.raises(WeightsUnavailable) as info:
        require_model("grmp-tiny", hf_cache=tmp_path)
    assert info.value.model == "grmp-tiny" and [label for label, _ in info.value.files] == [
        "zzhowe/GRMP-IQA/clive_50_prompt_lda_5.0.pt", "test/tiny-clip/open_clip_config.json"]
    code = ("import sys\nfrom grmpiqa.weights.download import require_model\n"
            "try:\n    require_model()\nexcept Exception as exc:\n    print(type(exc).__name__)\n"
            "print([m for m in ('torch', 'open_clip') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(tmp_path, f"http://127.0.0.1:{_closed_port()}"), timeout=120)
    assert out.stdout == "WeightsUnavailable\n[]\n", out.stderr


def test_download_progress_on_a_terminal(tmp_path):
    """On a terminal (one pty for stdout and stderr) the Hub's bar runs, then the path and
    the summary; -q leaves the path alone."""
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE
    from test_terminal import run_in_pty, screen_lines

    with FakeHub() as hub:
        hub.add(REPO, {FILE: os.urandom(3 * DOWNLOAD_CHUNK_SIZE)})
        env = {**_env(tmp_path, hub.url, _manifest(tmp_path, {})), "TERM": "xterm-256color"}
        raw, code = run_in_pty([sys.executable, "-m", "grmpiqa", "models", "download", "m",
                                "--force-download"], env, tmp_path)
        assert code == 0, raw
        assert re.search(r"w\.pt: +\d+%\|", raw)  # the Hub's bar, redrawn as bytes arrive
        shown = [line for line in screen_lines(raw) if line]
        assert re.search(r"w\.pt: 100%\|.*\| 31\.5M/31\.5M", shown[1]), shown
        assert shown[2].endswith("/w.pt") and shown[3] == \
            "grmpiqa: downloaded test/weights/w.pt (31.5 MB)"
        raw, code = run_in_pty([sys.executable, "-m", "grmpiqa", "models", "download", "m",
                                "-q", "--force-download"], env, tmp_path)
    assert code == 0 and [line for line in screen_lines(raw) if line] == [shown[2]], raw
