"""Precision and compilation choices for inference, decided once per loaded model.

``auto`` is exact: fp32 on the CPU (so scores compare across machines), fp16
autocast on GPUs. ``fast`` picks the quickest path whose ranking agrees with
fp32 on this machine: fp16 on GPUs, bf16 on CPUs with native bf16, int8
elsewhere (docs/performance.md has the figures).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any

import torch

from grmpiqa.errors import ConfigError
from grmpiqa.model.cpu_features import CpuFeatures, detect

log = logging.getLogger("grmpiqa")
PRECISIONS = ("auto", "fast", "fp32", "fp16", "bf16", "int8")


def resolve_precision(precision: str, device: torch.device,
                      features: CpuFeatures | None = None) -> str:
    """The concrete precision (fp32, fp16, bf16 or int8) that ``precision`` means on ``device``.

    ``features`` (default: this CPU's) decides what ``fast`` means on a CPU.
    """
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise ConfigError(f"{precision!r}: use one of {', '.join(PRECISIONS)}", param="precision")
    if precision == "auto":
        return "fp16" if device.type in ("cuda", "mps") else "fp32"
    if precision == "fast":
        if device.type in ("cuda", "mps"):
            return "fp16"
        features = detect() if features is None else features
        return "bf16" if features.native_bf16 else "int8"
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("fp16 needs a GPU; on the CPU use fp32, bf16 or int8",
                          param="precision")
    if precision == "int8" and device.type != "cpu":
        raise ConfigError("int8 is a CPU fast path; on a GPU use fp16 (the default)",
                          param="precision")
    if precision == "bf16" and device.type == "mps":
        raise ConfigError("bf16 is not supported on MPS; use fp16", param="precision")
    return precision


def autocast_context(device: torch.device, precision: str) -> Any:
    if precision == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class PackedSelfAttention(torch.nn.Module):
    """Self-attention as two plain ``nn.Linear`` layers around SDPA.

    ``nn.MultiheadAttention`` keeps its input projection as a bare parameter
    and its output projection in a class that dynamic quantisation skips, so
    a third of each block's matrix work would stay fp32; under CPU autocast
    its input projection falls to a batched matmul that copies the whole weight
    once per sequence position (the bf16 slowdown the profiler shows). Same maths, same
    weights, same call signature as open_clip uses.
    """

    def __init__(self, attention: torch.nn.MultiheadAttention) -> None:
        super().__init__()
        dim = attention.embed_dim
        self.num_heads = attention.num_heads
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=attention.in_proj_bias is not None)
        self.out = torch.nn.Linear(dim, dim, bias=attention.out_proj.bias is not None)
        with torch.no_grad():
            self.qkv.weight.copy_(attention.in_proj_weight)
            if attention.in_proj_bias is not None:
                self.qkv.bias.copy_(attention.in_proj_bias)
            self.out.weight.copy_(attention.out_proj.weight)
            if attention.out_proj.bias is not None:
                self.out.bias.copy_(attention.out_proj.bias)

    def forward(self, query: torch.Tensor, key: Any = None, value: Any = None,
                need_weights: bool = False, attn_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, None]:
        batch, length, dim = query.shape
        q, k, v = self.qkv(query).view(batch, length, 3, self.num_heads, -1).unbind(2)
        x = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask)
        return self.out(x.transpose(1, 2).reshape(batch, length, dim)), None


def pack_attention(blocks: Any) -> int:
    """Swap each batch-first self-attention for :class:`PackedSelfAttention`; returns count."""
    swapped = 0
    for block in blocks:
        attention = getattr(block, "attn", None)
        if isinstance(attention, torch.nn.MultiheadAttention) and attention.batch_first \
                and attention._qkv_same_embed_dim and not hasattr(block, "ln_1_kv"):
            block.attn = PackedSelfAttention(attention)
            swapped += 1
    return swapped


QUICK_GELU_SLOPE = 1.702


def fold_quick_gelu(blocks: Any) -> int:
    """Run each MLP's QuickGELU as one SiLU, with its slope folded into the weights; returns count.

    QuickGELU is ``x * sigmoid(1.702 * x)``: three passes over the widest activation
    in the block. Since it equals ``silu(1.702 * x) / 1.702``, scaling ``c_fc`` by
    1.702 and ``c_proj``'s weight by 1/1.702 leaves one fused pass with the same
    maths. Once int8 or bf16 has made the matrix products cheap, those passes were
    a quarter of the image tower's time (torch.profiler, docs/performance.md).
    """
    folded = 0
    for block in blocks:
        mlp = getattr(block, "mlp", None)
        gelu = getattr(mlp, "gelu", None)
        fc, proj = getattr(mlp, "c_fc", None), getattr(mlp, "c_proj", None)
        if type(gelu).__name__ != "QuickGELU" or not isinstance(fc, torch.nn.Linear) \
                or not isinstance(proj, torch.nn.Linear):
            continue
        with torch.no_grad():
            fc.weight.mul_(QUICK_GELU_SLOPE)
            if fc.bias is not None:
                fc.bias.mul_(QUICK_GELU_SLOPE)
            proj.weight.div_(QUICK_GELU_SLOPE)
        mlp.gelu = torch.nn.SiLU()
        folded += 1
    return folded


def layers_to_quantize(tower: torch.nn.Module) -> list[str]:
    """Names of the image tower's linear layers that int8 pays for.

    Two kinds stay fp32, for a tenth of the matrix work: the first block,
    whose error every later block carries on, and each attention output
    projection, whose input (all heads side by side) spans too wide a range
    for one activation scale per batch. On the 627 LIVEC photos this raised
    the rank correlation with fp32 from 0.987 to 0.993 at about the same
    speed (benchmarks/throughput.py).
    """
    first = next(iter(getattr(tower, "resblocks", [])), None)
    kept = {id(m) for m in first.modules()} if first is not None else set()
    return [name for name, module in tower.named_modules()
            if isinstance(module, torch.nn.Linear) and id(module) not in kept
            and not name.endswith("attn.out")]


def _dynamic_linear_class(full_range: bool) -> type:
    """torch.ao's dynamic int8 ``Linear``, quantising activations to 8 or 7 bits.

    torch.ao rounds activations to 7 bits because AVX2's 8-bit multiply-add
    (VPMADDUBSW) saturates its 16-bit sums. VNNI and AMX accumulate in 32
    bits, so there the 8th bit is free accuracy.
    """
    from torch.ao.nn.quantized.dynamic import Linear

    class DynamicInt8Linear(Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.ops.quantized.linear_dynamic(
                x, self._packed_params._packed_params, reduce_range=not full_range)
            return y.to(x.dtype)

    DynamicInt8Linear.__qualname__ = DynamicInt8Linear.__name__ = \
        "DynamicInt8Linear" if full_range else "DynamicInt7Linear"
    return DynamicInt8Linear


def quantize_image_tower(model: Any, features: CpuFeatures | None = None) -> None:
    """Dynamic int8 quantisation of the vision blocks' linear layers, in place.

    Text features are computed once and cached, so the text tower stays fp32.
    Must run on a CPU model in eval mode. Activations use all 8 bits where the
    CPU has VNNI/AMX (``features``, default this CPU's), 7 bits elsewhere.

    This is torch.ao's eager dynamic quantisation, which PyTorch has deprecated
    in favour of torchao: torchao's int8 on this model is no faster than fp32
    without ``torch.compile`` (docs/performance.md), so grmpiqa stays on
    torch.ao while it exists; tests/test_precision.py fails when it goes.
    """
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:  # pragma: no cover - depends on the torch build
        raise ConfigError("int8 needs torch.ao.quantization, missing in this torch; use bf16 "
                          "or fp32", param="precision") from None
    engines = torch.backends.quantized.supported_engines
    if not any(e in engines for e in ("x86", "fbgemm", "qnnpack", "onednn")):
        raise ConfigError("int8: this torch build has no quantised CPU kernels",
                          param="precision")
    features = detect() if features is None else features
    tower = model.clip.visual.transformer
    pack_attention(tower.resblocks)
    fold_quick_gelu(tower.resblocks)
    # Per-channel weight scales: as fast as per-tensor here, and closer to fp32.
    spec = dict.fromkeys(layers_to_quantize(tower), per_channel_dynamic_qconfig)
    mapping = {torch.nn.Linear: _dynamic_linear_class(features.vnni)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantize_dynamic(tower, spec, mapping=mapping, inplace=True)
    # The deprecation notices address torch.ao's callers, not grmpiqa's users, who can
    # do nothing about them: they go to the debug log (--debug), not the terminal.
    for notice in {str(w.message).splitlines()[0] for w in caught}:
        log.debug("torch.ao.quantization: %s", notice)


def prepare_for_inference(model: Any, precision: str = "auto", compile: bool = False,
                          features: CpuFeatures | None = None) -> Any:
    """Apply ``precision`` (and optionally ``torch.compile``) to a loaded eval-mode model.

    ``features`` (default: this CPU's) decides what ``fast`` means and how int8 rounds.
    """
    resolved = resolve_precision(precision, model.device, features)
    if resolved == "int8":
        quantize_image_tower(model, features)
    elif resolved == "bf16" and model.device.type == "cpu":
        # Under autocast nn.MultiheadAttention leaves its fused kernel for a path whose
        # input projection copies its weight once per sequence position on the CPU.
        pack_attention(model.clip.visual.transformer.resblocks)
        fold_quick_gelu(model.clip.visual.transformer.resblocks)
    model.precision = resolved
    if compile:
        model.encode_image = torch.compile(model.encode_image, dynamic=None)
    return model
