"""Issue 24 item 10: an output that cannot be written is refused before the model loads,
in one line naming it, never as an "internal error"; a disk that fills during the run
costs the page, never the rows. Run as the product runs: ``python -m grmpiqa``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from photos import texture

pytestmark = pytest.mark.slow


def _run(args, env, cwd, preexec_fn=None, python=sys.executable):
    out = subprocess.run([python, "-m", "grmpiqa", *map(str, args)], capture_output=True,
                         text=True, cwd=cwd, env={**os.environ, **env}, timeout=300,
                         preexec_fn=preexec_fn)
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    return out


def _shoot(folder: Path, count: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(texture(i, (64, 48))).save(folder / f"{i:03d}.jpg", quality=95)
    return folder


def _no_weights(tmp_path: Path, tiny_hub) -> dict[str, str]:
    """The tiny manifest over an empty Hub cache: a command that reached the model would
    end with the missing-weights error, not the output's."""
    return {"GRMPIQA_MANIFEST": str(tiny_hub.manifest_path),
            "HF_HUB_CACHE": str(tmp_path / "empty-hub")}


@pytest.mark.parametrize("args, says", [
    (["score", "shoot", "-o", "/proc/scores.csv"],
     "grmpiqa: error: --output /proc/scores.csv: cannot write in /proc "
     "(no file can be created there)"),
    (["score", "shoot", "--report", "/proc/page.html"],
     "grmpiqa: error: cannot write the report /proc/page.html (no file can be created there)"),
    (["cull", "shoot", "--below", "0.9", "--copy-to", "/proc/rejects", "--log", "cull.csv"],
     "grmpiqa: error: cannot make the folder /proc/rejects (no file can be created there)"),
    (["suggest", "shoot", "-n", "1", "-o", "/proc/labels.csv"],
     "Error: Invalid value for --output: cannot write in /proc "
     "(no file can be created there)"),
])
def test_proc_is_refused_before_the_model(tiny_hub, tmp_path, args, says):
    if os.geteuid() != 0:
        pytest.skip("as root, permission bits say /proc is writable: the case of the issue")
    _shoot(tmp_path / "shoot")
    out = _run(args, _no_weights(tmp_path, tiny_hub), tmp_path)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1] == says, out.stderr
    assert len(lines) == 1 or lines[0].startswith("Usage: "), out.stderr  # a usage error
    assert out.stdout == ""


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs filled to the last byte."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "full"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mount -t tmpfs is not allowed here")
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("args, says", [
    (["score", "shoot", "-o", "full/scores.csv"],
     "grmpiqa: error: --output full/scores.csv: cannot write in full (No space left on device)"),
    (["score", "shoot", "--report", "full/page.html"],
     "grmpiqa: error: cannot write the report full/page.html (No space left on device)"),
    (["cull", "shoot", "--below", "0.9", "--move-to", "full", "--log", "cull.csv"],
     "grmpiqa: error: cannot put photos in full (No space left on device)"),
])
def test_full_disk_is_refused_before_the_model(tiny_hub, tmp_path, full_disk, args, says):
    _shoot(tmp_path / "shoot")
    out = _run(args, _no_weights(tmp_path, tiny_hub), tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [says], out.stderr
    assert sorted(p.name for p in (tmp_path / "shoot").iterdir()) == ["000.jpg", "001.jpg"]


def test_disk_filling_during_the_run_costs_the_page_not_the_rows(tiny_hub, tmp_path):
    """Room for the probe, not for every thumbnail: all rows still come out."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mount -t tmpfs is not allowed here")
    try:
        _shoot(tmp_path / "shoot", 12)
        out = _run(["score", "shoot", "--report", "small/page.html", "-j", "0"],
                   {"GRMPIQA_MANIFEST": str(tiny_hub.manifest_path)}, tmp_path)
        assert len(out.stdout.splitlines()) == 1 + 12, out.stderr
        assert "grmpiqa: error: cannot write the report small/page.html " \
               "(No space left on device)" in out.stderr, out.stderr
        assert out.returncode == 1, out.stderr
        assert not (mount / "page.html").exists()
        assert [p.name for p in mount.iterdir()] == [], "the thumbnails are not left behind"
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_read_only_folder_is_refused_for_an_ordinary_user(tiny_hub, tmp_path):
    """chmod 555 stops a user without root's override of permission bits: as root, the
    command runs without the capabilities CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop root's override")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    _shoot(tmp_path / "shoot")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        out = subprocess.run(
            [*prefix, sys.executable, "-m", "grmpiqa", "score", "shoot", "-o",
             "locked/scores.csv"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
            env={**os.environ, **_no_weights(tmp_path, tiny_hub)})
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().splitlines() == [
            "grmpiqa: error: --output locked/scores.csv: cannot write in locked "
            "(Permission denied)"], out.stderr
    finally:
        locked.chmod(0o755)
