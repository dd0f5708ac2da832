"""Frozen configuration records shared by the manifest, the weights files and the model.

Kept free of torch so that ``grmpiqa models`` and ``--help`` stay instant.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from grmpiqa.errors import ConfigError, ManifestError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS), about 179 megapixels.
DEFAULT_MAX_PIXELS = 178_956_970
# Images per forward pass when none is asked for. CPU: chosen from benchmarks/cpu_batch.py
# (docs/performance.md); a small batch also moves the progress bar every few seconds and
# lets an interrupted run keep what it scored. GPU: enough to keep the device busy.
CPU_BATCH_SIZE = 8
GPU_BATCH_SIZE = 32


def default_batch_size(device_type: str) -> int:
    """Images per forward pass on a device of this type (``"cpu"``, ``"cuda"``, ``"mps"``)."""
    return CPU_BATCH_SIZE if device_type == "cpu" else GPU_BATCH_SIZE

ModelKind = Literal["grmp", "zeroshot"]


def _from_mapping(cls: type, data: Any, where: str) -> Any:
    """Build a frozen dataclass from JSON, refusing unknown keys so typos never pass silently."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            values[f.name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class PreprocessConfig:
    """How a photo becomes the model's input (docs/method.md, "Preprocessing").

    The whole image is squashed to ``resize`` x ``resize`` (aspect ratio not
    kept, as the authors do), then the centre ``crop`` is taken. The
    normalisation belongs to the weights: the authors' checkpoints expect
    ImageNet constants, weights we train use CLIP's own.

    ``antialias=False`` (the default, also for files written before the field
    existed) is the authors' squash: OpenCV's INTER_CUBIC without antialiasing,
    reproduced by :mod:`grmpiqa.io.resize`. ``antialias=True`` is Pillow's
    antialiased resize with ``interpolation``.
    """

    resize: int = 244
    crop: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    antialias: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.resize, int) and isinstance(self.crop, int)):
            raise ValueError("resize and crop must be integers")
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"need 0 < crop <= resize, got crop={self.crop} resize={self.resize}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
                raise ValueError(f"{name} must be three numbers")
        if not all(v > 0 for v in self.std):
            raise ValueError("std must be positive")
        if self.interpolation not in ("bicubic", "bilinear"):
            raise ValueError(
                f"interpolation must be 'bicubic' or 'bilinear', not {self.interpolation!r}"
            )
        if not isinstance(self.antialias, bool):
            raise ValueError("antialias must be true or false")
        if not self.antialias and self.interpolation != "bicubic":
            raise ValueError("antialias false (the OpenCV squash) needs interpolation 'bicubic'")

    @classmethod
    def from_dict(cls, data: Any, where: str = "preprocess") -> PreprocessConfig:
        return _from_mapping(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelConfig:
    """The GRMP-IQA head on top of a CLIP backbone (docs/method.md, "Model").

    ``kind="grmp"``: CoOp text context shared by the two classes plus VPT-deep
    visual prompts. ``kind="zeroshot"``: no learned parameters, hand-written
    antonym prompts averaged per class (CLIP-IQA style).
    """

    kind: ModelKind = "grmp"
    class_names: tuple[str, str] = ("high quality", "low quality")
    text_context_tokens: int = 4
    visual_prompt_tokens: int = 100
    visual_prompt_depth: int = 11
    prompt_dropout: float = 0.1
    zeroshot_prompts: tuple[tuple[str, str], ...] = field(
        default=(("Good photo.", "Bad photo."), ("a high quality photo.", "a low quality photo."))
    )

    def __post_init__(self) -> None:
        if self.kind not in ("grmp", "zeroshot"):
            raise ValueError(f"kind must be 'grmp' or 'zeroshot', not {self.kind!r}")
        names = self.class_names
        if len(names) != 2 or not all(isinstance(c, str) and c for c in names):
            raise ValueError("class_names must be two non-empty strings (good class first)")
        for name in ("text_context_tokens", "visual_prompt_tokens", "visual_prompt_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        if self.kind == "grmp" and self.text_context_tokens < 1:
            raise ValueError("text_context_tokens must be at least 1")
        if not (0.0 <= self.prompt_dropout < 1.0) or math.isnan(self.prompt_dropout):
            raise ValueError("prompt_dropout must be in [0, 1)")
        if not self.zeroshot_prompts or not all(
            len(pair) == 2 and all(isinstance(p, str) and p for p in pair)
            for pair in self.zeroshot_prompts
        ):
            raise ValueError("zeroshot_prompts must be a list of [good, bad] prompt pairs")

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> ModelConfig:
        return _from_mapping(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["class_names"] = list(self.class_names)
        data["zeroshot_prompts"] = [list(p) for p in self.zeroshot_prompts]
        return data


@dataclass(frozen=True)
class LabelScale:
    """The user's own label scale, remembered by ``adapt`` so ``score`` can speak it back.

    Scores stay P(high quality) in [0, 1]; ``to_label`` maps them linearly onto
    [low, high], reversed for DMOS-style scales where lower is better. ``stars``:
    the labels were star ratings, so ``score --xmp`` writes the rounded label.
    """

    low: float
    high: float
    higher_is_better: bool = True
    stars: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.high <= self.low:
            raise ValueError(f"label range needs finite low < high, got {self.low}..{self.high}")

    def to_label(self, score: float) -> float:
        span = self.high - self.low
        return self.low + score * span if self.higher_is_better else self.high - score * span

    @classmethod
    def from_dict(cls, data: Any, where: str = "label") -> LabelScale:
        return _from_mapping(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Thumbnails of the HTML report, pixels a side: its boxes are 160 px, sharp up to 1.6x zoom.
REPORT_THUMBNAIL = 256


@dataclass(frozen=True)
class BurstOptions:
    """How bursts are found (:mod:`grmpiqa.workflow.bursts` says what each threshold does)."""

    similarity: float = 0.88
    time_gap: float = 2.0
    embedding_floor: float = 0.5
    window: int = 6
    orderings: int = 12

    def __post_init__(self) -> None:
        if not 0.0 <= self.similarity <= 1.0:
            raise ValueError("similarity must be between 0 and 1")
        if self.time_gap < 0:
            raise ValueError("time gap must be at least 0 seconds")
        if self.window < 1 or self.orderings < 0:
            raise ValueError("window must be at least 1 and orderings at least 0")


@dataclass(frozen=True)
class ModelOptions:
    """Which model scores, where and how.

    ``name`` is a manifest name or a weights file (None: the manifest's default);
    ``base`` the manifest model an authors' ``.pt`` file is read on. ``device``,
    ``precision`` and ``compile`` as for :func:`grmpiqa.load_model`; ``batch_size``,
    ``workers``, ``fast_decode`` (JPEG draft decoding), ``max_pixels`` and
    ``gpu_decode`` as for :func:`grmpiqa.score_paths` (``draft`` there).
    ``catalogue``: where scores are remembered (True: the default catalogue, a path:
    that file, False: none; docs/catalogue.md).
    """

    name: str | None = None
    base: str | None = None
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    batch_size: int | None = None  # None: default_batch_size of the model's device
    workers: int | None = None
    fast_decode: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    gpu_decode: str = "auto"
    catalogue: bool | str | os.PathLike[str] = True

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"{self.batch_size}: must be at least 1", param="batch_size")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"{self.workers}: must be at least 0", param="workers")
