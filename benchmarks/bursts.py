"""What burst grouping costs next to a ``score`` run, and how well it groups, in one run.

On a shoot generated from LIVEC photos (tests/bursts_set.py: bursts of 3-6
jittered frames among single photos, with and without EXIF), scored by a
random-weight ViT-B-16 (the real model's cost; its embedding is the weakest
case for grouping):

* the cost: the same photos scored without and with the burst signals
  (rounds interleaved), plus the grouping itself, as a fraction of the plain
  run; and the parts (worker signals per photo, grouping per photo) next to
  the model's time per photo;
* the adjusted Rand index of the groups against the truth, with and without EXIF;
* grouping time and peak memory for 10,000 and 50,000 synthetic photos (linear).

    python benchmarks/bursts.py [--bursts 20] [--singles 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bursts", type=int, default=20)
    p.add_argument("--singles", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=ROOT / ".bench",
                   help="the random-weight Hub cache is kept here (shared with throughput.py)")
    p.add_argument("--livec", type=Path, default=ROOT.parent / "shared" / "data" / "livec")
    p.add_argument("--skip", nargs="*", default=[], choices=["cost", "quality", "scaling"])
    return p.parse_args()


ARGS = parse_args()
HF_CACHE = Path(os.environ.get("GRMPIQA_BENCH_HF_CACHE", ARGS.workdir / "hf"))
os.environ.update(HF_HUB_CACHE=str(HF_CACHE), HF_HUB_OFFLINE="1",
                  GRMPIQA_CACHE=str(ARGS.workdir / "grmpiqa-cache"))
os.environ.pop("GRMPIQA_MANIFEST", None)

import numpy as np  # noqa: E402

from bursts_set import adjusted_rand_index, make_shoot  # noqa: E402
from fakehub import ensure_vit_b16_cache  # noqa: E402
from grmpiqa.config import REPORT_THUMBNAIL, BurstOptions  # noqa: E402
from grmpiqa.io.images import open_image  # noqa: E402
from grmpiqa.io.signals import hash_and_layout, read_capture, thumbnail_jpeg  # noqa: E402
from grmpiqa.results import PhotoFeatures, ScoreResult  # noqa: E402
from grmpiqa.scoring.engine import score_paths  # noqa: E402
from grmpiqa.workflow.bursts import assign  # noqa: E402


def timed(action):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the decoding workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_timed(action):  # type: ignore[no-untyped-def]
    start = cpu_seconds()
    value = action()
    return cpu_seconds() - start, value


def cost(model, paths: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Rounds of (plain, with signals) runs, the order swapped every round so that a
    drifting machine load cancels; the ratio is taken within each round."""
    list(score_paths(paths[:8], model, workers=1))  # warm-up
    plain, signals, grouping, ratios, cpu_ratios = [], [], [], [], []
    for round_number in range(ARGS.rounds):
        times, cpu = {}, {}
        for features in ((False, True) if round_number % 2 == 0 else (True, False)):
            start = cpu_seconds()
            seconds, results = timed(lambda features=features: list(
                score_paths(paths, model, workers=1, features=features)))
            times[features], cpu[features] = seconds, cpu_seconds() - start
            if features:
                cpu["group"], _ = cpu_timed(lambda results=results: assign(results))
                times["group"] = timed(lambda results=results: assign(results))[0]
        plain.append(times[False])
        signals.append(times[True])
        grouping.append(times["group"])
        ratios.append((times[True] + times["group"]) / times[False] - 1)
        cpu_ratios.append((cpu[True] + cpu["group"]) / cpu[False] - 1)
    n = len(paths)
    base, with_signals, group = (statistics.median(plain), statistics.median(signals),
                                 statistics.median(grouping))
    print(f"score {n} photos: plain {base:6.1f} s | with burst signals {with_signals:6.1f} s | "
          f"grouping {group * 1000:6.1f} ms | --bursts adds {statistics.median(ratios):+.1%} "
          f"to the run (median of {ARGS.rounds} rounds; each round "
          + ", ".join(f"{r:+.1%}" for r in ratios) + ")")
    print(f"CPU time (this process and the decoding workers): --bursts adds "
          f"{statistics.median(cpu_ratios):+.1%} (each round "
          + ", ".join(f"{r:+.1%}" for r in cpu_ratios) + ")")
    decoded = [open_image(p, draft_size=488) for p in paths[:50]]
    start = time.perf_counter()
    for image, path in zip(decoded, paths, strict=False):
        hash_and_layout(image)
        read_capture(path)
    per_photo = (time.perf_counter() - start) / len(decoded)
    start = time.perf_counter()
    for image in decoded:
        thumbnail_jpeg(image, REPORT_THUMBNAIL)
    thumbnail = (time.perf_counter() - start) / len(decoded)
    model_per_photo = base / n
    print(f"parts per photo: worker signals (hash, layout, EXIF) {per_photo * 1000:5.2f} ms | "
          f"grouping {group / n * 1000:5.3f} ms | model {model_per_photo * 1000:6.1f} ms | "
          f"(signals + grouping) / model {(per_photo + group / n) / model_per_photo:.2%} | "
          f"--report's thumbnail {thumbnail * 1000:5.2f} ms "
          f"({thumbnail / model_per_photo:.2%} of the model)")


def quality(model, shoots: dict[bool, list]) -> None:  # type: ignore[no-untyped-def]
    for exif, shots in shoots.items():
        results = list(score_paths([str(s.path) for s in shots], model, workers=1,
                                   features=True))
        found = [place[0] for place in assign(results)]
        ari = adjusted_rand_index([s.truth for s in shots], found)
        print(f"{'with' if exif else 'without'} EXIF: {len(shots)} photos, "
              f"{len({s.truth for s in shots})} true groups, {len(set(found))} found, "
              f"ARI {ari:.3f}")
    embeddings = np.stack([r.features.embedding for r in results])
    cosine = embeddings @ embeddings.T
    truth = np.array([s.truth for s in shots])
    same = (truth[:, None] == truth[None, :]) & ~np.eye(len(truth), dtype=bool)
    unrelated = truth[:, None] != truth[None, :]
    print(f"embedding cosine (all pairs, for scale): same burst min {cosine[same].min():.3f} | "
          f"unrelated min {cosine[unrelated].min():.3f}, median "
          f"{np.median(cosine[unrelated]):.3f}, max {cosine[unrelated].max():.3f}")


def synthetic(n: int, rng: np.random.Generator) -> list[ScoreResult]:
    """Random photos, one in four a re-encoded copy of the one before it."""
    out: list[ScoreResult] = []
    for i in range(n):
        if i and i % 4 == 0:
            previous = out[-1].features
            flip = 1 << int(rng.integers(0, 64))
            features = PhotoFeatures(previous.phash ^ flip, previous.layout,
                                     previous.embedding)
        else:
            embedding = rng.standard_normal(512).astype(np.float32)
            features = PhotoFeatures(int(rng.integers(0, 2**63)),
                                     rng.integers(0, 256, 768, dtype=np.uint8).tobytes(),
                                     embedding / np.linalg.norm(embedding))
        out.append(ScoreResult(f"{i}.jpg", float(rng.random()), features=features))
    return out


def scaling() -> None:
    rng = np.random.default_rng(0)
    for n in (10_000, 50_000):
        results = synthetic(n, rng)
        tracemalloc.start()
        seconds, places = timed(lambda results=results: assign(results, BurstOptions()))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        groups = len({p[0] for p in places})
        print(f"{n:6d} synthetic photos: grouping {seconds:6.2f} s ({seconds / n * 1e6:5.1f} us "
              f"a photo), peak extra memory {peak / 1e6:6.1f} MB ({peak / n / 1e3:4.1f} kB a "
              f"photo), {groups} groups for {n - n // 4 + (n % 4 == 0)} expected")


def main() -> None:
    import torch

    from grmpiqa.weights.loading import load_model

    ensure_vit_b16_cache(HF_CACHE)
    model = load_model(None, device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; random-weight "
          "ViT-B-16 (grmp-clive50's architecture)")
    sources = sorted((ARGS.livec / "images").glob("*.JPG"))
    with tempfile.TemporaryDirectory(prefix="grmpiqa-bursts-bench-") as tmp:
        shoots = {exif: make_shoot(Path(tmp) / str(exif), sources, bursts=ARGS.bursts,
                                   singles=ARGS.singles, exif=exif, seed=2)
                  for exif in (True, False)}
        if "cost" not in ARGS.skip:
            cost(model, [str(s.path) for s in shoots[True]])
        if "quality" not in ARGS.skip:
            quality(model, shoots)
    if "scaling" not in ARGS.skip:
        scaling()


if __name__ == "__main__":
    main()
