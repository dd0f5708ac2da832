"""The semantic teacher of docs/method.md, "Adapt": the original, unmodified CLIP.

It shares every frozen tensor with the student instead of holding a second
backbone: only the tensors that differ from the pristine backbone (those the
starting weights changed, and those training will change) are kept as
pristine copies and swapped in for the teacher's forward pass. Its scene text
features never change, so they are computed once. It runs without autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch.func import functional_call

from grmpiqa.config import CLIP_MEAN, CLIP_STD
from grmpiqa.model.maths import clip_logits
from grmpiqa.training.regularisation import scene_prompts


def differing_keys(state: Mapping[str, torch.Tensor], pristine: Mapping[str, torch.Tensor]
                   ) -> set[str]:
    """Keys of the backbone ``state`` whose values are not the pristine backbone's."""
    return {key for key, value in state.items()
            if key not in pristine or not torch.equal(value.cpu(), pristine[key].cpu())}


class SceneTeacher:
    """z_T: the original CLIP's logits for the scene prompts, from its own image features."""

    def __init__(self, student_clip: torch.nn.Module, pristine_clip: torch.nn.Module,
                 pristine_copies: Mapping[str, torch.Tensor], tokenizer,
                 scenes: list[str] | None = None) -> None:
        """``pristine_copies``: backbone tensors (keys without ``clip.``) that differ from
        the student's now or will during training; the teacher uses them in place of the
        student's. ``pristine_clip`` is only read here, for the scene text features."""
        self.visual = student_clip.visual
        self.overrides = {key[len("visual."):]: value for key, value in pristine_copies.items()
                          if key.startswith("visual.")}
        prompts = scene_prompts() if scenes is None else scenes
        with torch.no_grad():
            ids = tokenizer(prompts)
            self.text_features = pristine_clip.encode_text(ids).float()
            self.logit_scale = pristine_clip.logit_scale.detach().clone()
        self.mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    def to(self, device: torch.device) -> SceneTeacher:
        self.overrides = {k: v.to(device) for k, v in self.overrides.items()}
        self.text_features = self.text_features.to(device)
        self.logit_scale = self.logit_scale.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def held_bytes(self) -> int:
        """Memory the teacher adds to the student's: its pristine copies and text features."""
        tensors = [*self.overrides.values(), self.text_features]
        return sum(t.numel() * t.element_size() for t in tensors)

    @torch.no_grad()
    def logits(self, pixels: torch.Tensor, block_fn: BlockFn | None = None) -> torch.Tensor:
        """Scene logits for RGB pixels in [0, 1] (NCHW), normalised as CLIP expects.

        ``block_fn(block, x, last)`` runs each block instead of the tower's own
        forward (see :func:`grmpiqa.training.tail.fast_block`) where the tower pools
        the CLS token; other towers run as they are.
        """
        x = (pixels.float() - self.mean) / self.std
        was_training = self.visual.training
        self.visual.eval()
        tower = _Tower(self.visual, block_fn if _pools_cls_token(self.visual) else None)
        overrides = {f"visual.{key}": value for key, value in self.overrides.items()}
        try:
            features = functional_call(tower, overrides, (x,), strict=False)
        finally:
            self.visual.train(was_training)
        return clip_logits(features, self.text_features, self.logit_scale)


BlockFn = Callable[[torch.nn.Module, torch.Tensor, bool], torch.Tensor]


def _pools_cls_token(visual: torch.nn.Module) -> bool:
    return getattr(visual, "attn_pool", None) is None \
        and getattr(visual, "pool_type", None) == "tok" \
        and not getattr(visual, "final_ln_after_pool", False) and hasattr(visual, "_embeds")


class _Tower(torch.nn.Module):
    """The image tower, its blocks run by ``block_fn`` when given (open_clip's own order)."""

    def __init__(self, visual: torch.nn.Module, block_fn: BlockFn | None) -> None:
        super().__init__()
        self.visual, self.block_fn = visual, block_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        visual = self.visual
        if self.block_fn is None:
            return visual(x)
        x = visual._embeds(x)
        blocks = visual.transformer.resblocks
        for i, block in enumerate(blocks):
            x = self.block_fn(block, x, i == len(blocks) - 1)
        pooled, _ = visual._pool(x)
        return pooled @ visual.proj if visual.proj is not None else pooled
