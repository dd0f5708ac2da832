"""Build the CLIP backbone with open_clip's own model classes and checkpoint loader.

The pretrained weights are read only where pristine CLIP is needed (zero-shot
scoring, ``adapt``'s teacher, ``pretrain``): a checkpoint that holds every
tensor is loaded into the bare architecture.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from grmpiqa.errors import ConfigError, WeightsError, first_line
from grmpiqa.weights import hub
from grmpiqa.weights.manifest import BackboneSpec

log = logging.getLogger("grmpiqa")


def backbone_model_config(spec: BackboneSpec, hf_cache: str | os.PathLike[str] | None = None
                          ) -> dict[str, Any]:
    """The open_clip model config: a built-in architecture or the repo's open_clip_config.json."""
    import open_clip

    if spec.architecture is not None:
        cfg = open_clip.get_model_config(spec.architecture)
        if cfg is None:
            raise ConfigError(
                f"backbone {spec.name!r}: open_clip has no architecture {spec.architecture!r}"
            )
    else:
        config_file = spec.config_hub_file()
        assert config_file is not None
        path = hub.fetch(config_file, hf_cache)
        with hub.evicted_if_unreadable(path):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise WeightsError(
                    f"{config_file.label}: not a readable JSON file ({exc})") from None
            cfg = data.get("model_cfg", data) if isinstance(data, dict) else None
            if not isinstance(cfg, dict) or "vision_cfg" not in cfg or "text_cfg" not in cfg:
                raise WeightsError(f"{config_file.label}: no open_clip 'model_cfg' in it")
    cfg = dict(cfg)
    if spec.quick_gelu:
        cfg["quick_gelu"] = True
    return cfg


def build_architecture(spec: BackboneSpec, hf_cache: str | os.PathLike[str] | None = None):
    """The open_clip ``CLIP`` of ``spec`` with initial (random) weights, frozen, in eval mode:
    what a checkpoint holding every tensor fills, so its pretrained weights are never read."""
    import open_clip
    import torch

    cfg = backbone_model_config(spec, hf_cache)
    if cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {}) \
            or "timm_model_name" in cfg.get("vision_cfg", {}) \
            or isinstance(cfg.get("vision_cfg", {}).get("layers"), (list, tuple)):
        raise ConfigError(
            f"backbone {spec.name!r}: GRMP-IQA needs an open_clip ViT with the standard CLIP "
            "text tower (no timm, Hugging Face or ResNet towers)"
        )
    cfg.pop("multimodal_cfg", None)
    try:
        model = open_clip.CLIP(**cfg)
    except TypeError as exc:
        raise ConfigError(f"backbone {spec.name!r}: unusable open_clip config ({exc})") from None
    _check_supported(model, spec)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model.to(torch.float32)


def load_pretrained(model: Any, spec: BackboneSpec,
                    hf_cache: str | os.PathLike[str] | None = None) -> None:
    """Fill ``model`` (from :func:`build_architecture`) with the backbone's pretrained weights."""
    import open_clip

    weights_path = hub.fetch(spec.weights, hf_cache)
    with hub.evicted_if_unreadable(weights_path):
        try:
            open_clip.load_checkpoint(model, str(weights_path), strict=True, weights_only=True)
        except Exception as exc:  # open_clip, safetensors and torch raise many types here
            raise WeightsError(
                f"backbone weights {spec.weights.label} cannot be loaded: {first_line(exc)}"
            ) from None
    for param in model.parameters():
        param.requires_grad_(False)


def build_backbone(spec: BackboneSpec, hf_cache: str | os.PathLike[str] | None = None):
    """Return the pretrained open_clip ``CLIP`` in eval mode on the CPU, in float32."""
    model = build_architecture(spec, hf_cache)
    load_pretrained(model, spec, hf_cache)
    return model


def _check_supported(model: Any, spec: BackboneSpec) -> None:
    visual = model.visual
    problems = []
    if getattr(visual, "attn_pool", None) is not None:
        problems.append("attentional pooling")
    if getattr(visual, "pool_type", "tok") != "tok":
        problems.append(f"pool_type {visual.pool_type!r}")
    if getattr(model, "text_pool_type", "argmax") != "argmax":
        problems.append(f"text pool_type {model.text_pool_type!r}")
    if problems:
        raise ConfigError(
            f"backbone {spec.name!r} is not an OpenAI-style CLIP ViT ({', '.join(problems)})"
        )


def tokenizer_for(model: Any):
    """CLIP's BPE tokenizer at the backbone's context length."""
    import open_clip

    return open_clip.SimpleTokenizer(context_length=model.context_length)
