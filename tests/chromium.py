"""A headless Chromium for the tests that render a page as a browser would (file://, offline)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def run_chromium(*args: str, text: bool = False, timeout: float = 120
                 ) -> subprocess.CompletedProcess:
    """Chromium with ``args`` in a fresh profile (removed after)."""
    assert CHROMIUM is not None, "chromium is not installed"
    with tempfile.TemporaryDirectory(prefix="grmpiqa-chromium-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=text, timeout=timeout, check=False)
