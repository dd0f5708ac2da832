"""fp32, bf16 and int8 on the CPU, in one run: the model alone and `grmpiqa score` end to end.

Prints images/s and the ratio to fp32 of (1) the model alone on 32 decoded LIVEC photos
(`load_model(..., precision=P).predict`, one warm-up pass, then timed passes interleaved
across precisions, round after round) and (2) `grmpiqa score - -q --precision P -d cpu`
on the first --images LIVEC photos in a fresh process (Python start-up and model
loading included), interleaved the same way; with --agreement N, the SRCC and max
|score difference| of bf16 and int8 against fp32 on the first N photos. The load
average is printed with each figure: other jobs on the machine slow every precision.

    GRMPIQA_BENCH_HF_CACHE=/path/to/hf python benchmarks/cpu_precision.py --images 96
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # fakehub: the test suite's fake Hub builders
PRECISIONS = ("fp32", "bf16", "int8")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=96, help="photos per `grmpiqa score` run")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--agreement", type=int, default=0, help="photos for the rank agreement")
    p.add_argument("--skip", nargs="*", default=[], choices=["model", "score"])
    p.add_argument("--livec", type=Path, default=ROOT.parent / "shared" / "data" / "livec"
                   / "images")
    p.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    return p.parse_args()


ARGS = parse_args()
HF_CACHE = Path(os.environ.get("GRMPIQA_BENCH_HF_CACHE", ARGS.workdir / "hf"))
os.environ.update(HF_HUB_CACHE=str(HF_CACHE), HF_HUB_OFFLINE="1")
os.environ.pop("GRMPIQA_MANIFEST", None)

import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from fakehub import ensure_vit_b16_cache  # noqa: E402
from grmpiqa.io.preprocess import load_pixels  # noqa: E402
from grmpiqa.model.acceleration import autocast_context  # noqa: E402
from grmpiqa.model.cpu_features import detect  # noqa: E402
from grmpiqa.weights.loading import load_model  # noqa: E402


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def predict(model, pixels: torch.Tensor) -> tuple[float, list[float]]:
    start = time.perf_counter()
    out = []
    with torch.inference_mode(), autocast_context(model.device, model.precision):
        for i in range(0, len(pixels), ARGS.batch_size):
            out += model.predict(pixels[i:i + ARGS.batch_size]).float().tolist()
    return time.perf_counter() - start, out


def score_cli(precision: str, listing: Path) -> float:
    start = time.perf_counter()
    with open(listing, "rb") as stdin:
        subprocess.run([sys.executable, "-m", "grmpiqa", "score", "-", "-q", "--precision",
                        precision, "-d", "cpu"], stdin=stdin, stdout=subprocess.DEVNULL,
                       check=True)
    return time.perf_counter() - start


def report(title: str, seconds: dict[str, float], images: int) -> None:
    print(title)
    for p, s in seconds.items():
        print(f"  {p:<5} {s:8.1f} s  {images / s:6.2f} img/s  {seconds['fp32'] / s:5.2f}x fp32")


def main() -> None:
    ensure_vit_b16_cache(HF_CACHE)
    photos = sorted(str(p) for p in ARGS.livec.glob("*.[jJ][pP][gG]"))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {detect().describe()}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {load()}", flush=True)
    models = {p: load_model("grmp-clive50", device="cpu", precision=p) for p in PRECISIONS}
    if "model" not in ARGS.skip:
        pixels = torch.stack([load_pixels(f, models["fp32"].preprocess)
                              for f in photos[:ARGS.batch_size]])
        for m in models.values():
            predict(m, pixels[:2])  # text features, allocations
        alone = dict.fromkeys(PRECISIONS, 0.0)
        for r in range(ARGS.rounds):
            for p, m in models.items():
                alone[p] += predict(m, pixels)[0]
                print(f"  model alone, round {r + 1}, {p}: {load()}", flush=True)
        report(f"model alone, batch {ARGS.batch_size}, {ARGS.rounds} round(s)", alone,
               ARGS.rounds * len(pixels))
    if "score" not in ARGS.skip:
        listing = ARGS.workdir / f"cpu-precision-{ARGS.images}.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("\n".join(photos[:ARGS.images]) + "\n")
        end_to_end = dict.fromkeys(PRECISIONS, 0.0)
        for r in range(ARGS.rounds):
            for p in PRECISIONS:
                end_to_end[p] += score_cli(p, listing)
                print(f"  grmpiqa score, round {r + 1}, {p}: {load()}", flush=True)
        report(f"grmpiqa score, {ARGS.images} photos, incl. start-up and model load",
               end_to_end, ARGS.rounds * ARGS.images)
    if ARGS.agreement:
        agreement(models, photos[:ARGS.agreement])


def agreement(models: dict, photos: list[str]) -> None:
    """Batch by batch, all precisions on each batch, with the running figures printed
    after each batch: a run cut short still reports on the photos it covered."""
    scores: dict[str, list[float]] = {p: [] for p in models}
    for i in range(0, len(photos), ARGS.batch_size):
        pixels = torch.stack([load_pixels(f, models["fp32"].preprocess)
                              for f in photos[i:i + ARGS.batch_size]])
        for p, m in models.items():
            scores[p] += predict(m, pixels)[1]
        exact = scores["fp32"]
        line = [f"agreement with fp32, {len(exact)} photos (fp32 span "
                f"{max(exact) - min(exact):.4f}; {load()})"]
        for p in ("bf16", "int8"):
            diff = max(abs(a - b) for a, b in zip(scores[p], exact, strict=True))
            line.append(f"{p}: SRCC {spearmanr(scores[p], exact).statistic:.4f}, "
                        f"max |diff| {diff:.5f}")
        print("; ".join(line), flush=True)


if __name__ == "__main__":
    main()
