"""Soak: score the LIVEC photos many times over in one process; memory must stay flat.

Prints the process's resident memory after the first and the last pass. By
default the model is a tiny random GRMP model written into a temporary Hub
cache, so the run measures what could leak per image (decoding, worker
processes, batches, results) rather than waiting on a big model;
``--model grmp-clive50`` uses the default model (random-weight ViT-B-16 cache
given with HF_HUB_CACHE).

    python benchmarks/soak.py --passes 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # fakehub: the test suite's fake Hub builders
LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--passes", type=int, default=20)
    p.add_argument("--model", default="tiny", help="'tiny' or a manifest name")
    p.add_argument("--livec", type=Path, default=LIVEC)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()

    os.environ["HF_HUB_OFFLINE"] = "1"
    tmp = Path(tempfile.mkdtemp(prefix="grmpiqa-soak-"))
    os.environ.setdefault("GRMPIQA_CACHE", str(tmp / "grmpiqa-cache"))
    if args.model == "tiny":
        os.environ["HF_HUB_CACHE"] = str(tmp / "hub")
        from fakehub import tiny_manifest

        manifest_file = tmp / "manifest.json"
        manifest_file.write_text(json.dumps(tiny_manifest(tmp / "hub")))
        os.environ["GRMPIQA_MANIFEST"] = str(manifest_file)
        name = "grmp-tiny"
    else:
        name = args.model

    from grmpiqa.scoring.engine import score_paths
    from grmpiqa.weights.loading import load_model

    model = load_model(name, device="cpu")
    files = sorted(str(f) for f in args.livec.glob("*.[jJ][pP][gG]"))
    if not files:
        sys.exit(f"no JPEGs in {args.livec}")
    readings = []
    start = time.perf_counter()
    for index in range(args.passes):
        scored = sum(r.ok for r in score_paths(files, model, batch_size=args.batch_size,
                                               workers=args.workers, expand=False))
        assert scored == len(files), f"pass {index + 1}: {scored} of {len(files)} scored"
        readings.append(rss_mb())
        print(f"pass {index + 1:3d}: RSS {readings[-1]:8.1f} MiB", file=sys.stderr)
    elapsed = time.perf_counter() - start
    print(f"soak: model {name}, {len(files)} photos x {args.passes} passes "
          f"({len(files) * args.passes} images, {elapsed:.0f} s)")
    print(f"RSS after pass 1: {readings[0]:.1f} MiB; after pass {args.passes}: "
          f"{readings[-1]:.1f} MiB; growth {readings[-1] - readings[0]:+.1f} MiB "
          f"({readings[-1] / readings[0]:.3f}x); max {max(readings):.1f} MiB")


if __name__ == "__main__":
    main()
