"""Precision and compilation choices for inference, decided once per loaded model.

``auto`` is fp16 autocast on GPUs and exact fp32 on the CPU. ``int8`` (CPU)
quantises the image tower's linear layers dynamically: on CPUs without native
bf16 it is the fast path that pays (see README's benchmark table).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch

from grmpiqa.errors import ConfigError

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


def resolve_precision(precision: str, device: torch.device) -> str:
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "fp16" if device.type in ("cuda", "mps") else "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("--precision fp16 needs a GPU; on the CPU use fp32, bf16 or int8")
    if precision == "int8" and device.type != "cpu":
        raise ConfigError("--precision int8 is a CPU fast path; on a GPU use fp16 (the default)")
    if precision == "bf16" and device.type == "mps":
        raise ConfigError("--precision bf16 is not supported on MPS; use fp16")
    return precision


def autocast_context(device: torch.device, precision: str) -> Any:
    if precision == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def quantize_image_tower(model: Any) -> None:
    """Dynamic int8 quantisation of the vision blocks' ``nn.Linear`` layers, in place.

    Text features are computed once and cached, so the text tower stays fp32.
    Must run on a CPU model in eval mode.
    """
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # pragma: no cover - depends on the torch build
        raise ConfigError(
            "--precision int8 needs torch.ao.quantization, missing in this torch"
        ) from None
    engines = torch.backends.quantized.supported_engines
    if not any(e in engines for e in ("x86", "fbgemm", "qnnpack", "onednn")):
        raise ConfigError("--precision int8: this torch build has no quantised CPU kernels")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        quantize_dynamic(model.clip.visual.transformer, {torch.nn.Linear}, dtype=torch.qint8,
                         inplace=True)


def prepare_for_inference(model: Any, precision: str = "auto", compile: bool = False) -> Any:
    """Apply ``precision`` (and optionally ``torch.compile``) to a loaded eval-mode model."""
    resolved = resolve_precision(precision, model.device)
    if resolved == "int8":
        quantize_image_tower(model)
    model.precision = resolved
    if compile:
        model.encode_image = torch.compile(model.encode_image, dynamic=None)
    return model
