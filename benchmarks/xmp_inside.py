"""Write a rating and a label inside copies of real photos and check each one.

For every JPEG (and TIFF/DNG) under ``--photos`` (default: the LIVEC photos)
a copy is made in a temporary folder, ``xmp:Rating`` and ``xmp:Label`` are
written inside it, and the copy is checked: the bytes outside the XMP segment
are the original's (JPEG), the decoded pixels are the same, and (when exiftool is
installed) exiftool reads the rating and the label and finds no warning it
did not find in the original. Prints how many were written, refused (and
why), failed a check, the median time of a write, the load and the CPU.

    python benchmarks/xmp_inside.py --limit 100
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # xmp_photos.xmp_span: an independent finder
LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"
KINDS = (".jpg", ".jpeg", ".tif", ".tiff", ".dng")


def exiftool(paths: list[Path]) -> dict[str, dict]:
    tool = shutil.which("exiftool")
    if tool is None or not paths:
        return {}
    out = subprocess.run([tool, "-j", "-a", "-validate", "-warning", "-XMP:Rating",
                          "-XMP:Label", *map(str, paths)], capture_output=True, text=True,
                         timeout=3600)
    return {Path(found["SourceFile"]).name: found for found in json.loads(out.stdout or "[]")}


def warnings(found: dict) -> set[str]:
    value = found.get("Warning", [])
    return set(value if isinstance(value, list) else [value])


def outside_packet(data: bytes, jpeg: bool) -> bytes:
    from xmp_photos import xmp_span

    if not jpeg:
        return data
    start, end = xmp_span(data)
    return data[:start] + data[end:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, default=LIVEC, help="folder of photos to copy")
    p.add_argument("--limit", type=int, default=0, help="at most this many (0: all)")
    p.add_argument("--rating", type=int, default=3)
    p.add_argument("--label", default="Green")
    args = p.parse_args()

    from grmpiqa.errors import XmpError
    from grmpiqa.io.images import open_image
    from grmpiqa.model.cpu_features import cpu_name, detect
    from grmpiqa.workflow.xmp import write_inside

    originals = sorted(f for f in args.photos.iterdir() if f.suffix.lower() in KINDS)
    originals = originals[:args.limit] if args.limit else originals
    if not originals:
        sys.exit(f"no JPEG, TIFF or DNG in {args.photos}")
    work = Path(tempfile.mkdtemp(prefix="grmpiqa-xmp-inside-"))
    try:
        copies = []
        for original in originals:
            copy = work / original.name
            shutil.copyfile(original, copy)
            os.chmod(copy, 0o644)
            copies.append(copy)
        before = exiftool(copies)
        refused: collections.Counter[str] = collections.Counter()
        broken, times, written = [], [], []
        for original, copy in zip(originals, copies, strict=True):
            pixels = np.asarray(open_image(str(copy)))
            start = time.perf_counter()
            try:
                write_inside(str(copy), {"Rating": str(args.rating), "Label": args.label})
            except XmpError as exc:
                refused[str(exc).split(": ", 1)[-1]] += 1
                continue
            times.append(time.perf_counter() - start)
            jpeg = copy.suffix.lower() in (".jpg", ".jpeg")
            same_bytes = (outside_packet(copy.read_bytes(), jpeg) == original.read_bytes()
                          if jpeg else True)
            if not same_bytes or not np.array_equal(np.asarray(open_image(str(copy))), pixels):
                broken.append(copy.name)
            written.append(copy)
        after = exiftool(written)
        unread = [n for n, f in after.items()
                  if f.get("Rating") != args.rating or f.get("Label") != args.label]
        new_warnings = [n for n, f in after.items()
                        if warnings(f) - warnings(before.get(n, {}))]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(originals)} photos from {args.photos}: {len(written)} written, "
          f"{sum(refused.values())} refused {dict(refused)}, {len(broken)} failed the byte or "
          f"pixel check {broken[:5]}")
    if times:
        print(f"write inside: median {np.median(times) * 1000:.1f} ms, "
              f"max {max(times) * 1000:.1f} ms a photo")
    if after:
        print(f"exiftool: {len(after) - len(unread)} of {len(after)} read rating "
              f"{args.rating} and label {args.label}; {len(new_warnings)} with a new warning "
              f"{new_warnings[:5]}")
    else:
        print("exiftool: not installed, not checked")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{cpu_name()} ({detect().describe()})")


if __name__ == "__main__":
    main()
