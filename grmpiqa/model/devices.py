"""Device choice and precision: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import re

import torch

from grmpiqa.errors import ConfigError

_CUDA = re.compile(r"^cuda(:\d+)?$")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; a clear error if it is not there."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise ConfigError("mps: Apple's Metal (MPS) backend is not available here",
                              param="device")
        return torch.device("mps")
    if _CUDA.match(spec):
        if not torch.cuda.is_available():
            raise ConfigError(f"{spec}: CUDA is not available (no GPU or a CPU-only torch)",
                              param="device")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{spec}: only {torch.cuda.device_count()} CUDA device(s) visible",
                              param="device")
        return device
    raise ConfigError(f"{spec!r}: use auto, cpu, cuda, cuda:N or mps", param="device")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
