"""What the photo-workflow features cost next to the model, measured in one run.

No model runs here: these are the per-photo costs the workflow adds (decoding
HEIC and RAW, writing XMP sidecars) and the cost of holding rows for --sort
and --summary, to be set against the model's own time per photo (see
benchmarks/throughput.py). Everything is made in a temporary folder.

    python benchmarks/workflow.py
"""

from __future__ import annotations

import io
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from grmpiqa.io.images import open_image  # noqa: E402
from grmpiqa.workflow.selection import Selection, select  # noqa: E402
from grmpiqa.workflow.summary import summarise  # noqa: E402
from grmpiqa.workflow.xmp_marks import SidecarRater  # noqa: E402
from photos import write_dng  # noqa: E402

DRAFT = 488  # what the default model asks decoders for (2 x its 244-pixel squash)


@dataclass(frozen=True)
class Row:
    path: str
    score: float | None


def _photo(width: int, height: int) -> np.ndarray:
    """Smooth gradients plus noise: compresses like a photo, not like random bytes."""
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = np.concatenate([x * np.ones_like(y), y * np.ones_like(x), (x + y) / 2], axis=2)
    noise = np.random.default_rng(0).normal(0, 0.03, (height, width, 3))
    return (np.clip(base + noise, 0, 1) * 255).astype(np.uint8)


def _median_seconds(action, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def decoding(folder: Path) -> None:
    import pillow_heif

    pixels = _photo(4032, 3024)
    jpeg = folder / "phone.jpg"
    Image.fromarray(pixels).save(jpeg, quality=90)
    heic = folder / "phone.heic"
    pillow_heif.from_bytes(mode="RGB", size=(4032, 3024), data=pixels.tobytes()).save(
        str(heic), quality=90, enc_params={"preset": "ultrafast"})  # x265's default: minutes
    t_jpeg = _median_seconds(lambda: open_image(str(jpeg), draft_size=DRAFT))
    t_heic = _median_seconds(lambda: open_image(str(heic), draft_size=DRAFT))
    print(f"12 Mpx JPEG (draft) {t_jpeg * 1000:7.1f} ms | HEIC (one tile) {t_heic * 1000:7.1f} "
          f"ms | HEIC / JPEG {t_heic / t_jpeg:5.1f}")

    sensor = _photo(6000, 4000)
    preview = io.BytesIO()
    Image.fromarray(sensor).resize((1620, 1080)).save(preview, "JPEG", quality=90)
    dng = write_dng(folder / "camera.dng", sensor, preview=preview.getvalue())
    t_preview = _median_seconds(lambda: open_image(str(dng), draft_size=DRAFT), repeats=3)
    t_demosaic = _median_seconds(lambda: open_image(str(dng), draft_size=2000), repeats=3)
    print(f"24 Mpx DNG: embedded 1620x1080 preview {t_preview * 1000:7.1f} ms | half-size "
          f"demosaic {t_demosaic * 1000:7.1f} ms | demosaic / preview "
          f"{t_demosaic / t_preview:5.1f}")


def sidecars(folder: Path, count: int = 500) -> None:
    rater = SidecarRater()
    photos = [str(folder / f"IMG_{i:04d}.jpg") for i in range(count)]
    start = time.perf_counter()
    for photo in photos:
        rater.rate(photo, random.random())
    created = (time.perf_counter() - start) / count
    start = time.perf_counter()
    for photo in photos:
        rater.rate(photo, random.random())
    updated = (time.perf_counter() - start) / count
    print(f"XMP sidecar per photo: create {created * 1000:5.2f} ms | update {updated * 1000:5.2f}"
          " ms (atomic write with fsync)")


def holding_rows(count: int = 1_000_000) -> None:
    rows = [Row(f"shoot/IMG_{i:07d}.jpg", random.random()) for i in range(count)]
    start = time.perf_counter()
    select(rows, Selection(sort="-score", top=10))
    sort_seconds = time.perf_counter() - start
    start = time.perf_counter()
    summarise([r.score for r in rows])
    summary_seconds = time.perf_counter() - start
    print(f"{count:,} rows: --sort -score --top 10 {sort_seconds:5.2f} s | "
          f"--summary {summary_seconds:5.2f} s")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="grmpiqa-workflow-") as tmp:
        decoding(Path(tmp))
        (Path(tmp) / "xmp").mkdir()
        sidecars(Path(tmp) / "xmp")
    holding_rows()


if __name__ == "__main__":
    main()
