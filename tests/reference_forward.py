"""An independent GRMP-IQA forward pass, for checking the golden scores.

It reads the files in the Hub cache itself (the backbone's safetensors, the
authors'-layout ``.pt`` with ``torch.load``), maps the authors' keys onto a
plain open_clip CLIP by their names, resizes with OpenCV, and writes the
visual-prompt insertion and the CoOp prompt from docs/method.md ("Model"),
using the checkpoint's own ``token_prefix``/``token_suffix`` buffers. None of
grmpiqa's preprocessing, key conversion or model code is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def _snapshot_file(hf_cache: Path, repo: str, filename: str) -> Path:
    folder = Path(hf_cache) / f"models--{repo.replace('/', '--')}"
    commit = (folder / "refs" / "main").read_text().strip()
    return folder / "snapshots" / commit / filename


def load_reference(hf_cache: Path, manifest: dict[str, Any], name: str) -> dict[str, Any]:
    """The model ``name`` of ``manifest`` as plain tensors on an open_clip CLIP."""
    import open_clip
    from safetensors.torch import load_file

    entry = manifest["models"][name]
    backbone = manifest["backbones"][entry["backbone"]]
    repo = backbone["weights"]["repo"]
    cfg = json.loads(_snapshot_file(hf_cache, repo, backbone["config_file"]).read_text())
    clip = open_clip.CLIP(**cfg["model_cfg"]).eval()
    clip.load_state_dict(load_file(_snapshot_file(hf_cache, repo, backbone["weights"]
                                                  ["filename"])))
    weights = entry["weights"]
    raw = torch.load(_snapshot_file(hf_cache, weights["repo"], weights["filename"]),
                     map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in raw.items()}
    prompts = {k: state.pop(f"image_encoder.{k}") for k in (
        "prompt_embeddings", "deep_prompt_embeddings", "prompt_proj.weight",
        "prompt_proj.bias", "prompt_norm.weight", "prompt_norm.bias")}
    learner = {k: state.pop(f"prompt_learner2.{k}") for k in ("ctx", "token_prefix",
                                                              "token_suffix")}
    mapped = {"logit_scale": state.pop("logit_scale")}
    for key, value in state.items():
        tower, rest = key.split(".", 1)
        mapped[{"image_encoder": "visual.", "text_encoder": ""}[tower] + rest] = value
    clip.load_state_dict(mapped, strict=True)
    tokens = open_clip.get_tokenizer("ViT-B-16")(
        [" ".join(["X"] * len(learner["ctx"])) + f" {c}." for c in entry["config"].get(
            "class_names", ("high quality", "low quality"))])
    return {"clip": clip, "prompts": prompts, "learner": learner, "tokens": tokens,
            "preprocess": entry["preprocess"]}


def _pixels(image: Any, preprocess: dict[str, Any]) -> torch.Tensor:
    import cv2

    size, crop = preprocess["resize"], preprocess["crop"]
    squashed = cv2.resize(np.asarray(image.convert("RGB")), (size, size),
                          interpolation=cv2.INTER_CUBIC)
    top = (size - crop) // 2
    x = torch.from_numpy(squashed[top:top + crop, top:top + crop].astype(np.float32) / 255.0)
    mean, std = torch.tensor(preprocess["mean"]), torch.tensor(preprocess["std"])
    return ((x - mean) / std).permute(2, 0, 1)


def _image_features(ref: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    visual, p = ref["clip"].visual, ref["prompts"]
    x = visual.conv1(x).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(len(x), 1, -1), x], 1)
    x = visual.ln_pre(x + visual.positional_embedding)
    sets = F.linear(torch.cat([p["prompt_embeddings"], p["deep_prompt_embeddings"]]),
                    p["prompt_proj.weight"], p["prompt_proj.bias"])
    n = sets.shape[1]
    x = torch.cat([x[:, :1], sets[0].expand(len(x), -1, -1), x[:, 1:]], 1)
    for i, block in enumerate(visual.transformer.resblocks):
        if 1 <= i < len(sets):  # VPT-deep: fresh prompts before blocks 1..depth
            x = torch.cat([x[:, :1], sets[i].expand(len(x), -1, -1), x[:, 1 + n:]], 1)
        x = block(x)
    cls = F.layer_norm(x[:, 0], x.shape[-1:], p["prompt_norm.weight"], p["prompt_norm.bias"],
                       eps=1e-6)
    return visual.ln_post(cls) @ visual.proj


def _text_features(ref: dict[str, Any]) -> torch.Tensor:
    clip, learner = ref["clip"], ref["learner"]
    ctx = learner["ctx"].expand(len(learner["token_prefix"]), -1, -1)
    x = torch.cat([learner["token_prefix"], ctx, learner["token_suffix"]], 1)
    x = clip.transformer(x + clip.positional_embedding, attn_mask=clip.attn_mask)
    x = clip.ln_final(x)[torch.arange(len(x)), ref["tokens"].argmax(-1)]
    return x @ clip.text_projection


@torch.no_grad()
def reference_scores(ref: dict[str, Any], images: list[Any]) -> list[float]:
    """P(high quality) of each PIL image: softmax of exp(logit_scale) * cosine similarities."""
    pixels = torch.stack([_pixels(image, ref["preprocess"]) for image in images])
    image = F.normalize(_image_features(ref, pixels), dim=-1)
    text = F.normalize(_text_features(ref), dim=-1)
    logits = ref["clip"].logit_scale.exp() * image @ text.t()
    return logits.softmax(-1)[:, 0].tolist()
