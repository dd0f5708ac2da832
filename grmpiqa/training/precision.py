"""Reduced precision for training where the hardware runs it natively.

bf16 autocast on CPUs with bf16 dot products (AVX-512 BF16, AMX), the
authors' fp16 autocast with a loss scaler on CUDA, fp32 elsewhere (MPS
included, and CPUs that would emulate bf16). Parameters, losses and the
gradients the regularisation rule works on stay fp32 in every case.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

TRAINING_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def choose_precision(device_type: str, requested: str = "auto",
                     native_bf16: bool | None = None) -> str:
    """The precision ``requested`` resolves to on ``device_type``; ``native_bf16``
    (read from the CPU flags when None) decides ``auto`` on a CPU."""
    if requested not in TRAINING_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(TRAINING_PRECISIONS)}")
    if requested == "fp16" and device_type != "cuda":
        raise ValueError("fp16 training needs a CUDA device (use bf16 or fp32 here)")
    if requested != "auto":
        return requested
    if device_type == "cuda":
        return "fp16"
    if device_type == "cpu":
        if native_bf16 is None:
            from grmpiqa.model.cpu_features import detect

            native_bf16 = detect().native_bf16
        return "bf16" if native_bf16 else "fp32"
    return "fp32"


@dataclass(frozen=True)
class Precision:
    """Autocast for the forward passes and, for fp16, the loss scale of the backward ones."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name, torch.float32)

    def autocast(self) -> Any:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def autocast_factory(self) -> Callable[[], Any]:
        return self.autocast

    def scaler(self) -> torch.amp.GradScaler | None:
        """fp16 gradients underflow without a loss scale; bf16 and fp32 need none."""
        if self.name != "fp16":
            return None
        return torch.amp.GradScaler(self.device_type)

    @property
    def cache_dtype(self) -> torch.dtype:
        """How cached prefix tokens are stored: bf16 with bf16 compute (half the
        memory), fp32 otherwise (fp16 activations of a large tower can overflow)."""
        return torch.bfloat16 if self.name == "bf16" else torch.float32
