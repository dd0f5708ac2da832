"""``measure_speed``: images/s of each precision on this machine, and the one to use.

The model is the user's own when its files are already in the local cache;
otherwise the same architecture, built from its config with random weights,
which costs exactly as much to run. Nothing is downloaded.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grmpiqa.model.acceleration import prepare_for_inference, resolve_precision
from grmpiqa.model.cpu_features import CpuFeatures, cpu_name, detect
from grmpiqa.model.devices import resolve_device

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class PrecisionSpeed:
    precision: str
    images_per_second: float | None
    #: fp32's ranking is known to survive this precision on this kind of machine.
    known_good: bool
    error: str | None = None


@dataclass(frozen=True)
class DecodeCost:
    """CPU seconds one core spends on the exact decode and squash of a JPEG this size."""

    width: int
    height: int
    seconds: float

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


#: Photo sizes whose decode `bench` times: LIVEC's, a 1 MP web photo, a 12 MP camera's.
DECODE_SIZES = ((500, 500), (1152, 864), (4000, 3000))


@dataclass(frozen=True)
class SpeedReport:
    cpu: str
    features: CpuFeatures
    threads: int
    devices: tuple[str, ...]
    device: str
    model: str
    random_weights: bool
    batch_size: int
    speeds: tuple[PrecisionSpeed, ...]
    recommended: str  # a --precision value
    decode: tuple[DecodeCost, ...] = ()
    cores: int = 1

    @property
    def best(self) -> PrecisionSpeed | None:
        usable = [s for s in self.speeds if s.images_per_second and s.known_good]
        return max(usable, key=lambda s: s.images_per_second or 0.0, default=None)


def visible_devices() -> tuple[str, ...]:
    found = [f"cpu ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        found += [f"cuda:{i} ({torch.cuda.get_device_name(i)})"
                  for i in range(torch.cuda.device_count())]
    backend = getattr(torch.backends, "mps", None)
    if backend is not None and backend.is_available():
        found.append("mps")
    return tuple(found)


def candidate_precisions(device: torch.device, features: CpuFeatures) -> dict[str, bool]:
    """Precisions worth timing on ``device``, each with whether its ranking is known good.

    bf16 on a CPU without native bf16 is emulated: timed, but never recommended.
    """
    if device.type == "cpu":
        return {"fp32": True, "bf16": features.native_bf16, "int8": True}
    if device.type == "mps":
        return {"fp32": True, "fp16": True}
    return {"fp32": True, "fp16": True, "bf16": torch.cuda.is_bf16_supported()}


def load_bench_model(name: str | None, weights: PathLike | None, hf_cache: PathLike | None
                     ) -> tuple[Any, str, bool]:
    """(fp32 CPU model, its name, whether its weights are random)."""
    from grmpiqa.weights import hub
    from grmpiqa.weights.loading import load_model
    from grmpiqa.weights.manifest import load_manifest

    if weights is not None:
        return load_model(weights, device="cpu", base=name, hf_cache=hf_cache,
                          precision="fp32"), Path(weights).name, False
    manifest = load_manifest()
    entry = manifest.get(name or manifest.default)
    if all(hub.cached_path(f, hf_cache) is not None for f in entry.scoring_files()):
        return load_model(entry.name, device="cpu", manifest=manifest, hf_cache=hf_cache,
                          precision="fp32"), entry.name, False
    return _random_model(entry, hf_cache), entry.name, True


def _random_model(entry: Any, hf_cache: PathLike | None) -> Any:
    """The entry's architecture with random weights, when its files are not cached."""
    from grmpiqa.model.network import QualityModel
    from grmpiqa.weights.backbone import build_architecture, tokenizer_for

    clip = build_architecture(entry.backbone, hf_cache)
    return QualityModel(clip, tokenizer_for(clip), entry.config, entry.preprocess,
                        info={"name": entry.name}, backbone_spec=entry.backbone).eval()


def _time_batches(model: Any, pixels: torch.Tensor) -> float:
    from grmpiqa.model.acceleration import autocast_context

    start = time.perf_counter()
    with torch.inference_mode(), autocast_context(model.device, model.precision):
        model.predict(pixels.to(model.device))
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)
    return time.perf_counter() - start


#: Images in each precision's warm-up pass (text features, first-call costs), which
#: also estimates how many images a timed pass can take on this machine.
WARM_UP_IMAGES = 2
#: Longest a round of timed passes (one per precision) should take: on a slow CPU,
#: or where bf16 is emulated, a full batch would push `grmpiqa bench` past 30 s.
ROUND_S = 10.0


def timed_batch_size(warm_up_s: dict[str, float], batch_size: int,
                     round_s: float = ROUND_S) -> int:
    """Images per timed pass: ``batch_size``, or fewer where the warm-up passes (of
    :data:`WARM_UP_IMAGES` images each) say a round would take longer than ``round_s``."""
    per_image = sum(warm_up_s.values()) / WARM_UP_IMAGES
    if per_image <= 0:
        return batch_size
    return max(1, min(batch_size, max(WARM_UP_IMAGES, int(round_s / per_image))))


def measure_speed(name: str | None = None, *, weights: PathLike | None = None,
                  device: str = "auto", batch_size: int = 8, budget_s: float = 5.0,
                  hf_cache: PathLike | None = None, features: CpuFeatures | None = None,
                  progress: Callable[[str], None] = lambda _: None) -> SpeedReport:
    """Time each precision on random pixels of the model's input size.

    Parameters
    ----------
    name, weights: the model, as for :func:`grmpiqa.load_model`.
    device: where to measure (``auto``: CUDA, then MPS, then the CPU).
    batch_size: images per timed forward pass, at most (fewer where one round of
        passes would take over :data:`ROUND_S` seconds; the report says how many).
    budget_s: after one warm-up pass each, timed passes go round the precisions
        (so that a drifting machine affects all alike) until this much time is spent.
    features: the CPU's features (default: detected).
    progress: called with a short line before each step.
    """
    features = detect() if features is None else features
    target = resolve_device(device)
    progress("building the model")
    base, label, random_weights = load_bench_model(name, weights, hf_cache)
    size = base.preprocess.crop
    pixels = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    models, errors, warm_up = {}, {}, {}
    candidates = candidate_precisions(target, features)
    for precision in candidates:
        progress(f"warming up {precision}")
        try:
            model = copy.deepcopy(base).to(target)
            models[precision] = prepare_for_inference(model, precision, features=features)
            warm_up[precision] = _time_batches(models[precision], pixels[:WARM_UP_IMAGES])
        except Exception as exc:  # one precision failing must not hide the others
            models.pop(precision, None)
            errors[precision] = str(exc).strip().splitlines()[0] if str(exc).strip() \
                else type(exc).__name__
    pixels = pixels[:timed_batch_size(warm_up, batch_size)]
    spent = dict.fromkeys(models, 0.0)
    rounds = 0
    start = time.perf_counter()
    while models and (rounds == 0 or time.perf_counter() - start < budget_s):
        progress(f"timing, round {rounds + 1}")
        for precision, model in models.items():
            spent[precision] += _time_batches(model, pixels)
        rounds += 1
    speeds = tuple(
        PrecisionSpeed(p, rounds * len(pixels) / spent[p] if p in spent else None, good,
                       errors.get(p))
        for p, good in candidates.items())
    progress("timing the decoding of 0.25, 1 and 12 MP JPEGs")
    from grmpiqa.data.loader import available_cores

    report = SpeedReport(cpu_name(), features, torch.get_num_threads(), visible_devices(),
                         str(target), label, random_weights, len(pixels), speeds, "",
                         measure_decode(base.preprocess), available_cores())
    return dataclasses.replace(report, recommended=_recommend(report, target))


def photo_like_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A JPEG (quality 92) of smooth shapes and mild noise: decodes about as a photo does,
    where pure noise would cost several times more."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(-6, 7, (height, width, 3))
    pixels = np.clip(np.asarray(image, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=92)
    return out.getvalue()


def measure_decode(cfg: Any, sizes: tuple[tuple[int, int], ...] = DECODE_SIZES,
                   repeat: int = 3) -> tuple[DecodeCost, ...]:
    """The least CPU time of ``repeat`` exact decodes of a photo-like JPEG of each size."""
    from grmpiqa.io.preprocess import load_encoded_pixels

    costs = []
    for width, height in sizes:
        data, best = photo_like_jpeg(width, height), float("inf")
        for _ in range(repeat):
            start = time.thread_time()
            load_encoded_pixels(data, "photo.jpg", cfg)
            best = min(best, time.thread_time() - start)
        costs.append(DecodeCost(width, height, best))
    return tuple(costs)


def _recommend(report: SpeedReport, device: torch.device) -> str:
    """``fast`` when it already picks the quickest known-good precision, else that one."""
    best = report.best
    if best is None:
        return "auto"
    fast = resolve_precision("fast", device, report.features)
    return "fast" if best.precision == fast else best.precision
