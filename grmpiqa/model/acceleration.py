"""Precision and compilation choices for inference, decided once per loaded model.

``auto`` is fp16 autocast on GPUs and exact fp32 on the CPU. ``int8`` (CPU)
quantises most of the image tower's linear layers dynamically: on CPUs without native
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


class PackedSelfAttention(torch.nn.Module):
    """Self-attention as two plain ``nn.Linear`` layers around SDPA.

    ``nn.MultiheadAttention`` keeps its input projection as a bare parameter
    and its output projection in a class that dynamic quantisation skips, so
    a third of each block's matrix work would stay fp32. Same maths, same
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


def quantize_image_tower(model: Any) -> None:
    """Dynamic int8 quantisation of the vision blocks' linear layers, in place.

    Text features are computed once and cached, so the text tower stays fp32.
    Must run on a CPU model in eval mode.
    """
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:  # pragma: no cover - depends on the torch build
        raise ConfigError(
            "--precision int8 needs torch.ao.quantization, missing in this torch"
        ) from None
    engines = torch.backends.quantized.supported_engines
    if not any(e in engines for e in ("x86", "fbgemm", "qnnpack", "onednn")):
        raise ConfigError("--precision int8: this torch build has no quantised CPU kernels")
    tower = model.clip.visual.transformer
    pack_attention(tower.resblocks)
    # Per-channel weight scales: as fast as per-tensor here, and closer to fp32.
    spec = dict.fromkeys(layers_to_quantize(tower), per_channel_dynamic_qconfig)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        quantize_dynamic(tower, spec, inplace=True)


def prepare_for_inference(model: Any, precision: str = "auto", compile: bool = False) -> Any:
    """Apply ``precision`` (and optionally ``torch.compile``) to a loaded eval-mode model."""
    resolved = resolve_precision(precision, model.device)
    if resolved == "int8":
        quantize_image_tower(model)
    model.precision = resolved
    if compile:
        model.encode_image = torch.compile(model.encode_image, dynamic=None)
    return model
