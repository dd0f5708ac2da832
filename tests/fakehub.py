"""Random-weight models written into a real, local Hugging Face cache.

The tests and benchmarks run grmpiqa's own loading code against these caches
with ``HF_HUB_OFFLINE=1``: no mocking of the Hub, no network. A random
ViT-B-16 costs what the real one costs, so benchmarks use it; the scores it
gives mean nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

TINY_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 64, "patch_size": 8,
                   "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                 "layers": 3},
}
TINY_GRMP_CONFIG: dict[str, Any] = {
    "kind": "grmp", "text_context_tokens": 4, "visual_prompt_tokens": 6,
    "visual_prompt_depth": 2,
}
# exp(logit_scale) of the tiny backbone: trained CLIP's 100, not open_clip's initial 1/0.07
# (with it, and its text context left random, the tiny model scored every generated photo
# within 0.50..0.65, where no tolerance tells one ranking from another; spread_scores).
TINY_LOGIT_SCALE = 100.0
VIT_B_16_REPO = "timm/vit_base_patch16_clip_224.openai"
AUTHORS_REPO = "zzhowe/GRMP-IQA"
AUTHORS_FILE = "clive_50_prompt_lda_5.0.pt"


def repo_folder(hf_cache: Path, repo: str) -> Path:
    return Path(hf_cache) / f"models--{repo.replace('/', '--')}"


def write_hub_file(hf_cache: Path, repo: str, filename: str, data: bytes, *,
                   commit: str | None = None, ref: str | None = "main") -> tuple[Path, str]:
    """Place ``data`` as ``filename`` of ``repo`` at ``commit`` the way huggingface_hub does:
    ``blobs/<sha256>``, ``snapshots/<commit>/<filename>`` -> blob, ``refs/<ref>`` -> commit."""
    folder = repo_folder(hf_cache, repo)
    if commit is None:
        commit = hashlib.sha1(repo.encode() + b"\0" + filename.encode() + b"\0" + data).hexdigest()
    blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = folder / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(blob, link.parent))
    if ref is not None:
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref).write_text(commit)
    return link, commit


def random_clip(model_cfg: dict[str, Any], seed: int = 0, quick_gelu: bool = False,
                logit_scale: float | None = None):
    """An open_clip CLIP with deterministic random weights (``logit_scale``: exp of it)."""
    import open_clip

    torch.manual_seed(seed)
    cfg = dict(model_cfg)
    if quick_gelu:
        cfg["quick_gelu"] = True
    model = open_clip.CLIP(**cfg).eval()
    if logit_scale is not None:
        with torch.no_grad():
            model.logit_scale.fill_(math.log(logit_scale))
    return model


def clip_safetensors(model: Any) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous().clone() for k, v in model.state_dict().items()})


def write_backbone(hf_cache: Path, repo: str, model_cfg: dict[str, Any] | None = None, *,
                   architecture: str | None = None, quick_gelu: bool = False, seed: int = 0,
                   commit: str | None = None, ref: str | None = "main",
                   logit_scale: float | None = None) -> dict[str, Any]:
    """Write a random backbone and return its manifest ``backbones`` entry."""
    import open_clip

    cfg = model_cfg if model_cfg is not None else open_clip.get_model_config(architecture)
    model = random_clip(cfg, seed, quick_gelu, logit_scale)
    _, commit = write_hub_file(hf_cache, repo, "open_clip_model.safetensors",
                                     clip_safetensors(model), commit=commit, ref=ref)
    spec: dict[str, Any] = {
        "weights": {"repo": repo, "filename": "open_clip_model.safetensors",
                    "revision": None, "sha256": None},
        "quick_gelu": quick_gelu,
        "description": "random weights for tests",
    }
    if architecture is not None:
        spec["architecture"] = architecture
    else:
        write_hub_file(hf_cache, repo, "open_clip_config.json",
                       json.dumps({"model_cfg": cfg}).encode(), commit=commit, ref=ref)
        spec["config_file"] = "open_clip_config.json"
    return spec


def authors_state_dict(model: Any, *, module_prefix: bool = False) -> dict[str, torch.Tensor]:
    """``model``'s weights laid out like the authors' ``CustomCLIP`` checkpoint (docs/method.md)."""
    from grmpiqa.weights.authors import authors_key

    out = {authors_key(k): v.detach().clone() for k, v in model.state_dict().items()}
    context = model.text_context
    with torch.no_grad():
        embedded = model.clip.token_embedding(context.token_ids)
    out["prompt_learner2.token_prefix"] = embedded[:, :1].clone()
    out["prompt_learner2.token_suffix"] = embedded[:, 1 + context.n_ctx:].clone()
    if module_prefix:
        out = {f"module.{k}": v for k, v in out.items()}
    return out


def calibration_photos(count: int = 32, seed: int = 2024) -> list[np.ndarray]:
    """uint8 RGB images of the kinds the tests score: colour waves of any frequency, flat
    shapes, and noise from none to overwhelming, at a few small sizes."""
    rng = np.random.default_rng(seed)
    photos = []
    for i in range(count):
        height, width = 32 + 8 * (i % 4), 40 + 8 * (i % 3)
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        image = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
                          for fx, fy, phase in rng.uniform(0.3, 4.0, (3, 3))], axis=-1)
        for _ in range(int(rng.integers(0, 4))):
            cx, cy, rx, ry = rng.uniform(0.1, 0.9, 4) * (1, 1, 0.4, 0.4)
            image[((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1] = rng.uniform(0, 1, 3)
        image += rng.normal(0.0, rng.uniform(0.0, 0.6), image.shape)
        photos.append((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    return photos


def spread_scores(model: Any, photos: Sequence[np.ndarray], logit_std: float = 2.0) -> None:
    """Move the learned text context as little as possible so that the logits
    ``logit(P(high quality))`` of ``photos`` average 0 with standard deviation ``logit_std``.

    A random network sees every image nearly alike, so its scores hardly
    differ; a text direction along the way images do differ spreads them,
    and the image embeddings stay as they were. Minimum-norm Gauss-Newton in
    float64, so the result does not hang on one machine's rounding.
    """
    import copy

    from grmpiqa.io.preprocess import to_model_input

    with torch.inference_mode():
        pixels = to_model_input([torch.from_numpy(p).permute(2, 0, 1) for p in photos],
                                model.preprocess)
        _, embeddings = model.predict_with_embedding(pixels)
    embeddings = embeddings.clone().double()
    twin = copy.deepcopy(model).double()
    scale = twin.clip.logit_scale.detach().exp()
    ctx = twin.text_context.ctx.detach().clone()
    del twin.text_context.ctx  # a plain tensor from here, so the Jacobian reaches it

    def residual(context: torch.Tensor) -> torch.Tensor:
        twin.text_context.ctx = context
        text = torch.nn.functional.normalize(twin._compute_text_features(), dim=-1)
        logits = scale * embeddings @ (text[0] - text[1])
        return torch.stack([logits.mean(), logits.std() - logit_std])

    for _ in range(20):
        error = residual(ctx).detach()
        if error.abs().max() < 1e-9:
            break
        jacobian = torch.autograd.functional.jacobian(residual, ctx).reshape(2, -1)
        step = jacobian.t() @ torch.linalg.solve(jacobian @ jacobian.t(), error)
        ctx = ctx - step.reshape(ctx.shape)
    else:
        raise RuntimeError(f"the tiny model's scores did not spread (residual {error.tolist()})")
    with torch.no_grad():
        model.text_context.ctx.copy_(ctx.float())
    model.load_state_dict(model.state_dict())  # drops any cached text features


def write_authors_checkpoint(hf_cache: Path, backbone_spec: dict[str, Any],
                             config: dict[str, Any], *, repo: str = AUTHORS_REPO,
                             filename: str = AUTHORS_FILE, seed: int = 1,
                             module_prefix: bool = True, perturb_blocks: int = 1,
                             preprocess: dict[str, Any] | None = None,
                             spread_on: Sequence[np.ndarray] = ()) -> tuple[Path, Any]:
    """A random GRMP model saved in the authors' layout; returns (path, the model itself).

    The last ``perturb_blocks`` vision and text blocks are changed, as the
    authors' fine-tuning changes them, so conversion must keep exactly those.
    With ``spread_on`` photos, :func:`spread_scores` spreads the scores
    (of those photos seen through ``preprocess``, the manifest entry's).
    """
    from grmpiqa.config import ModelConfig, PreprocessConfig
    from grmpiqa.weights.loading import build_model
    from grmpiqa.weights.manifest import parse_backbone

    spec = parse_backbone("backbone", backbone_spec, "backbone")
    torch.manual_seed(seed)
    pixels = PreprocessConfig.from_dict(preprocess) if preprocess else PreprocessConfig()
    model = build_model(spec, ModelConfig.from_dict(config), pixels, hf_cache=hf_cache)
    with torch.no_grad():
        for blocks in (model.clip.visual.transformer.resblocks, model.clip.transformer.resblocks):
            for block in list(blocks)[len(blocks) - perturb_blocks:]:
                for param in block.parameters():
                    param.add_(torch.randn_like(param) * 0.01)
    if spread_on:
        spread_scores(model, spread_on)
    import io

    buffer = io.BytesIO()
    torch.save(authors_state_dict(model, module_prefix=module_prefix), buffer)
    path, _ = write_hub_file(hf_cache, repo, filename, buffer.getvalue())
    return path, model


def tiny_manifest(hf_cache: Path, *, backbone_repo: str = "test/tiny-clip",
                  authors_repo: str = AUTHORS_REPO, seed: int = 0) -> dict[str, Any]:
    """A manifest shaped like the real one, on a tiny backbone, with all files in the cache."""
    from grmpiqa.config import IMAGENET_MEAN, IMAGENET_STD

    backbone = write_backbone(hf_cache, backbone_repo, TINY_MODEL_CFG, seed=seed,
                              logit_scale=TINY_LOGIT_SCALE)
    preprocess = {"resize": 36, "crop": 32, "mean": list(IMAGENET_MEAN),
                  "std": list(IMAGENET_STD)}
    write_authors_checkpoint(hf_cache, backbone, TINY_GRMP_CONFIG, repo=authors_repo,
                             preprocess=preprocess, spread_on=calibration_photos())
    return {
        "schema_version": 1,
        "default": "grmp-tiny",
        "backbones": {"tiny": backbone},
        "models": {
            "grmp-tiny": {
                "description": "tiny random GRMP model in the authors' layout",
                "backbone": "tiny",
                "config": TINY_GRMP_CONFIG,
                "preprocess": preprocess,
                "weights": {"repo": authors_repo, "filename": AUTHORS_FILE, "revision": None,
                            "sha256": None, "format": "authors-pt"},
                "licence": "test", "source": "test",
            },
            "zeroshot-tiny": {
                "description": "tiny zero-shot model",
                "backbone": "tiny",
                "config": {"kind": "zeroshot"},
                "preprocess": {**preprocess, "mean": [0.48145466, 0.4578275, 0.40821073],
                               "std": [0.26862954, 0.26130258, 0.27577711]},
                "weights": None,
                "licence": "test", "source": "test",
            },
        },
    }


def ensure_vit_b16_cache(hf_cache: Path) -> None:
    """:func:`write_vit_b16_cache` unless ``hf_cache`` already holds the backbone."""
    import sys

    if not repo_folder(Path(hf_cache), VIT_B_16_REPO).is_dir():
        print(f"writing a random-weight ViT-B-16 Hub cache to {hf_cache} ...", file=sys.stderr)
        write_vit_b16_cache(Path(hf_cache))


def write_vit_b16_cache(hf_cache: Path, seed: int = 0) -> None:
    """The real default manifest's files, with random weights, for benchmarks:
    a ViT-B-16 (QuickGELU) backbone and an authors'-layout GRMP checkpoint."""
    from grmpiqa.weights.manifest import load_manifest

    manifest = load_manifest()
    entry = manifest.get("grmp-clive50")
    backbone = write_backbone(hf_cache, VIT_B_16_REPO, architecture="ViT-B-16",
                              quick_gelu=True, seed=seed)
    write_authors_checkpoint(hf_cache, backbone, entry.config.to_dict(), seed=seed + 1)
