"""Quality-aware gradient regularisation (docs/method.md, "Adapt"), as pure tensor functions.

The quality gradient G_d is kept unless it also moves the model's scene
(content) prediction, measured by G_g, the gradient of the cross-entropy
between a frozen teacher's scene distribution and the student's. Then the
part of G_d along G_g is removed, lambda times over: a few labels should teach
quality, not content. The semantic loss is never minimised itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SCENES = ("animal", "cityscape", "human", "indoor", "landscape", "night", "plant", "still_life",
          "others")


def scene_prompts(scenes: Sequence[str] = SCENES) -> list[str]:
    """``a photo of a {scene}``; underscores become spaces (``still_life`` -> ``still life``)
    so that CLIP reads words, not an identifier."""
    return [f"a photo of a {scene.replace('_', ' ')}" for scene in scenes]


def scene_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                        temperature: float = 1.0) -> torch.Tensor:
    """L_s = -sum_k p_T(k) log p_S(k), batch mean; p = softmax(logits / T)."""
    teacher = torch.softmax(teacher_logits.float() / temperature, dim=-1)
    log_student = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    return -(teacher * log_student).sum(dim=-1).mean() * temperature ** 2


def project_gradient(quality_grad: torch.Tensor, semantic_grad: torch.Tensor | None,
                     lam: float) -> torch.Tensor:
    """The per-tensor rule: G_d if <G_d, G_g> <= 0, else G_d - lam <G_d, G_g> / |G_g|^2 G_g.

    A missing or zero G_g (a tensor the scene loss does not reach, such as the
    text context) has <G_d, G_g> = 0 and leaves G_d alone.
    """
    if semantic_grad is None or lam == 0:
        return quality_grad
    d = quality_grad.reshape(-1).double()
    g = semantic_grad.reshape(-1).double()
    dot = torch.dot(d, g)
    if dot <= 0:
        return quality_grad
    coefficient = (lam * dot / torch.dot(g, g)).to(quality_grad.dtype)
    return quality_grad - coefficient * semantic_grad.to(quality_grad.dtype)


def regulate_gradients(quality_grads: Sequence[torch.Tensor | None],
                       semantic_grads: Sequence[torch.Tensor | None],
                       lam: float) -> list[torch.Tensor | None]:
    """:func:`project_gradient` tensor by tensor; None where the quality loss has no gradient."""
    if len(quality_grads) != len(semantic_grads):
        raise ValueError("one semantic gradient per quality gradient is needed")
    return [None if gd is None else project_gradient(gd, gg, lam)
            for gd, gg in zip(quality_grads, semantic_grads, strict=True)]
