"""Size on disk and time to first paint of the HTML report at 1,000 and 10,000 photos.

The thumbnails are made from the LIVEC photos (cycled) by the workers' own
function at the report's size, scores are random, one photo in three is in a burst of 3
to 6. Chromium (headless) opens a copy of each page with a paint-timing observer
added; the first contentful paint and the DOM-ready time are read back from
the DOM it dumps. The wall time of a whole ``chromium --screenshot`` run
(browser start included) is given next to an empty page's for scale.

    python benchmarks/report.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grmpiqa.config import REPORT_THUMBNAIL  # noqa: E402
from grmpiqa.io.signals import thumbnail_jpeg  # noqa: E402
from grmpiqa.results import PhotoFeatures, ScoreResult  # noqa: E402
from grmpiqa.workflow.report import Report  # noqa: E402

LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"
PROBE = """<script>
new PerformanceObserver(function(list){list.getEntries().forEach(function(e){
 if(e.name==='first-contentful-paint'){document.documentElement.dataset.fcp=e.startTime;}});
}).observe({type:'paint',buffered:true});
document.addEventListener('DOMContentLoaded',function(){
 document.documentElement.dataset.dcl=performance.now();});
</script>"""


def thumbnails(count: int) -> list[bytes]:
    """The workers' thumbnails of the LIVEC photos (same function, same size)."""
    out = []
    for path in sorted(LIVEC.glob("*.JPG"))[:count]:
        with Image.open(path) as image:
            out.append(thumbnail_jpeg(image.convert("RGB"), REPORT_THUMBNAIL))
    return out


def build(folder: Path, n: int, thumbs: list[bytes]) -> tuple[Path, float]:
    rng = np.random.default_rng(n)
    report = Report(folder / "report.html")
    start = time.perf_counter()
    entries, index, burst = [], 0, 0
    while index < n:
        size = int(rng.integers(3, 7)) if rng.random() < 1 / 3 / 4 else 1
        burst += 1
        for _ in range(min(size, n - index)):
            result = ScoreResult(f"/photos/IMG_{index:05d}.jpg", float(rng.random()),
                                 features=PhotoFeatures(0, thumbnail=thumbs[index % len(thumbs)]))
            result = report.add(result)
            entries.append(report.entry(result, burst=burst if size > 1 else None))
            index += 1
    report.write(entries)
    return folder / "report.html", time.perf_counter() - start


def disk_bytes(path: Path) -> int:
    files = [path, *path.with_name(path.stem + "_files").iterdir()]
    return sum(os.stat(f).st_blocks * 512 for f in files)


def chromium(*args: str) -> tuple[float, str]:
    profile = tempfile.mkdtemp(prefix="grmpiqa-bench-chromium-")
    start = time.perf_counter()
    try:
        done = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,900", *args],
            capture_output=True, timeout=300, check=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return time.perf_counter() - start, done.stdout.decode("utf-8", "replace")


def paint_times(page: Path) -> tuple[float, float]:
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    _, dom = chromium("--dump-dom", probe.as_uri())
    fcp = re.search(r'data-fcp="([\d.]+)"', dom)
    dcl = re.search(r'data-dcl="([\d.]+)"', dom)
    probe.unlink()
    return (float(fcp.group(1)) if fcp else float("nan"),
            float(dcl.group(1)) if dcl else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    thumbs = thumbnails(627)
    with tempfile.TemporaryDirectory(prefix="grmpiqa-report-bench-") as tmp:
        empty = Path(tmp) / "empty.html"
        empty.write_text("<!DOCTYPE html><title>empty</title><p>x</p>")
        base, _ = chromium(f"--screenshot={tmp}/empty.png", empty.as_uri())
        print(f"empty page: chromium --screenshot {base:.2f} s wall (browser start)")
        for n in args.sizes:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            page, seconds = build(folder, n, thumbs)
            fcp, dcl = paint_times(page)
            wall, _ = chromium(f"--screenshot={tmp}/n{n}.png", page.as_uri())
            print(f"{n:6d} photos: page {page.stat().st_size / 1e6:5.2f} MB, with thumbnails "
                  f"{disk_bytes(page) / 1e6:6.1f} MB on disk | written in {seconds:5.2f} s | "
                  f"first contentful paint {fcp:6.0f} ms, DOM ready {dcl:6.0f} ms | "
                  f"chromium --screenshot {wall:5.2f} s wall")


if __name__ == "__main__":
    main()
