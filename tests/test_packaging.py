"""An installed, non-editable wheel must carry and find weights_manifest.json."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_manifest(tmp_path):
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
    code = ("import grmpiqa, grmpiqa.weights.manifest as m\n"
            "print(grmpiqa.__file__)\nprint(m.manifest_path())\n"
            "print(m.load_manifest().default)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert run.returncode == 0, run.stderr
    module_file, manifest_file, default = run.stdout.split("\n")[:3]
    assert module_file.startswith(str(site))
    assert manifest_file == str(site / "grmpiqa" / "weights_manifest.json")
    assert default == "grmp-clive50"
