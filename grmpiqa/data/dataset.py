"""One dataset item per input path: decoded pixels (or a JPEG left for the GPU), an error, signals.

Shared by scoring and training: :class:`ImageFiles` decodes a file or a tar
member in a worker process and never raises, so one broken photo costs only
its own row; :func:`collate` makes the batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from grmpiqa.config import DEFAULT_MAX_PIXELS, PreprocessConfig
from grmpiqa.data.balance import DecodeGate
from grmpiqa.data.gpu_decode import EncodedJpeg
from grmpiqa.data.sources import Sources
from grmpiqa.errors import ImageError
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS
from grmpiqa.io.shards import ShardIndex
from grmpiqa.results import PhotoFeatures


@dataclass
class Batch:
    indices: list[int]
    pixels: torch.Tensor | None
    errors: dict[int, str]
    features: dict[int, PhotoFeatures] = field(default_factory=dict)
    encoded: dict[int, EncodedJpeg] = field(default_factory=dict)  # left for the GPU


@dataclass(frozen=True)
class SignalOptions:
    """What the workers take besides the pixels: with ``features`` the perceptual hash and
    EXIF capture time, and a JPEG thumbnail of at most ``thumbnail`` pixels a side when it
    is > 0; with ``explain`` the measured defects (:func:`grmpiqa.explain_image`)."""

    thumbnail: int = 0
    features: bool = True
    explain: bool = False


Item = tuple[int, "torch.Tensor | EncodedJpeg | None", "str | None", "PhotoFeatures | None"]


class _Signals:
    """Collects the signals of one decoded image (called before it is squashed)."""

    def __init__(self, options: SignalOptions) -> None:
        self.options = options
        self.hash = 0
        self.layout = b""
        self.thumbnail: bytes | None = None
        self.explanation: Any = None

    def __call__(self, image: Any) -> None:
        from grmpiqa.io.signals import HASH_SIDE, hash_and_layout, reduced, thumbnail_jpeg

        if self.options.explain:
            from grmpiqa.explain.image import explain_image

            self.explanation = explain_image(image)  # the full decode: focus needs it
        if not self.options.features:
            return
        small = reduced(image, max(2 * HASH_SIDE, self.options.thumbnail))
        self.hash, self.layout = hash_and_layout(small)
        if self.options.thumbnail > 0:
            self.thumbnail = thumbnail_jpeg(small, self.options.thumbnail)


class ImageFiles(Dataset):
    """Decodes one file or tar member per item; errors are returned, not raised, so workers
    never die. With ``gpu_jpeg``, JPEGs come back encoded for :class:`GpuDecoder`."""

    def __init__(self, paths: Sequence[str], cfg: PreprocessConfig, *, draft: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 known_errors: Mapping[str, str] | None = None,
                 shards: ShardIndex | None = None, gpu_jpeg: bool = False,
                 signals: SignalOptions | None = None) -> None:
        self.paths = list(paths)
        self.known_errors = dict(known_errors or {})
        self.cfg = cfg
        self.signals = signals
        # signals need the decoded image on the CPU: no GPU decoding with them
        self.sources = Sources(cfg, shards or ShardIndex(DEFAULT_EXTENSIONS), draft=draft,
                               max_pixels=max_pixels, gpu_jpeg=gpu_jpeg and signals is None)
        self.decode_on_cpu = self.sources.decode_on_cpu
        self.gate: DecodeGate | None = None  # how many workers decode at once (balance.py)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        path = self.paths[index]
        if path in self.known_errors:
            return index, None, self.known_errors[path], None
        seen = _Signals(self.signals) if self.signals is not None else None
        gate = self.gate.decoding() if self.gate is not None else contextlib.nullcontext()
        try:
            with gate:
                pixels = self.sources.load(path, inspect=seen)
        except ImageError as exc:
            return index, None, str(exc), None
        except MemoryError:
            return index, None, "out of memory while decoding", None
        except Exception as exc:  # a decoder bug must not cost the other photos
            return index, None, f"unexpected {type(exc).__name__}: {exc}", None
        if seen is None:
            return index, pixels, None, None
        from grmpiqa.io.signals import read_capture

        capture = read_capture(path) if seen.options.features else None
        features = PhotoFeatures(seen.hash, seen.layout, capture=capture,
                                 thumbnail=seen.thumbnail, explanation=seen.explanation)
        return index, pixels, None, features


def collate(items: list[Item]) -> Batch:
    good = [(i, px) for i, px, _, _ in items if isinstance(px, torch.Tensor)]
    pixels = torch.stack([px for _, px in good]) if good else None
    return Batch(
        indices=[i for i, _, _, _ in items],
        pixels=pixels,
        errors={i: err for i, _, err, _ in items if err is not None},
        features={i: f for i, _, _, f in items if f is not None},
        encoded={i: px for i, px, _, _ in items if isinstance(px, EncodedJpeg)},
    )
