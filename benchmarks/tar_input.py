"""Tar shards vs the same photos as files: `score` wall time, measured in one run.

The LIVEC JPEGs are packed into uncompressed WebDataset-style shards of 128
samples (image + caption) in the workdir; then the same `score_paths` call
runs over the files and over the shards, alternately, ``--repeat`` times each.
Printed: median seconds of each, the ratio tar / files (target about 1.0) and
whether the scores are identical. The default model is the tiny random test
model, so decoding and reading dominate and any cost of the tar path shows;
``--model vit-b16`` uses the random-weight ViT-B-16 (the real model's cost).

    python benchmarks/tar_input.py
    python benchmarks/tar_input.py --model vit-b16 --images 128
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # fakehub: the test suite's fake Hub builders
DEFAULT_LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--livec", type=Path, default=DEFAULT_LIVEC)
    parser.add_argument("--images", type=int, default=627)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", choices=("tiny", "vit-b16"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "grmpiqa-tar-bench")
    return parser.parse_args()


ARGS = parse_args()
HF_CACHE = ARGS.workdir / "hf"
os.environ.update(HF_HUB_CACHE=str(HF_CACHE), HF_HUB_OFFLINE="1",
                  GRMPIQA_CACHE=str(ARGS.workdir / "grmpiqa-cache"))

from fakehub import ensure_vit_b16_cache, tiny_manifest  # noqa: E402
from grmpiqa.scoring.engine import score_paths  # noqa: E402
from grmpiqa.weights.loading import load_model  # noqa: E402
from grmpiqa.weights.manifest import parse_manifest  # noqa: E402


def cpu_features() -> str:
    flags = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("flags"):
                flags = line
                break
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile")
    return ", ".join(f for f in wanted if f" {f}" in flags) or "none of avx2/avx512"


def pack_shards(files: list[Path], folder: Path, per_shard: int = 128) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for n, start in enumerate(range(0, len(files), per_shard)):
        shard = folder / f"{n:05d}.tar"
        with tarfile.open(shard, "w") as tar:
            for i, path in enumerate(files[start:start + per_shard], start):
                tar.add(path, arcname=f"{i:06d}.jpg")
                caption = tarfile.TarInfo(f"{i:06d}.txt")
                text = path.name.encode()
                caption.size = len(text)
                tar.addfile(caption, io.BytesIO(text))
        shards.append(str(shard))
    return shards


def load() -> object:
    if ARGS.model == "vit-b16":
        ensure_vit_b16_cache(HF_CACHE)
        return load_model("grmp-clive50", device=ARGS.device)
    manifest = tiny_manifest(HF_CACHE)
    return load_model("grmp-tiny", device=ARGS.device,
                      manifest=parse_manifest(manifest, "tiny"))


def timed(model: object, inputs: list[str]) -> tuple[float, list[float]]:
    start = time.perf_counter()
    rows = list(score_paths(inputs, model, batch_size=ARGS.batch_size, workers=ARGS.workers))
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in rows), [r.error for r in rows if not r.ok][:3]
    return elapsed, [r.score for r in rows]


def main() -> None:
    files = sorted(ARGS.livec.glob("*.[jJ][pP][gG]"))[:ARGS.images]
    if not files:
        sys.exit(f"no JPEGs in {ARGS.livec}")
    shards = pack_shards(files, ARGS.workdir / f"shards-{len(files)}")
    model = load()
    timed(model, [str(f) for f in files[:ARGS.batch_size]])  # warm-up
    as_files, as_tars = [], []
    for _ in range(ARGS.repeat):
        seconds, file_scores = timed(model, [str(f) for f in files])
        as_files.append(seconds)
        seconds, tar_scores = timed(model, shards)
        as_tars.append(seconds)
    files_s, tars_s = statistics.median(as_files), statistics.median(as_tars)
    result = {"images": len(files), "shards": len(shards), "model": ARGS.model,
              "device": ARGS.device,
              "workers": ARGS.workers, "files_s": round(files_s, 3),
              "tars_s": round(tars_s, 3), "ratio_tar_to_files": round(tars_s / files_s, 3),
              "scores_identical": file_scores == tar_scores, "cpu": cpu_features(),
              "date": time.strftime("%Y-%m-%d")}
    print(f"{len(files)} LIVEC JPEGs, model {ARGS.model}, {ARGS.workers} decoding worker(s), "
          f"median of {ARGS.repeat}; CPU features: {result['cpu']}")
    print(f"  as files:               {files_s:8.2f} s  ({len(files) / files_s:6.1f} img/s)")
    print(f"  as {len(shards)} tar shards:      {tars_s:8.2f} s  "
          f"({len(files) / tars_s:6.1f} img/s)")
    print(f"  ratio tar / files (target ~1.0)  {tars_s / files_s:.3f}")
    print(f"  scores identical:       {result['scores_identical']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
