"""``load_model``: one entry point from a model name or a weights file to a ready model."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from grmpiqa.config import LabelScale, ModelConfig, PreprocessConfig
from grmpiqa.errors import WeightsError, WeightsUnavailable
from grmpiqa.model.acceleration import prepare_for_inference
from grmpiqa.model.devices import resolve_device
from grmpiqa.model.network import QualityModel
from grmpiqa.weights import hub
from grmpiqa.weights.authors import convert_state, read_checkpoint
from grmpiqa.weights.backbone import (
    build_architecture,
    build_backbone,
    load_pretrained,
    tokenizer_for,
)
from grmpiqa.weights.formats import apply_weights, read_weights
from grmpiqa.weights.manifest import (
    BackboneSpec,
    Manifest,
    ModelEntry,
    load_manifest,
    looks_like_path,
)

log = logging.getLogger("grmpiqa")
PathLike = str | os.PathLike[str]


def build_model(backbone: BackboneSpec, config: ModelConfig, preprocess: PreprocessConfig, *,
                label: LabelScale | None = None, info: dict[str, Any] | None = None,
                hf_cache: PathLike | None = None, pretrained: bool = True) -> QualityModel:
    """A model with freshly initialised prompts on the backbone: its pretrained weights, or
    (``pretrained=False``) the bare architecture, for weights that hold every tensor."""
    clip = build_backbone(backbone, hf_cache) if pretrained \
        else build_architecture(backbone, hf_cache)
    info = {"backbone": backbone.name, **(info or {})}
    return QualityModel(clip, tokenizer_for(clip), config, preprocess, label=label, info=info,
                        backbone_spec=backbone)


def load_model(name_or_path: PathLike | None = None, *, device: str | torch.device = "auto",
               manifest: Manifest | None = None, hf_cache: PathLike | None = None,
               base: str | None = None, precision: str = "auto", compile: bool = False
               ) -> QualityModel:
    """Load a model by manifest name (``grmp-clive50``) or from a weights file, ready to score.

    Parameters
    ----------
    name_or_path : str or path, optional
        A manifest name, or a weights file: ``.safetensors`` files are grmpiqa's own
        format and carry everything needed; other files (``.pt``) are read as the
        authors' checkpoint layout. Default: the manifest's default model.
    device : str or torch.device
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
    manifest : Manifest, optional
        The model registry (default: ``weights_manifest.json`` or ``$GRMPIQA_MANIFEST``).
    hf_cache : path, optional
        The Hugging Face cache folder to read and write.
    base : str, optional
        The manifest model whose backbone and preprocessing an authors' ``.pt`` uses.
    precision : str
        ``auto`` (fp16 autocast on GPUs, exact fp32 on the CPU), ``fast`` (bf16 on CPUs
        with native bf16, int8 on other CPUs, fp16 on GPUs), ``fp32``, ``fp16``, ``bf16``
        or ``int8``.
    compile : bool
        Wrap the model in ``torch.compile``.

    Returns
    -------
    QualityModel
        In eval mode on ``device``.
    """
    target = resolve_device(device)
    name = os.fspath(name_or_path) if name_or_path is not None else None
    log.debug("loading model %s on %s, precision %s", name or "(the default)", target, precision)
    if name is not None and looks_like_path(name):
        model = _load_file(Path(name), manifest, hf_cache, base)
    else:
        manifest = manifest or load_manifest()
        model = _load_entry(manifest.get(name or manifest.default), hf_cache)
    model.eval()
    model.to(target)
    return prepare_for_inference(model, precision, compile)


def _load_entry(entry: ModelEntry, hf_cache: PathLike | None) -> QualityModel:
    try:
        return _build_entry(entry, hf_cache)
    except WeightsUnavailable as exc:
        missing = [f for f in entry.scoring_files() if hub.cached_path(f, hf_cache) is None]
        raise exc.for_model(entry.name, missing) from None


def _build_entry(entry: ModelEntry, hf_cache: PathLike | None) -> QualityModel:
    info = {"name": entry.name}
    if entry.weights is None:
        return build_model(entry.backbone, entry.config, entry.preprocess, info=info,
                           hf_cache=hf_cache)
    label = entry.weights.file.label
    source = hub.fetch(entry.weights.file, hf_cache)
    info["weights"] = label
    model = build_model(entry.backbone, entry.config, entry.preprocess, info=info,
                        hf_cache=hf_cache, pretrained=False)
    with hub.evicted_if_unreadable(source):
        if entry.weights.format == "authors-pt":
            _load_authors(model, source, label)
            return model
        tensors, meta = read_weights(source)
        if meta.config != entry.config:
            raise WeightsError(f"{label}: its model config differs from the manifest entry "
                               f"{entry.name!r}")
        apply_weights(model, tensors, label)
    _fill_backbone(model, tensors, hf_cache)
    model.label = meta.label
    return model


def _fill_backbone(model: QualityModel, tensors: dict[str, torch.Tensor],
                   hf_cache: PathLike | None) -> None:
    """Pretrained weights under a grmpiqa weights file that holds only what differs from them.

    Loaded first, then the file's tensors again on top, so every tensor the file holds wins.
    """
    if all(f"clip.{key}" in tensors for key in model.clip.state_dict()):
        return
    load_pretrained(model.clip, model.backbone_spec, hf_cache)
    model.load_state_dict(tensors, strict=False)


def _load_file(path: Path, manifest: Manifest | None, hf_cache: PathLike | None,
               base: str | None) -> QualityModel:
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    info = {"name": path.name, "weights": str(path)}
    if path.suffix == ".safetensors":
        tensors, meta = read_weights(path)
        model = build_model(meta.backbone, meta.config, meta.preprocess, label=meta.label,
                            info={**info, "training": meta.training}, hf_cache=hf_cache,
                            pretrained=False)
        apply_weights(model, tensors, str(path))
        _fill_backbone(model, tensors, hf_cache)
        return model
    manifest = manifest or load_manifest()
    entry = manifest.get(base or manifest.default)
    if entry.config.kind != "grmp":
        raise WeightsError(f"{path}: the authors' checkpoints need a 'grmp' model as base, "
                           f"not {entry.name!r}")
    model = build_model(entry.backbone, entry.config, entry.preprocess, info=info,
                        hf_cache=hf_cache, pretrained=False)
    _load_authors(model, path, str(path))
    return model


def _load_authors(model: QualityModel, source: Path, where: str) -> None:
    """Every tensor of the model from the authors' checkpoint, each key and shape checked."""
    converted = convert_state(read_checkpoint(source), model, where)
    apply_weights(model, converted, where)
