"""How often ``why`` names each defect, on photos as they are and distorted at a clearly
visible strength, and the thresholds the rates imply.

Each photo is explained as it is, then distorted by the project's generators
(grmpiqa.pretraining.distortions, --level) and by independent code (Pillow
GaussianBlur, numpy Gaussian noise, Pillow JPEG quality, a gain). Prints, per
distortion, the share of photos whose ``why`` names the defect (detection) next to
the share of originals that name it (false alarm), the cross rates (blur called
noise, noise called blur), and each measure's quantiles on originals and distorted
photos, from which the thresholds in grmpiqa/explain/thresholds.py were read.

    nice -n 5 python benchmarks/explain_calibration.py --photos 200
    nice -n 5 python benchmarks/explain_calibration.py --folder ~/Pictures --photos 100
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grmpiqa.explain import thresholds  # noqa: E402
from grmpiqa.explain.image import explain_image  # noqa: E402


def _project(name: str, level: int):
    import torch

    from grmpiqa.pretraining.distortions import get_distortion

    distortion = get_distortion(name)

    def apply(image: Image.Image, seed: int) -> Image.Image:
        x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255
        out = distortion(x, level, seed)[0].permute(1, 2, 0).numpy()
        return Image.fromarray((out * 255).round().astype(np.uint8), "RGB")
    return apply


def _jpeg(quality: int):
    def apply(image: Image.Image, seed: int) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return apply


def _noise(sigma: float):
    def apply(image: Image.Image, seed: int) -> Image.Image:
        rng = np.random.default_rng(seed)
        array = np.asarray(image, dtype=np.float32)
        array = array + rng.normal(0, sigma, array.shape)
        return Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8), "RGB")
    return apply


def _gain(factor: float):
    def apply(image: Image.Image, seed: int) -> Image.Image:
        array = np.asarray(image, dtype=np.float32) * factor
        return Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8), "RGB")
    return apply


def _blur(radius: float):
    return lambda image, seed: image.filter(ImageFilter.GaussianBlur(radius))


def distortions(level: int) -> list[tuple[str, str, object]]:
    """(name, the defect it should raise, function)."""
    return [
        (f"gaussian_blur L{level}", "blur", _project("gaussian_blur", level)),
        (f"lens_blur L{level}", "blur", _project("lens_blur", level)),
        (f"motion_blur L{level}", "blur", _project("motion_blur", level)),
        ("Pillow GaussianBlur r3", "blur", _blur(3.0)),
        (f"white_noise L{level}", "noise", _project("white_noise", level)),
        ("numpy noise sigma 15", "noise", _noise(15.0)),
        (f"darken L{level}", "underexposed", _project("darken", level)),
        ("gain x0.25", "underexposed", _gain(0.25)),
        (f"brighten L{level}", "overexposed", _project("brighten", level)),
        ("gain x2.5", "overexposed", _gain(2.5)),
        (f"jpeg L{level}", "compression", _project("jpeg", level)),
        ("Pillow JPEG q10", "compression", _jpeg(10)),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", type=Path,
                   default=ROOT.parent / "shared" / "data" / "livec" / "images")
    p.add_argument("--photos", type=int, default=200)
    p.add_argument("--level", type=int, default=4)
    args = p.parse_args()
    files = sorted(f for f in args.folder.iterdir()
                   if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))[:args.photos]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {len(files)} photos from "
          f"{args.folder}; level {args.level}; load {os.getloadavg()[0]:.1f}", flush=True)
    originals = [Image.open(f).convert("RGB") for f in files]
    base = [explain_image(im) for im in originals]
    rate = lambda rows, d: 100.0 * np.mean([d in r.defects for r in rows])  # noqa: E731
    print(f"{'distortion':<26}{'defect':<14}{'detected %':>11}{'originals %':>12}"
          f"{'blur->noise %':>14}{'noise->blur %':>14}")
    for name, defect, fn in distortions(args.level):
        rows = [explain_image(fn(im, i)) for i, im in enumerate(originals)]
        cross = ""
        if defect == "blur":
            cross = f"{rate(rows, 'noise'):>14.1f}{'':>14}"
        elif defect == "noise":
            cross = f"{'':>14}{rate(rows, 'blur'):>14.1f}"
        print(f"{name:<26}{defect:<14}{rate(rows, defect):>11.1f}{rate(base, defect):>12.1f}"
              + cross, flush=True)
        measure = {"blur": "sharpness", "noise": "noise", "underexposed": "exposure",
                   "overexposed": "exposure", "compression": "compression"}[defect]
        q = np.quantile([getattr(r, measure) for r in rows], [0.1, 0.2, 0.5, 0.8, 0.9])
        print(f"    {measure} distorted q10/20/50/80/90: " + " ".join(f"{v:.3f}" for v in q))
    for measure in ("sharpness", "noise", "exposure", "clipped", "compression"):
        q = np.quantile([getattr(r, measure) for r in base], [0.1, 0.2, 0.5, 0.7, 0.8, 0.9])
        print(f"originals {measure} q10/20/50/70/80/90: " + " ".join(f"{v:.3f}" for v in q))
    print("thresholds:", {k: v for k, v in vars(thresholds).items() if k.isupper()})


if __name__ == "__main__":
    main()
