"""The installed, non-editable wheel: the product only, the manifest found, the API whole."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("wheel")
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(REPO)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("grmpiqa-*.whl"))
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return wheel, site


def _run(site: Path, code: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=site.parent, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.split("\n")


@pytest.mark.slow
def test_wheel_ships_the_manifest(installed_wheel):
    _, site = installed_wheel
    module_file, manifest_file, default = _run(site, (
        "import grmpiqa, grmpiqa.weights.manifest as m\n"
        "print(grmpiqa.__file__)\nprint(m.manifest_path())\n"
        "print(m.load_manifest().default)"))[:3]
    assert module_file.startswith(str(site))
    assert manifest_file == str(site / "grmpiqa" / "weights_manifest.json")
    assert default == "grmp-clive50"


@pytest.mark.slow
def test_wheel_holds_the_product_only(installed_wheel):
    wheel, _ = installed_wheel
    names = zipfile.ZipFile(wheel).namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert "grmpiqa/__init__.py" in modules and "grmpiqa/cli/app.py" in modules
    assert all(n.startswith("grmpiqa/") for n in modules), modules
    helpers = [n for n in modules
               if Path(n).stem in ("testing", "fakehub", "conftest") or "/tests/" in n]
    assert helpers == []


@pytest.mark.slow
def test_wheel_exposes_the_public_api(installed_wheel):
    _, site = installed_wheel
    out = _run(site, (
        "import grmpiqa\n"
        "for name in ('load_model', 'score_paths', 'evaluate', 'adapt', 'pretrain', 'cull',\n"
        "             'group_bursts', 'read_ratings', 'suggest'):\n"
        "    f = getattr(grmpiqa, name)\n"
        "    assert callable(f) and 'Parameters' in f.__doc__, name\n"
        "    print(name, f.__module__)\n"))
    assert [line.split()[0] for line in out if line] == [
        "load_model", "score_paths", "evaluate", "adapt", "pretrain", "cull", "group_bursts",
        "read_ratings", "suggest"]
