"""The CPU's default batch size, measured: photos per second and the wait before the
progress bar first moves, for each batch size in one run (issue 24).

The whole scoring pipeline (one decoding worker, the model, rows in order) of the default
GRMP-IQA model with random weights (its cost is the real model's, tests/fakehub.py), over
the same LIVEC photos at each batch size. The rounds are interleaved (1, 4, 8, 16, 32,
then again) so that a machine whose speed drifts affects every batch size alike; each
figure is the best round of its batch size. "first row" is when the bar first moves.
Size 0 is the default: on the CPU a batch of 1, then of 7, then 8 each (``ramp_batches``).

    nice -n 5 python benchmarks/cpu_batch.py --images 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # fakehub: the test suite's fake Hub builders
DEFAULT_LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--images", type=int, default=32, help="photos per measurement")
p.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32, 0],
               help="batch sizes; 0 is the default (on the CPU: batches of 1, 7, then 8)")
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--livec", type=Path, default=DEFAULT_LIVEC, help="folder of JPEGs")
p.add_argument("--hf-cache", type=Path, default=Path("/work/bench-hf"),
               help="Hub cache for the random ViT-B-16 (written when absent)")
ARGS = p.parse_args()
os.environ.update(HF_HUB_CACHE=str(ARGS.hf_cache), HF_HUB_OFFLINE="1")
os.environ.pop("GRMPIQA_MANIFEST", None)

from fakehub import ensure_vit_b16_cache  # noqa: E402
from grmpiqa.config import default_batch_size  # noqa: E402
from grmpiqa.model.cpu_features import cpu_name, detect  # noqa: E402
from grmpiqa.scoring.engine import score_paths  # noqa: E402
from grmpiqa.weights.loading import load_model  # noqa: E402


def one_run(model, files: list[str], batch_size: int) -> tuple[float, float]:
    """(seconds to the first row, photos per second) of scoring ``files``."""
    start = time.perf_counter()
    first = None
    for result in score_paths(files, model, batch_size=batch_size or None, expand=False,
                              catalogue=False):
        assert result.ok, result.error
        first = first if first is not None else time.perf_counter() - start
    return first or 0.0, len(files) / (time.perf_counter() - start)


def main() -> None:
    import torch

    ensure_vit_b16_cache(ARGS.hf_cache)
    files = sorted(str(f) for f in ARGS.livec.glob("*.[jJ][pP][gG]"))[:ARGS.images]
    model = load_model("grmp-clive50", device="cpu", precision="fp32")
    one_run(model, files[:4], 4)  # warm-up: thread pools, allocator
    best: dict[int, tuple[float, float]] = {}
    for _ in range(ARGS.rounds):
        for size in ARGS.sizes:
            first, rate = one_run(model, files, size)
            old = best.get(size)
            best[size] = (min(first, old[0]), max(rate, old[1])) if old else (first, rate)
    print(f"CPU: {cpu_name()}; {detect()}; torch threads {torch.get_num_threads()}; "
          f"load average {os.getloadavg()}")
    print(f"{len(files)} LIVEC photos, ViT-B-16 fp32, best of {ARGS.rounds} interleaved rounds")
    top = max(rate for _, rate in best.values())
    for size in ARGS.sizes:
        first, rate = best[size]
        name = f"batch {size:3d}" if size else "default  "
        print(f"{name}: {rate:6.2f} photos/s ({rate / top:.2f} of the best), "
              f"first row after {first:5.1f} s")
    print(f"default_batch_size('cpu') = {default_batch_size('cpu')}")


if __name__ == "__main__":
    main()
