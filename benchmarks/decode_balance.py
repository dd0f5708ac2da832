"""Does decoding keep up with the model? `score` against the combined limit, in one run.

Targets (issue 27): with default options (decoders and model threads chosen from the
costs measured during the run), `score_paths` on 12 MP JPEGs (4000x3000, quality 92)
with ``--precision fast`` reaches >= 0.9x the combined limit

    1 / (1/model + decode/cores)

where ``model`` is the model alone on pre-decoded tensors (img/s, all its threads) and
``decode`` the seconds one photo's exact decode and squash takes on one thread, both
measured in this run; likewise at 1 MP and on LIVEC's 500x500 photos; fp32 >= 0.9x too.
It also times the decode steps the exact pipeline dropped (the upright copy of an
unrotated photo, the copy of the whole image into numpy), interleaved photo by photo.

The photos are made from LIVEC in a folder outside the repository; the model is the
default GRMP-IQA with random weights (tests/fakehub.py): the real cost, meaningless scores.

    nice -n 5 python benchmarks/decode_balance.py --images 96
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # fakehub: the random-weight Hub cache
DEFAULT_LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"
SIZES = {"12mp": (4000, 3000), "1mp": (1152, 864), "livec": None}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=96, help="photos per size (3 batches of 32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precisions", nargs="+", default=["fast", "fp32"])
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--livec", type=Path, default=DEFAULT_LIVEC)
    p.add_argument("--photos", type=Path, default=Path(tempfile.gettempdir()) / "decode-balance",
                   help="where the 12 MP and 1 MP JPEGs are made (kept for the next run)")
    p.add_argument("--hf-cache", type=Path, default=Path("/work/bench-hf"))
    return p.parse_args()


ARGS = parse_args()
os.environ.update(HF_HUB_CACHE=str(ARGS.hf_cache), HF_HUB_OFFLINE="1")
os.environ.pop("GRMPIQA_MANIFEST", None)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from fakehub import ensure_vit_b16_cache  # noqa: E402
from grmpiqa.data.loader import available_cores  # noqa: E402
from grmpiqa.io.images import open_image  # noqa: E402
from grmpiqa.io.preprocess import load_pixels, squash_array  # noqa: E402
from grmpiqa.model.acceleration import autocast_context  # noqa: E402
from grmpiqa.model.cpu_features import cpu_name, detect  # noqa: E402
from grmpiqa.scoring.engine import score_paths  # noqa: E402
from grmpiqa.weights.loading import load_model  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def photos(size: str, count: int) -> list[str]:
    sources = sorted(ARGS.livec.glob("*.[jJ][pP][gG]"))[:count]
    if SIZES[size] is None:
        return [str(p) for p in sources]
    folder = ARGS.photos / size
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in sources:
        dst = folder / (src.stem + ".jpg")
        if not dst.exists():
            with Image.open(src) as im:
                im.convert("RGB").resize(SIZES[size], Image.Resampling.BICUBIC).save(
                    dst.with_suffix(".tmp"), "JPEG", quality=92)
            dst.with_suffix(".tmp").rename(dst)
        out.append(str(dst))
    return out


def decode_steps(files: list[str], cfg) -> dict[str, float]:
    """CPU ms per photo of the exact decode: as before (upright copy, whole-array copy),
    without the upright copy, and as now; interleaved photo by photo."""
    def before(path: str, upright_copy: bool) -> None:
        image = open_image(path)
        if upright_copy:
            image = ImageOps.exif_transpose(image)
        squash_array(np.asarray(image, dtype=np.uint8), cfg)

    steps = {"both copies": lambda p: before(p, True),
             "no upright copy": lambda p: before(p, False),
             "now (rows only)": lambda p: load_pixels(p, cfg)}
    spent = dict.fromkeys(steps, 0.0)
    for path in files:
        for name, step in steps.items():
            start = time.thread_time()
            step(path)
            spent[name] += time.thread_time() - start
    return {name: 1000 * s / len(files) for name, s in spent.items()}


def decode_seconds(files: list[str], cfg) -> float:
    """Wall seconds per photo of the exact decode on this one thread."""
    start = time.perf_counter()
    for path in files:
        load_pixels(path, cfg)
    return (time.perf_counter() - start) / len(files)


def model_rate(model, pixels: torch.Tensor) -> float:
    """img/s of the model alone on decoded tensors, batch by batch."""
    start = time.perf_counter()
    with torch.inference_mode(), autocast_context(model.device, model.precision):
        for i in range(0, len(pixels), ARGS.batch_size):
            model.predict(pixels[i:i + ARGS.batch_size])
    return len(pixels) / (time.perf_counter() - start)


def score_rate(model, files: list[str]) -> float:
    start = time.perf_counter()
    results = list(score_paths(files, model, batch_size=ARGS.batch_size, expand=False))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    return len(files) / (time.perf_counter() - start)


def main() -> None:
    ensure_vit_b16_cache(ARGS.hf_cache)
    cores = available_cores()
    print(f"CPU: {cpu_name()}, {detect().describe()}; {cores} cores, torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads; load {load()}")
    models = {p: load_model("grmp-clive50", device="cpu", precision=p) for p in ARGS.precisions}
    cfg = next(iter(models.values())).preprocess
    for size in ARGS.sizes:
        files = photos(size, ARGS.images)
        steps = decode_steps(files[:8], cfg)
        print(f"\n{size}: decode CPU ms/photo, one thread: "
              + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
        pixels = torch.stack([load_pixels(f, cfg) for f in files])
        for precision, model in models.items():
            model_rate(model, pixels[:ARGS.batch_size])  # first calls, text features
            before = load()
            alone = model_rate(model, pixels)
            decode = decode_seconds(files[:16], cfg)
            limit = 1 / (1 / alone + decode / cores)
            scored = score_rate(model, files)
            print(f"  {precision:>5} ({model.precision}): model alone {alone:.2f} img/s, decode "
                  f"{decode * 1000:.0f} ms/photo, limit {limit:.2f} img/s; score {scored:.2f} "
                  f"img/s = {scored / limit:.2f}x the limit ({len(files)} photos, batch "
                  f"{ARGS.batch_size}; load {before} -> {load()})")


if __name__ == "__main__":
    main()
