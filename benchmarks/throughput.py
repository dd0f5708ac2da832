"""Throughput, fast path, memory and start-up of `grmpiqa score`, measured in one run.

Targets (issue 5), all printed as ratios of figures taken in this same run:
  score / ceiling >= 0.9 on the LIVEC JPEGs and >= 0.8 on 12-megapixel JPEGs, where the
  ceiling is the same model on already-decoded 224x224 tensors at the same batch size
  (score decodes at full resolution, the authors' pixels; `--fast-decode` is measured
  too, with its deviation from the exact pixels and scores, issue 11);
  the int8 fast path >= 1.5x fp32 with scores within 0.02 and rank correlation > 0.99;
  bf16 (issue 17) >= 1.8x fp32 for the model alone on CPUs with native bf16;
  4x more images costs < 1.1x the peak RSS; `--help` and `models` start without torch.

The model is the default GRMP-IQA (ViT-B-16 + 100 prompt tokens per layer) with random
weights, written into a local Hugging Face cache: its cost is the real model's, its scores
mean nothing. The measurements are interleaved batch by batch (ceiling, score, 12 MP,
int8, bf16, then the next batch) so that a machine whose speed drifts during the run affects
every figure alike.

    python benchmarks/throughput.py                       # CPU, 128 images
    python benchmarks/throughput.py --device cuda --images 627 --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # fakehub: the test suite's fake Hub builders
DEFAULT_LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=128, help="photos per measurement")
    p.add_argument("--accuracy-images", type=int, default=627,
                   help="photos on which int8 scores are compared with fp32 ones")
    p.add_argument("--big-images", type=int, default=None,
                   help="12 MP JPEGs to make and score (default: --images)")
    p.add_argument("--fast-decode-images", type=int, default=32,
                   help="photos on which --fast-decode is compared with the exact pipeline")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeat", type=int, default=1,
                   help="score the photo list this many times over in one run (GPU runs are "
                        "too quick for 627 photos to outweigh starting the decoders)")
    p.add_argument("--rss-images", type=int, default=128,
                   help="N of the memory check (N and 4N photos); several batches, so that N "
                        "already shows the steady state rather than a single batch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--gpu-decode", default="auto", choices=["auto", "on", "off"],
                   help="JPEG decoding on the GPU (auto: on CUDA)")
    p.add_argument("--livec", type=Path, default=DEFAULT_LIVEC, help="folder of JPEGs")
    p.add_argument("--workdir", type=Path, default=ROOT / ".bench",
                   help="random-weight Hub cache and 12 MP JPEGs are kept here")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["big", "fast", "bf16", "memory", "startup", "compile"])
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args()


ARGS = parse_args()
HF_CACHE = Path(os.environ.get("GRMPIQA_BENCH_HF_CACHE", ARGS.workdir / "hf"))
os.environ.update(HF_HUB_CACHE=str(HF_CACHE), HF_HUB_OFFLINE="1",
                  GRMPIQA_CACHE=str(ARGS.workdir / "grmpiqa-cache"))
os.environ.pop("GRMPIQA_MANIFEST", None)

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from fakehub import ensure_vit_b16_cache  # noqa: E402
from grmpiqa.io.preprocess import load_pixels  # noqa: E402
from grmpiqa.model.cpu_features import detect as detect_cpu  # noqa: E402
from grmpiqa.scoring.engine import score_paths  # noqa: E402
from grmpiqa.weights.loading import load_model  # noqa: E402


def _upscale(job: tuple[Path, Path]) -> None:
    src, dst = job
    if not dst.exists():
        with Image.open(src) as im:
            big = im.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
        big.save(dst.with_suffix(".tmp"), "JPEG", quality=90)
        dst.with_suffix(".tmp").rename(dst)


def big_jpegs(sources: list[Path]) -> list[str]:
    """12-megapixel (4000x3000) JPEGs made by upscaling the photos, kept in the workdir."""
    from multiprocessing import Pool

    folder = ARGS.workdir / "12mp"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(src, folder / (src.stem + ".jpg")) for src in sources]
    with Pool(os.cpu_count()) as pool:
        pool.map(_upscale, jobs)
    return [str(dst) for _, dst in jobs]


def timed_scores(model, files: list[str], **kw) -> tuple[float, list[float]]:
    """(seconds, scores) of the whole `score` pipeline over ``files``: decoding in workers,
    the model, results in order."""
    start = time.perf_counter()
    results = list(score_paths(files, model, batch_size=ARGS.batch_size, workers=ARGS.workers,
                               expand=False, gpu_decode=ARGS.gpu_decode, **kw))
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    return elapsed, [r.score for r in results]


def predict(model, pixels: torch.Tensor) -> tuple[float, list[float]]:
    """(seconds, scores) of the model alone on decoded uint8 224x224 tensors in memory:
    the ceiling."""
    from grmpiqa.model.acceleration import autocast_context

    device = model.device
    batches = [pixels[i:i + ARGS.batch_size] for i in range(0, len(pixels), ARGS.batch_size)]
    if device.type == "cuda":
        batches = [b.to(device) for b in batches]
        torch.cuda.synchronize()
    out = []
    with torch.inference_mode(), autocast_context(device, model.precision):
        start = time.perf_counter()
        for b in batches:
            out.append(model.predict(b))
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return elapsed, torch.cat(out).float().cpu().tolist()


def fast_decode_deviation(model, files: list[str], name: str) -> dict[str, float]:
    """How far ``--fast-decode`` (JPEG draft decoding) moves the model inputs and the
    scores away from the exact, full-resolution pipeline."""
    drafted = torch.stack([load_pixels(f, model.preprocess, draft=True) for f in files])
    exact = torch.stack([load_pixels(f, model.preprocess) for f in files])
    diff = (drafted.int() - exact.int()).abs()
    scores = zip(predict(model, drafted)[1], predict(model, exact)[1], strict=True)
    return {f"fast_{name}_images": len(files),
            f"fast_{name}_identical": (diff == 0).float().mean().item(),
            f"fast_{name}_mean_pixel_diff": diff.float().mean().item(),
            f"fast_{name}_max_pixel_diff": diff.max().item(),
            f"fast_{name}_max_score_diff": max(abs(a - b) for a, b in scores)}


_EXACT: dict[str, list[float]] = {}


def agreement(figures: dict[str, float], tag: str, model, quick, photos: list[Path]) -> None:
    """Max |score diff| and rank correlation of ``quick`` against fp32 on the accuracy photos."""
    accuracy = [str(p) for p in photos[:ARGS.accuracy_images]]
    every = torch.stack([load_pixels(f, model.preprocess) for f in accuracy])
    if "fp32" not in _EXACT:
        _EXACT["fp32"] = predict(model, every)[1]
    exact, scores = _EXACT["fp32"], predict(quick, every)[1]
    figures["accuracy_images"] = len(accuracy)
    figures[f"{tag}_max_score_diff"] = max(abs(a - b) for a, b in zip(scores, exact,
                                                                      strict=True))
    figures[f"{tag}_srcc_vs_fp32"] = float(spearmanr(scores, exact).statistic)
    figures["score_spread_fp32"] = max(exact) - min(exact)


def startup_seconds(args: list[str], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ensure_vit_b16_cache(HF_CACHE)
    photos = sorted(ARGS.livec.glob("*.[jJ][pP][gG]"))
    files = [str(p) for p in photos[:ARGS.images]]
    figures: dict[str, float] = {"images": len(files), "batch_size": ARGS.batch_size,
                                 "repeat": ARGS.repeat}
    model = load_model("grmp-clive50", device=ARGS.device)
    pixels = torch.stack([load_pixels(f, model.preprocess) for f in files])
    big = big_jpegs(photos[:ARGS.images]) if "big" not in ARGS.skip else []
    fast = None
    if "fast" not in ARGS.skip and ARGS.device == "cpu":
        fast = load_model("grmp-clive50", device="cpu", precision="int8")
    bf16 = None
    if "bf16" not in ARGS.skip and ARGS.device == "cpu":
        bf16 = load_model("grmp-clive50", device="cpu", precision="bf16")
    compiled = None
    if "compile" not in ARGS.skip and ARGS.device.startswith("cuda"):
        compiled = load_model("grmp-clive50", device=ARGS.device, compile=True)
    for warm in (model, fast, bf16, compiled):  # first calls allocate, compile, cache text features
        if warm is not None:
            predict(warm, pixels[:ARGS.batch_size])

    seconds: dict[str, float] = {}

    def add(name: str, elapsed: float) -> None:
        seconds[name] = seconds.get(name, 0.0) + elapsed

    step = ARGS.batch_size * ARGS.repeat if ARGS.device != "cpu" else ARGS.batch_size
    for start in range(0, len(files), step):
        chunk = slice(start, start + step)
        add("ceiling", predict(model, pixels[chunk])[0] * ARGS.repeat)
        add("score", timed_scores(model, files[chunk] * ARGS.repeat)[0])
        if big:
            add("score_12mp", timed_scores(model, big[chunk] * ARGS.repeat)[0])
            add("score_12mp_fast", timed_scores(model, big[chunk] * ARGS.repeat, draft=True)[0])
        if fast is not None:
            add("int8_ceiling", predict(fast, pixels[chunk])[0])
            add("int8_score", timed_scores(fast, files[chunk])[0])
        if bf16 is not None:
            add("bf16_ceiling", predict(bf16, pixels[chunk])[0])
            add("bf16_score", timed_scores(bf16, files[chunk])[0])
        if compiled is not None:
            add("compile_ceiling", predict(compiled, pixels[chunk])[0] * ARGS.repeat)
            add("compile_score", timed_scores(compiled, files[chunk] * ARGS.repeat)[0])
    total = len(files) * ARGS.repeat
    for name, elapsed in seconds.items():
        once = name.startswith(("int8", "bf16"))
        figures[f"{name}_img_s"] = (len(files) if once else total) / elapsed
    figures["score_ratio"] = figures["score_img_s"] / figures["ceiling_img_s"]
    if big:
        figures["big_images"] = len(big)
        figures["score_12mp_ratio"] = figures["score_12mp_img_s"] / figures["ceiling_img_s"]
        figures["score_12mp_fast_ratio"] = (figures["score_12mp_fast_img_s"]
                                            / figures["ceiling_img_s"])
        figures.update(fast_decode_deviation(model, big[:ARGS.fast_decode_images], "12mp"))
    figures.update(fast_decode_deviation(model, files[:ARGS.fast_decode_images], "livec"))
    for quick_model, tag in ((fast, "int8"), (bf16, "bf16")):
        if quick_model is not None:
            agreement(figures, tag, model, quick_model, photos)
    if fast is not None:
        figures["int8_speedup"] = figures["int8_score_img_s"] / figures["score_img_s"]
        figures["int8_model_speedup"] = figures["int8_ceiling_img_s"] / figures["ceiling_img_s"]
    if bf16 is not None:
        figures["bf16_speedup"] = figures["bf16_score_img_s"] / figures["score_img_s"]
        figures["bf16_model_speedup"] = figures["bf16_ceiling_img_s"] / figures["ceiling_img_s"]

    if "memory" not in ARGS.skip:
        library = [str(p) for p in photos]
        library = (library * (4 * ARGS.rss_images // len(library) + 1))[: 4 * ARGS.rss_images]
        few = library[: ARGS.rss_images]
        common = ["score", "-q", "-b", str(ARGS.batch_size), "-d", ARGS.device, "-"]
        if ARGS.device == "cpu":
            common += ["--precision", "int8"]  # the same pipeline, in a third of the time
        figures["rss_n"] = len(few)
        figures["peak_rss_mb_n"] = _rss_with_stdin(common, few)
        figures["peak_rss_mb_4n"] = _rss_with_stdin(common, library)
        figures["rss_ratio_4n_over_n"] = figures["peak_rss_mb_4n"] / figures["peak_rss_mb_n"]

    if "startup" not in ARGS.skip:
        figures["startup_python_s"] = startup_seconds(["-c", "pass"])
        figures["startup_help_s"] = startup_seconds(["-m", "grmpiqa", "--help"])
        figures["startup_models_s"] = startup_seconds(["-m", "grmpiqa", "models"])

    report(figures)


def _rss_with_stdin(args: list[str], files: list[str]) -> float:
    listing = ARGS.workdir / f"list-{len(files)}.txt"
    listing.write_text("\n".join(files) + "\n")
    with open(listing, "rb") as stdin:
        probe = ("import resource, subprocess, sys\n"
                 "r = subprocess.run(sys.argv[1:], stdin=sys.stdin, stdout=subprocess.DEVNULL)\n"
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
        out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "grmpiqa",
                              *args], stdin=stdin, capture_output=True, text=True, check=True)
    kb, code = out.stdout.split()
    assert code == "0", out.stderr
    return int(kb) / 1024


def report(f: dict[str, float]) -> None:
    rows = [
        ("ceiling: model on decoded 224x224 tensors", f"{f['ceiling_img_s']:.2f} img/s"),
        ("score: LIVEC JPEGs (500x500)", f"{f['score_img_s']:.2f} img/s"),
        ("  ratio to ceiling (target >= 0.9)", f"{f['score_ratio']:.3f}"),
    ]
    if "score_12mp_img_s" in f:
        rows += [
            (f"score: {int(f['big_images'])} 12 MP JPEGs (4000x3000)",
             f"{f['score_12mp_img_s']:.2f} img/s"),
            ("  ratio to ceiling (target >= 0.8)", f"{f['score_12mp_ratio']:.3f}"),
            ("score --fast-decode: 12 MP JPEGs", f"{f['score_12mp_fast_img_s']:.2f} img/s"),
            ("  ratio to ceiling", f"{f['score_12mp_fast_ratio']:.3f}"),
        ]
    for name, label in (("12mp", "12 MP JPEGs"), ("livec", "LIVEC JPEGs")):
        if f"fast_{name}_images" not in f:
            continue
        rows += [
            (f"--fast-decode vs exact, {int(f[f'fast_{name}_images'])} {label}: "
             "model inputs identical", f"{100 * f[f'fast_{name}_identical']:.2f} %"),
            ("  mean / max |pixel diff| (0..255)",
             f"{f[f'fast_{name}_mean_pixel_diff']:.2f} / {int(f[f'fast_{name}_max_pixel_diff'])}"),
            ("  max |score diff|", f"{f[f'fast_{name}_max_score_diff']:.2e}"),
        ]
    if "int8_speedup" in f:
        rows += [
            ("fast path int8: model alone", f"{f['int8_ceiling_img_s']:.2f} img/s"),
            ("fast path int8: score LIVEC", f"{f['int8_score_img_s']:.2f} img/s"),
            ("  speed-up over fp32 score (target >= 1.5)", f"{f['int8_speedup']:.2f}x"),
            ("  speed-up of the model alone", f"{f['int8_model_speedup']:.2f}x"),
            (f"  max |score diff| vs fp32, {int(f['accuracy_images'])} photos (<= 0.02)",
             f"{f['int8_max_score_diff']:.5f}"),
            ("  SRCC vs fp32 scores (target > 0.99)", f"{f['int8_srcc_vs_fp32']:.4f}"),
            ("  (range of the fp32 scores, random weights)", f"{f['score_spread_fp32']:.4f}"),
        ]
    if "bf16_speedup" in f:
        rows += [
            ("bf16: model alone", f"{f['bf16_ceiling_img_s']:.2f} img/s"),
            ("  speed-up of the model alone (target >= 1.8 with native bf16)",
             f"{f['bf16_model_speedup']:.2f}x"),
            ("bf16: score LIVEC", f"{f['bf16_score_img_s']:.2f} img/s"),
            ("  speed-up over fp32 score", f"{f['bf16_speedup']:.2f}x"),
            (f"  max |score diff| vs fp32, {int(f['accuracy_images'])} photos",
             f"{f['bf16_max_score_diff']:.5f}"),
            ("  SRCC vs fp32 scores", f"{f['bf16_srcc_vs_fp32']:.4f}"),
        ]
    if "compile_ceiling_img_s" in f:
        rows += [("compiled: model alone", f"{f['compile_ceiling_img_s']:.2f} img/s"),
                 ("compiled: score LIVEC", f"{f['compile_score_img_s']:.2f} img/s")]
    if "peak_rss_mb_n" in f:
        n = int(f["rss_n"])
        rows += [(f"peak RSS, {n} images", f"{f['peak_rss_mb_n']:.0f} MiB"),
                 (f"peak RSS, {4 * n} images", f"{f['peak_rss_mb_4n']:.0f} MiB"),
                 ("  ratio 4N / N (target < 1.1)", f"{f['rss_ratio_4n_over_n']:.3f}")]
    if "startup_help_s" in f:
        rows += [("start-up: python -c pass", f"{f['startup_python_s']:.3f} s"),
                 ("start-up: grmpiqa --help", f"{f['startup_help_s']:.3f} s"),
                 ("start-up: grmpiqa models", f"{f['startup_models_s']:.3f} s")]
    width = max(len(r[0]) for r in rows)
    print(f"grmpiqa throughput: device {ARGS.device}, batch {ARGS.batch_size}, "
          f"{int(f['images'])} images x {ARGS.repeat}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"instruction sets: {detect_cpu().describe()} (torch kernels: "
          f"{torch.backends.cpu.get_cpu_capability()}); {time.strftime('%Y-%m-%d', time.gmtime())}")
    for name, value in rows:
        print(f"{name:<{width}}  {value:>14}")
    if ARGS.json:
        ARGS.json.write_text(json.dumps(f, indent=1))


if __name__ == "__main__":
    main()
