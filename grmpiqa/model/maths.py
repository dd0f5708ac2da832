"""Pure tensor maths of GRMP-IQA, each function unit-tested on hand-made tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_logits(image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP logits: ``exp(logit_scale) * cos(image, text)`` for every (image, class) pair.

    ``logit_scale`` is CLIP's learned log-temperature (about log 100).
    """
    image = F.normalize(image_features.float(), dim=-1)
    text = F.normalize(text_features.float(), dim=-1)
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=image.device).exp()
    return scale * image @ text.t()


def quality_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """P(high quality): the softmax over the two classes, good class first (docs/method.md)."""
    if logits.shape[-1] != 2:
        raise ValueError(f"expected logits for 2 classes, got shape {tuple(logits.shape)}")
    return torch.softmax(logits.float(), dim=-1)[..., 0]


def quality_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between q = P(high quality) and a label y in [0, 1] (docs/method.md).

    Computed from the two-class logits with ``log_softmax`` so that confident
    predictions never produce ``log(0)``.
    """
    if logits.shape[-1] != 2:
        raise ValueError(f"expected logits for 2 classes, got shape {tuple(logits.shape)}")
    log_p = torch.log_softmax(logits.float(), dim=-1)
    y = target.float().reshape(log_p.shape[:-1])
    return -(y * log_p[..., 0] + (1.0 - y) * log_p[..., 1]).mean()
