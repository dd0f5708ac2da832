"""What the CPU can do for inference: native bf16 and integer dot-product instructions.

Read from the kernel's flags (``/proc/cpuinfo``), not from torch, so that the
choice is cheap, torch-free and testable: tests pass hand-made flag sets.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuFeatures:
    """The instruction-set facts that decide which precision is fastest on this CPU."""

    avx2: bool = False
    avx512: bool = False
    #: bf16 dot products in hardware (AVX-512 BF16 or AMX-BF16): bf16 matmuls run at
    #: about twice the fp32 rate instead of being emulated.
    native_bf16: bool = False
    #: 8-bit integer dot products that accumulate without saturating (VNNI or AMX-INT8).
    vnni: bool = False
    amx: bool = False
    arm: bool = False

    @classmethod
    def from_flags(cls, flags: Iterable[str], machine: str = "x86_64") -> CpuFeatures:
        have = {f.lower() for f in flags}
        arm = machine.lower() in ("arm64", "aarch64")
        return cls(
            avx2="avx2" in have,
            avx512="avx512f" in have,
            native_bf16=bool(have & {"avx512_bf16", "amx_bf16"}) or (arm and "bf16" in have),
            vnni=bool(have & {"avx512_vnni", "avx_vnni", "amx_int8"}),
            amx=bool(have & {"amx_bf16", "amx_int8"}),
            arm=arm,
        )

    def describe(self) -> str:
        """One line naming the instruction sets that matter, e.g. ``AVX-512, BF16, VNNI``."""
        parts = []
        if self.arm:
            parts.append("ARM")
        if self.avx512:
            parts.append("AVX-512")
        elif self.avx2:
            parts.append("AVX2")
        if self.native_bf16:
            parts.append("BF16")
        if self.vnni:
            parts.append("VNNI")
        if self.amx:
            parts.append("AMX")
        return ", ".join(parts) or "no vector extensions detected"


def read_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The first processor's ``flags`` (x86) or ``Features`` (ARM) line; empty if unreadable."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def detect(cpuinfo: Path = CPUINFO) -> CpuFeatures:
    """This machine's features (all False where ``/proc/cpuinfo`` does not exist, e.g. macOS)."""
    return CpuFeatures.from_flags(read_flags(cpuinfo), platform.machine())


def cpu_name(cpuinfo: Path = CPUINFO) -> str:
    """The processor's marketing name (``model name``), or the platform's best guess."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
