"""``load_model``: one entry point from a model name or a weights file to a ready model."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from grmpiqa.config import LabelScale, ModelConfig, PreprocessConfig
from grmpiqa.env import cache_dir
from grmpiqa.errors import WeightsError
from grmpiqa.model.acceleration import prepare_for_inference
from grmpiqa.model.devices import resolve_device
from grmpiqa.model.network import QualityModel
from grmpiqa.weights import hub
from grmpiqa.weights.authors import conversion_key, convert_state, converted_path, read_checkpoint
from grmpiqa.weights.backbone import build_backbone, tokenizer_for
from grmpiqa.weights.formats import (
    WeightsMetadata,
    apply_weights,
    differing_state,
    read_weights,
    save_weights,
)
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
                hf_cache: PathLike | None = None) -> QualityModel:
    """A model with freshly initialised prompts on the pretrained backbone (nothing loaded)."""
    clip = build_backbone(backbone, hf_cache)
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
    info = {"name": entry.name}
    if entry.weights is None:
        return build_model(entry.backbone, entry.config, entry.preprocess, info=info,
                           hf_cache=hf_cache)
    source = hub.fetch(entry.weights.file, hf_cache)
    info["weights"] = entry.weights.file.label
    if entry.weights.format == "authors-pt":
        model = build_model(entry.backbone, entry.config, entry.preprocess, info=info,
                            hf_cache=hf_cache)
        with hub.evicted_if_unreadable(source):
            _load_authors(model, source, f"{entry.weights.file.label}")
        return model
    model = build_model(entry.backbone, entry.config, entry.preprocess, info=info,
                        hf_cache=hf_cache)
    with hub.evicted_if_unreadable(source):
        tensors, meta = read_weights(source)
        if meta.config != entry.config:
            raise WeightsError(f"{entry.weights.file.label}: its model config differs from "
                               f"the manifest entry {entry.name!r}")
        apply_weights(model, tensors, entry.weights.file.label)
    model.label = meta.label
    return model


def _load_file(path: Path, manifest: Manifest | None, hf_cache: PathLike | None,
               base: str | None) -> QualityModel:
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    info = {"name": path.name, "weights": str(path)}
    if path.suffix == ".safetensors":
        tensors, meta = read_weights(path)
        model = build_model(meta.backbone, meta.config, meta.preprocess, label=meta.label,
                            info={**info, "training": meta.training}, hf_cache=hf_cache)
        apply_weights(model, tensors, str(path))
        return model
    manifest = manifest or load_manifest()
    entry = manifest.get(base or manifest.default)
    if entry.config.kind != "grmp":
        raise WeightsError(f"{path}: the authors' checkpoints need a 'grmp' model as base, "
                           f"not {entry.name!r}")
    model = build_model(entry.backbone, entry.config, entry.preprocess, info=info,
                        hf_cache=hf_cache)
    _load_authors(model, path, str(path))
    return model


def _load_authors(model: QualityModel, source: Path, where: str) -> None:
    """Convert the authors' checkpoint once, cache the result, load it."""
    spec = model.backbone_spec
    key = conversion_key(hub.file_sha256(source), *(
        json.dumps(part, sort_keys=True)
        for part in (spec.to_dict(), model.config.to_dict(), model.preprocess.to_dict())
    ))
    cached = converted_path(cache_dir(), key)
    if cached.is_file():
        try:
            tensors, _ = read_weights(cached)
            apply_weights(model, tensors, str(cached))
            return
        except WeightsError as exc:
            log.warning("ignoring a bad converted copy (%s); converting again", exc)
    converted = convert_state(read_checkpoint(source), model, where)
    tensors = differing_state(converted, model.clip.state_dict())
    apply_weights(model, tensors, where)
    metadata = WeightsMetadata(spec, model.config, model.preprocess,
                               source=f"converted from the authors' checkpoint {where}")
    try:
        save_weights(cached, tensors, metadata)
    except OSError as exc:
        log.warning("could not cache the converted weights in %s: %s", cached.parent, exc)
