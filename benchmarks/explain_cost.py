"""What ``--explain`` costs per photo, and as a share of a CPU scoring run, in one run.

LIVEC photos are resized to 0.25, 1 and 12 MP (4:3, JPEG quality 90, in a temporary
folder). For each size it measures, interleaved:

- the explanation alone: :func:`grmpiqa.explain_image` on the decoded photo (what the
  decoding workers run besides decoding), per photo, the best of ``--repeats`` passes,
  and its stages (the 1 MP luma, sharpness, noise, exposure, the JPEG window);
- a CPU scoring run: ``score_paths`` with the random-weight ViT-B-16 (fp32, and
  ``--precision fast``: bf16 where the CPU has it), model loaded once, no catalogue,
  without and with ``explain``: seconds per photo, end to end (decoding included).

The share is the explanation's seconds over the scoring run's, per photo; the run with
``explain`` minus the one without says the same end to end (noisy on a shared machine).
The GPU ratio is *computed*, not measured: the explanation's CPU seconds per photo over
the CPU seconds a GPU run spends decoding one photo (``--gpu-cores`` over the stated
``--gpu-throughput``, photos/s of a decode-bound GPU run, docs/performance.md).

    GRMPIQA_BENCH_HF_CACHE=/work/bench-hf nice -n 5 python benchmarks/explain_cost.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # fakehub: the random-weight ViT-B-16 cache
SIZES = {"0.25": (577, 433), "1": (1155, 866), "12": (4000, 3000)}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", type=int, default=12, help="LIVEC photos per size")
    p.add_argument("--repeats", type=int, default=3, help="passes of the explanation alone")
    p.add_argument("--precisions", nargs="+", default=["fp32", "fast"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--gpu-throughput", nargs="+", default=["0.25=1338", "12=21"],
                   metavar="MP=PHOTOS_PER_S",
                   help="stated GPU-run photos/s per size (docs/performance.md, H200)")
    p.add_argument("--gpu-cores", type=int, default=16, help="decoding cores of that run")
    p.add_argument("--livec", type=Path,
                   default=ROOT.parent / "shared" / "data" / "livec" / "images")
    return p.parse_args()


ARGS = parse_args()
WORK = Path(tempfile.mkdtemp(prefix="grmpiqa-explain-cost-"))
HF_CACHE = Path(os.environ.get("GRMPIQA_BENCH_HF_CACHE", WORK / "hf"))
os.environ.update(HF_HUB_CACHE=str(HF_CACHE), HF_HUB_OFFLINE="1")
os.environ.pop("GRMPIQA_MANIFEST", None)

from PIL import Image  # noqa: E402

from grmpiqa.explain import blocking, exposure, noise, sharpness  # noqa: E402
from grmpiqa.explain.analysis import analysis_grey, levels, native_window  # noqa: E402
from grmpiqa.explain.image import explain_image  # noqa: E402


def make_photos() -> dict[str, list[str]]:
    sources = sorted(ARGS.livec.glob("*.JPG"))[:ARGS.photos]
    made: dict[str, list[str]] = {}
    for size, (width, height) in SIZES.items():
        folder = WORK / f"{size}MP"
        folder.mkdir()
        for source in sources:
            with Image.open(source) as image:
                resized = image.convert("RGB").resize((width, height), Image.LANCZOS)
            resized.save(folder / source.name, quality=90)
        made[size] = sorted(str(p) for p in folder.iterdir())
    return made


def decoded(paths: list[str]) -> list[Image.Image]:
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def _stages(image: Image.Image) -> dict[str, float]:
    """Seconds of each stage of one explanation."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    small = analysis_grey(image)
    grey, histogram = levels(small), small.histogram()
    times["1 MP luma"] = time.perf_counter() - start
    for name, run in (("sharpness", lambda: sharpness.sharpness(grey)),
                      ("noise", lambda: noise.noise_sigma(grey)),
                      ("exposure", lambda: (exposure.exposure_ev(histogram),
                                            exposure.clipped_parts(histogram))),
                      ("JPEG window", lambda: blocking.blockiness(native_window(image)))):
        start = time.perf_counter()
        run()
        times[name] = time.perf_counter() - start
    return times


def explain_seconds(images: list[Image.Image]) -> tuple[float, dict[str, float]]:
    """Seconds per photo of explain_image (best pass), and of each stage (median)."""
    passes = []
    for _ in range(ARGS.repeats):
        start = time.perf_counter()
        for image in images:
            explain_image(image)
        passes.append((time.perf_counter() - start) / len(images))
    stages = [_stages(image) for image in images]
    return min(passes), {k: statistics.median(s[k] for s in stages) for k in stages[0]}


def score_seconds(model, paths: list[str], explain: bool) -> float:
    from grmpiqa.scoring.engine import score_paths

    start = time.perf_counter()
    rows = list(score_paths(paths, model, expand=False, batch_size=ARGS.batch_size,
                            explain=explain, catalogue=False))
    assert all(r.ok for r in rows) and all((r.why is not None) == explain for r in rows)
    return (time.perf_counter() - start) / len(paths)


def cpu_line() -> str:
    from grmpiqa.model.cpu_features import cpu_name, read_flags

    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")
    flags = read_flags()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    cores = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                  if line.startswith("CPU(s):")), str(os.cpu_count()))
    return (f"CPU: {cpu_name()}, {cores} cores, flags: "
            f"{', '.join(f for f in wanted if f in flags) or 'none of ' + ', '.join(wanted)}")


def main() -> None:
    import torch

    from fakehub import ensure_vit_b16_cache
    from grmpiqa.weights.loading import load_model

    ensure_vit_b16_cache(HF_CACHE)
    print(cpu_line())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average at start {os.getloadavg()[0]:.1f}; {ARGS.photos} photos per size")
    photos = make_photos()
    models = {p: load_model(device="cpu", precision=p) for p in ARGS.precisions}
    for model in models.values():  # one warm-up each: the first pass builds the kernels
        score_seconds(model, photos["0.25"][:2], explain=False)
    gpu = dict(item.split("=", 1) for item in ARGS.gpu_throughput)
    for size, paths in photos.items():
        alone, stages = explain_seconds(decoded(paths))
        print(f"\n{size} MP ({SIZES[size][0]}x{SIZES[size][1]}): explanation alone "
              f"{alone * 1e3:.1f} ms/photo (stages: "
              + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in stages.items()) + " ms)")
        for precision, model in models.items():
            off = score_seconds(model, paths, explain=False)
            on = score_seconds(model, paths, explain=True)
            print(f"  {precision:>4} ({model.precision}): score {off:.3f} s/photo, with "
                  f"--explain {on:.3f} s/photo; explanation / scoring = {alone / off:.2%} "
                  f"(end to end: {(on - off) / off:+.1%}; load {os.getloadavg()[0]:.1f})")
        if size in gpu:
            decode = ARGS.gpu_cores / float(gpu[size])
            print(f"  GPU run (computed): {gpu[size]} photos/s with {ARGS.gpu_cores} decoding "
                  f"cores = {decode * 1e3:.0f} ms of CPU per photo; explanation / that = "
                  f"{alone / decode:.1%}")


if __name__ == "__main__":
    main()
