"""Ratings and suggest, measured in one run on real photos (LIVEC).

1. Reading ratings: milliseconds per photo for a sidecar and for XMP inside a
   JPEG, against decoding that photo for the model (what ``adapt`` then does).
2. Embeddings: the model on one decoded batch with and without embeddings,
   interleaved runs (what ``score_paths(features=True)`` adds to a batch).
3. Coverage: mean distance from each photo to its nearest chosen one, for the
   ``suggest`` choice and for a random choice of as many (mean of 20 draws).

The model is a random-weight ViT-B/16 (real cost; its embeddings are a fixed
random function of the pixels, not CLIP's semantics).

    GRMPIQA_BENCH_HF_CACHE=/path/to/cache python benchmarks/ratings.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
DEFAULT_LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--livec", type=Path, default=DEFAULT_LIVEC)
    p.add_argument("--read-images", type=int, default=200)
    p.add_argument("--embedding-images", type=int, default=16)
    p.add_argument("--coverage-images", type=int, default=200)
    p.add_argument("-n", type=int, default=50, help="photos suggest chooses")
    p.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    return p.parse_args()


ARGS = parse_args()
HF_CACHE = Path(os.environ.get("GRMPIQA_BENCH_HF_CACHE", ARGS.workdir / "hf"))
os.environ.update(HF_HUB_CACHE=str(HF_CACHE), HF_HUB_OFFLINE="1",
                  GRMPIQA_CACHE=str(ARGS.workdir / "grmpiqa-cache"))
os.environ.pop("GRMPIQA_MANIFEST", None)

import numpy as np  # noqa: E402

from fakehub import ensure_vit_b16_cache  # noqa: E402
from grmpiqa.io.preprocess import load_pixels  # noqa: E402
from grmpiqa.scoring.engine import score_paths  # noqa: E402
from grmpiqa.weights.loading import load_model  # noqa: E402
from grmpiqa.workflow.diversity import (  # noqa: E402
    coverage,
    farthest_point_order,
    random_coverage,
    suggestion_space,
)
from grmpiqa.workflow.ratings import read_ratings  # noqa: E402
from xmp_photos import jpeg_with_xmp, packet  # noqa: E402


def reading(photos: list[Path]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        sidecars, embedded = Path(folder, "sidecars"), Path(folder, "embedded")
        sidecars.mkdir()
        embedded.mkdir()
        for i, photo in enumerate(photos):
            shutil.copyfile(photo, sidecars / photo.name)
            (sidecars / photo.name).with_suffix(".xmp").write_bytes(packet(1 + i % 5))
            (embedded / photo.name).write_bytes(
                jpeg_with_xmp(photo.read_bytes(), packet(1 + i % 5)))
        timings = {}
        for name, where in (("sidecar", sidecars), ("embedded", embedded)):
            start = time.perf_counter()
            ratings = read_ratings([str(where)])
            timings[name] = (time.perf_counter() - start) / len(photos) * 1e3
            assert len(ratings.labelled) == len(photos)
        model = load_model("grmp-clive50", device="cpu")
        start = time.perf_counter()
        for photo in photos:
            load_pixels(str(photo), model.preprocess)
        decode = (time.perf_counter() - start) / len(photos) * 1e3
    print(f"reading ratings of {len(photos)} LIVEC JPEGs: sidecar {timings['sidecar']:.3f} ms, "
          f"embedded (APP1) {timings['embedded']:.3f} ms per photo; decoding one for the "
          f"model {decode:.2f} ms ({decode / timings['embedded']:.0f}x the embedded read)")


def embeddings_cost(model, photos: list[str], repeats: int = 5) -> None:
    """The model alone on one decoded batch, with and without embeddings, interleaved."""
    import torch

    batch = torch.stack([load_pixels(p, model.preprocess) for p in photos])
    times: dict[bool, list[float]] = {False: [], True: []}
    with torch.inference_mode():
        for _ in range(repeats):
            for wanted in (False, True):
                start = time.perf_counter()
                if wanted:
                    model.predict_with_embedding(batch)
                else:
                    model.predict(batch)
                times[wanted].append(time.perf_counter() - start)
    plain, rich = (statistics.median(times[k]) for k in (False, True))
    print(f"model on a batch of {len(photos)}, median of {repeats} interleaved runs: "
          f"{plain:.3f} s plain, {rich:.3f} s with embeddings (ratio {rich / plain:.3f})")


def coverage_figures(model, photos: list[str], n: int) -> None:
    results = [r for r in score_paths(photos, model, workers=1, features=True) if r.ok]
    embeddings = np.array([r.embedding for r in results])
    for weight in (1.0, 0.0):
        points = suggestion_space(embeddings, [r.score for r in results], weight)
        for seed in (0, 1):
            order = farthest_point_order(points, n, seed)
            ours, chance = coverage(points, order), random_coverage(points, n, seed=seed)
            print(f"coverage, {len(results)} photos, n={n}, --score-weight {weight:g}, "
                  f"seed {seed}: suggest {ours:.4f}, random {chance:.4f} "
                  f"(ratio {ours / chance:.3f})")


def main() -> None:
    import torch

    ensure_vit_b16_cache(HF_CACHE)
    photos = sorted(ARGS.livec.glob("*.[jJ][pP][gG]"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    reading(photos[:ARGS.read_images])
    model = load_model("grmp-clive50", device="cpu")
    embeddings_cost(model, [str(p) for p in photos[:ARGS.embedding_images]])
    coverage_figures(model, [str(p) for p in photos[:ARGS.coverage_images]], ARGS.n)


if __name__ == "__main__":
    main()
