"""Which parameters a training stage may change; everything else stays frozen.

``full`` is docs/method.md, "Adapt" (few-shot fine-tuning): the CoOp text context,
the last third of the text and image transformer blocks (8..11 of 12, worked
out for any depth), ``ln_final`` and ``ln_post``. ``prompts`` is section 3's
set: the text context and every visual-prompt parameter, the backbone frozen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from grmpiqa.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.model.network import QualityModel

TrainableMode = Literal["full", "prompts"]
TRAINABLE_MODES: tuple[str, ...] = ("full", "prompts")


def last_third(depth: int) -> range:
    """Indices of the last third of ``depth`` blocks: 8..11 of 12, 2 of 3, 16..23 of 24."""
    if depth < 1:
        raise ValueError("a transformer needs at least one block")
    return range((2 * depth) // 3, depth)


def trainable_prefixes(model: QualityModel, mode: str) -> tuple[str, ...]:
    """State-dict name prefixes of the trainable set of ``model`` (a GRMP ``QualityModel``)."""
    if mode not in TRAINABLE_MODES:
        raise ConfigError(f"trainable set {mode!r}: use one of {', '.join(TRAINABLE_MODES)}")
    if getattr(model, "text_context", None) is None:
        raise ConfigError("only a GRMP model (learned prompts) can be trained; this model is "
                          f"{model.config.kind!r}")
    if mode == "prompts":
        return ("text_context.", "visual_prompts.")
    visual_depth = len(model.clip.visual.transformer.resblocks)
    text_depth = len(model.clip.transformer.resblocks)
    return (
        "text_context.",
        *(f"clip.transformer.resblocks.{i}." for i in last_third(text_depth)),
        "clip.ln_final.",
        *(f"clip.visual.transformer.resblocks.{i}." for i in last_third(visual_depth)),
        "clip.visual.ln_post.",
    )


def trainable_names(model: QualityModel, mode: str) -> list[str]:
    """Names of the parameters ``mode`` trains, in ``named_parameters`` order."""
    prefixes = trainable_prefixes(model, mode)
    return [name for name, _ in model.named_parameters() if name.startswith(prefixes)]


def set_trainable(model: QualityModel, mode: str) -> list[tuple[str, Any]]:
    """Freeze everything but ``mode``'s set; return its (name, parameter) pairs."""
    wanted = set(trainable_names(model, mode))
    chosen = []
    for name, param in model.named_parameters():
        param.requires_grad_(name in wanted)
        if name in wanted:
            chosen.append((name, param))
    return chosen
