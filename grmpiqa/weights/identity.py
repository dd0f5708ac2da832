"""The :class:`~grmpiqa.identity.ModelIdentity` of a model, found without building it.

Reads what loading would read (the manifest entry or a weights file's header)
and hashes the weights files (:func:`grmpiqa.weights.hub.file_sha256`
remembers each digest, so a big file is hashed once), so an output can be
checked, and a stored score looked up, before seconds go into loading.
"""

from __future__ import annotations

import os
from pathlib import Path

from grmpiqa.config import LabelScale, ModelConfig, ModelOptions, PreprocessConfig
from grmpiqa.errors import WeightsError
from grmpiqa.identity import ModelIdentity, digest_of
from grmpiqa.weights import hub
from grmpiqa.weights.manifest import (
    BackboneSpec,
    HubFile,
    Manifest,
    load_manifest,
    looks_like_path,
)

PathLike = str | os.PathLike[str]


def _hub_digest(file: HubFile, hf_cache: PathLike | None) -> str:
    """A pinned checksum is the file's identity; otherwise the digest of the cached file."""
    if file.sha256 is not None:
        return file.sha256
    return hub.file_sha256(hub.fetch(file, hf_cache))


def _settings(backbone: BackboneSpec, config: ModelConfig, preprocess: PreprocessConfig,
              label: LabelScale | None = None) -> str:
    # a weights file may leave the tensors it does not change to the backbone's own file,
    # named (and pinned, where the manifest pins it) by the backbone's description
    return digest_of({"backbone": {"architecture": backbone.architecture,
                                   "config_file": backbone.config_file,
                                   "quick_gelu": backbone.quick_gelu,
                                   "weights": [backbone.weights.repo, backbone.weights.filename,
                                               backbone.weights.revision,
                                               backbone.weights.sha256]},
                      "config": config.to_dict(), "preprocess": preprocess.to_dict(),
                      "label": label.to_dict() if label else None})


def identify(name_or_path: PathLike | None = None, *, precision: str, decoding: str,
             manifest: Manifest | None = None, base: str | None = None,
             hf_cache: PathLike | None = None) -> ModelIdentity:
    """The identity of the model :func:`~grmpiqa.weights.loading.load_model` would load.

    Parameters
    ----------
    name_or_path : str or path, optional
        A manifest name or a weights file, as for ``load_model``.
    precision : str
        The concrete precision it runs in (``fp32``, ``fp16``, ``bf16``, ``int8``).
    decoding : {"exact", "fast"}
        ``fast`` when JPEGs are decoded at reduced size (``draft``).
    manifest, base, hf_cache
        As for ``load_model``.
    """
    from grmpiqa.weights.formats import read_metadata

    name = os.fspath(name_or_path) if name_or_path is not None else None
    if name is not None and looks_like_path(name):
        path = Path(name)
        if not path.is_file():
            raise WeightsError(f"{path}: no such weights file")
        digest = hub.file_sha256(path)
        if path.suffix == ".safetensors":
            meta = read_metadata(path)
            weights = (digest,)
            settings = _settings(meta.backbone, meta.config, meta.preprocess, meta.label)
        else:  # the authors' checkpoint holds every tensor; it is read on the base's config
            manifest = manifest or load_manifest()
            entry = manifest.get(base or manifest.default)
            weights = (digest,)
            settings = _settings(entry.backbone, entry.config, entry.preprocess)
        return ModelIdentity(path.name, precision, decoding, weights, settings)
    manifest = manifest or load_manifest()
    entry = manifest.get(name or manifest.default)
    if entry.weights is None:
        weights = (_hub_digest(entry.backbone.weights, hf_cache),)
    elif entry.weights.format == "authors-pt":
        weights = (_hub_digest(entry.weights.file, hf_cache),)
    else:
        weights = (_hub_digest(entry.weights.file, hf_cache),)
    return ModelIdentity(entry.name, precision, decoding, weights,
                         _settings(entry.backbone, entry.config, entry.preprocess))


def label_scale(name_or_path: PathLike | None = None, *, manifest: Manifest | None = None,
                hf_cache: PathLike | None = None) -> LabelScale | None:
    """The label scale the model's weights carry (adapted weights do), read from the header."""
    from grmpiqa.weights.formats import read_metadata

    name = os.fspath(name_or_path) if name_or_path is not None else None
    if name is not None and looks_like_path(name):
        return read_metadata(name).label if name.endswith(".safetensors") else None
    manifest = manifest or load_manifest()
    entry = manifest.get(name or manifest.default)
    if entry.weights is None or entry.weights.format != "grmpiqa-safetensors":
        return None
    return read_metadata(hub.fetch(entry.weights.file, hf_cache)).label


def identify_options(options: ModelOptions) -> tuple[ModelIdentity, LabelScale | None]:
    """The identity and label scale of the model ``options`` describe, without loading it;
    refuses (ConfigError, WeightsError, ManifestError) a model, device or precision that
    cannot be used."""
    from grmpiqa.model.acceleration import resolve_precision
    from grmpiqa.model.devices import resolve_device
    from grmpiqa.weights.download import require_model

    precision = resolve_precision(options.precision, resolve_device(options.device))
    if options.name is None or not looks_like_path(os.fspath(options.name)):
        # one message naming the model and every missing file, asking the Hub once
        require_model(options.name)
    identity = identify(options.name, precision=precision, base=options.base,
                        decoding="fast" if options.fast_decode else "exact")
    return identity, label_scale(options.name)
