"""Train only the tail of the image tower: its frozen prefix is computed once per view.

In ``full`` mode the stem, the visual prompts and the first two thirds of the
image blocks are frozen, and so is the teacher: what they give depends only on
the image and its crop/flip (and, in train mode, the prompt dropout of those
layers). :class:`ViewPool` draws a fixed pool of ``size`` augmentations per
training image (docs/method.md, "Adapt"), computes the prefix tokens and the
teacher's scene logits once per pool entry, and epochs run the tail only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from grmpiqa.training.data import centre_crops

# Seeds of the pool's draws, apart from the training streams so that either can change alone.
_VIEW_SEED = 0x5EED_0F_F1E5


def split_block(model) -> int | None:
    """Index of the first image block that trains, if everything before it is frozen
    (the visual prompts and the stem included); None when there is no frozen prefix."""
    visual = model.clip.visual
    if model.visual_prompts is None:
        return None
    blocks = visual.transformer.resblocks
    trains = [i for i, b in enumerate(blocks) if any(p.requires_grad for p in b.parameters())]
    if not trains or trains[0] == 0:
        return None
    stem = [visual.conv1.weight, visual.class_embedding, visual.positional_embedding,
            *visual.ln_pre.parameters(), *model.visual_prompts.parameters(),
            *(p for b in blocks[:trains[0]] for p in b.parameters())]
    return None if any(p.requires_grad for p in stem) else trains[0]


def fast_block(block: torch.nn.Module, x: torch.Tensor, last: bool) -> torch.Tensor:
    """open_clip's residual block as plain linear layers and SDPA, batch first.

    Same maths as the block itself; ``last``: only the CLS token's output is
    computed (its queries alone), all the features need from the final block.
    ``nn.MultiheadAttention`` is bypassed because under CPU autocast its input
    projection is far slower than a plain ``F.linear``.
    """
    attn = getattr(block, "attn", None)
    if not isinstance(attn, torch.nn.MultiheadAttention) or hasattr(block, "ln_1_kv") \
            or not getattr(attn, "_qkv_same_embed_dim", False) or attn.dropout:
        return block(x)
    width, heads = x.shape[-1], attn.num_heads
    h = block.ln_1(x)
    weight, bias = attn.in_proj_weight, attn.in_proj_bias
    if last:
        q = F.linear(h[:, :1], weight[:width], None if bias is None else bias[:width])
        k, v = F.linear(h, weight[width:], None if bias is None else bias[width:]).chunk(2, -1)
        x = x[:, :1]
    else:
        q, k, v = F.linear(h, weight, bias).chunk(3, -1)

    def heads_first(t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (heads, width // heads)).transpose(1, 2)

    out = F.scaled_dot_product_attention(heads_first(q), heads_first(k), heads_first(v))
    out = attn.out_proj(out.transpose(1, 2).flatten(2))
    x = x + block.ls_1(out)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


@dataclass(frozen=True)
class PoolPlan:
    """How big the cache is, decided before anything is computed."""

    tokens: int
    width: int
    element_bytes: int
    views: int  # pool entries per training image
    train_images: int
    eval_images: int

    @property
    def bytes_per_view(self) -> int:
        return self.tokens * self.width * self.element_bytes

    @property
    def total_bytes(self) -> int:
        return self.bytes_per_view * (self.views * self.train_images + self.eval_images)

    def describe(self) -> str:
        mib = self.bytes_per_view / 2 ** 20
        return (f"{self.tokens} tokens x {self.width} x {self.element_bytes} bytes = "
                f"{mib:.2f} MiB per view; {self.views} views x {self.train_images} training + "
                f"{self.eval_images} evaluation images = {self.total_bytes / 2 ** 20:.0f} MiB")


def plan_pool(model, views: int, train_images: int, eval_images: int,
              dtype: torch.dtype) -> PoolPlan:
    visual = model.clip.visual
    patches = math.prod(int(s) // int(p) for s, p in zip(
        _pair(model.preprocess.crop), visual.conv1.kernel_size, strict=True))
    tokens = 1 + model.visual_prompts.tokens + patches
    element = torch.empty(0, dtype=dtype).element_size()
    return PoolPlan(tokens, visual.transformer.width, element, views, train_images,
                    eval_images)


def _pair(value: int) -> tuple[int, int]:
    return (int(value), int(value))


class ViewPool:
    """Cached prefix tokens and teacher logits for ``views`` fixed augmentations per image.

    Entry ``(image, v)`` is a pure function of the seed, the image and ``v`` (its
    crop, flip and prompt-dropout draws), so a resumed run refills it exactly.
    """

    def __init__(self, model, teacher, pixels: torch.Tensor, split: int, views: int,
                 seed: int, dtype: torch.dtype, autocast) -> None:
        self.model, self.teacher, self.pixels = model, teacher, pixels
        self.split, self.views, self.seed, self.dtype = split, views, seed, dtype
        self.autocast = autocast
        self.crop = model.preprocess.crop
        n, _, height, width = pixels.shape
        g = torch.Generator().manual_seed(seed ^ _VIEW_SEED)
        # The authors' draw (data.random_crops with include_last=False): offsets in
        # [0, size - crop), a horizontal flip with p = 1/2.
        self.ys = torch.randint(0, max(1, height - self.crop), (n, views), generator=g)
        self.xs = torch.randint(0, max(1, width - self.crop), (n, views), generator=g)
        self.flips = torch.rand(n, views, generator=g) < 0.5
        self.tokens: dict[tuple[int, int], torch.Tensor] = {}
        self.scene: dict[tuple[int, int], torch.Tensor] = {}
        self.eval_tokens: dict[int, torch.Tensor] = {}

    def view(self, image: int, v: int) -> torch.Tensor:
        y, x = int(self.ys[image, v]), int(self.xs[image, v])
        patch = self.pixels[image, :, y:y + self.crop, x:x + self.crop]
        return patch.flip(-1) if bool(self.flips[image, v]) else patch

    def batch(self, images: torch.Tensor, v: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(prefix tokens, teacher logits or None) of view ``v`` of ``images``."""
        missing = [int(i) for i in images if (int(i), v) not in self.tokens]
        if missing:
            self._fill(missing, v)
        keys = [(int(i), v) for i in images]
        device = self.model.device
        tokens = torch.stack([self.tokens[k] for k in keys]).to(device)
        scene = torch.stack([self.scene[k] for k in keys]).to(device) \
            if self.teacher is not None else None
        return tokens, scene

    @torch.no_grad()
    def _fill(self, images: list[int], v: int) -> None:
        devices = [self.model.device] if self.model.device.type == "cuda" else []
        for image in images:
            crops = self.view(image, v).unsqueeze(0).float().div_(255.0).to(self.model.device)
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed((self.seed * 1_000_003 + image * 4_099 + v) & 0x7FFF_FFFF)
                with self.autocast():
                    tokens = self.model.image_prefix(self.model.normalize(crops), self.split,
                                                     fast_block)
            self.tokens[(image, v)] = tokens[0].to("cpu", self.dtype)
            if self.teacher is not None:
                with self.autocast():
                    self.scene[(image, v)] = self.teacher.logits(crops, fast_block)[0].float().cpu()

    @torch.no_grad()
    def eval_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Prefix tokens of the centre crops, in eval mode (no dropout), cached."""
        missing = [int(i) for i in images if int(i) not in self.eval_tokens]
        if missing:
            crops = centre_crops(self.pixels[torch.as_tensor(missing)], self.crop)
            with self.autocast():
                tokens = self.model.image_prefix(self.model.normalize(crops), self.split,
                                                 fast_block)
            for i, t in zip(missing, tokens, strict=True):
                self.eval_tokens[i] = t.to("cpu", self.dtype)
        return torch.stack([self.eval_tokens[int(i)] for i in images]).to(self.model.device)

    def held_bytes(self) -> int:
        tensors = [*self.tokens.values(), *self.scene.values(), *self.eval_tokens.values()]
        return sum(t.numel() * t.element_size() for t in tensors)
