"""What each model needs from the Hub, what of it is cached, and fetching it ahead of time.

Torch-free, so that ``grmpiqa models`` stays instant. Sizes are never guessed:
a cached file's size is read from the cache, else the manifest's (only ever
written there once verified), else the Hub's answer when it can be asked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from grmpiqa.errors import ManifestError, WeightsError, WeightsUnavailable
from grmpiqa.weights import hub
from grmpiqa.weights.manifest import SCORE, HubFile, Manifest, ModelEntry, ModelFile, load_manifest

PathLike = str | os.PathLike[str]
SizeSource = Literal["cache", "manifest", "hub"]
# Listing asks the Hub for sizes; it should not hang for long on a network that drops packets.
LIST_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FileStatus:
    """One Hub file of a model: which commands need it, where it is cached, its size."""

    file: HubFile
    role: str
    needed_for: tuple[str, ...]
    path: str | None = None  # in the local Hub cache; None when not there
    size: int | None = None  # bytes; None when unknown
    size_from: SizeSource | None = None
    downloaded: bool = False  # fetched by this call

    @property
    def cached(self) -> bool:
        return self.path is not None

    @property
    def for_scoring(self) -> bool:
        return SCORE in self.needed_for

    def to_dict(self) -> dict[str, Any]:
        return {**self.file.to_dict(), "label": self.file.label, "role": self.role,
                "needed_for": list(self.needed_for), "cached": self.cached, "path": self.path,
                "size": self.size, "size_from": self.size_from, "downloaded": self.downloaded}


@dataclass(frozen=True)
class ModelFiles:
    """A manifest model and the state of its Hub files."""

    name: str
    default: bool
    kind: str
    backbone: str
    description: str
    files: tuple[FileStatus, ...]

    @property
    def cache_state(self) -> str:
        """Of the files scoring needs: ``cached``, ``partly cached`` or ``not cached``."""
        cached = [f.cached for f in self.files if f.for_scoring]
        return "cached" if all(cached) else "partly cached" if any(cached) else "not cached"

    def needed(self, with_backbone: bool = False) -> list[FileStatus]:
        """The files scoring needs; with ``with_backbone`` (for adapt, pretrain) all."""
        return [f for f in self.files if with_backbone or f.for_scoring]

    @property
    def pinned(self) -> bool:
        return all(f.file.revision and f.file.sha256 for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "default": self.default, "kind": self.kind,
                "backbone": self.backbone, "cache": self.cache_state, "pinned": self.pinned,
                "description": self.description, "files": [f.to_dict() for f in self.files]}


class _SizeAsker:
    """The Hub's sizes for files not cached: one request each, none after the Hub proved
    unreachable."""

    def __init__(self, enabled: bool, hf_cache: PathLike | None) -> None:
        self.enabled, self.hf_cache = enabled, hf_cache
        self.known: dict[HubFile, int | None] = {}

    def size(self, file: HubFile) -> int | None:
        if not self.enabled:
            return None
        if file not in self.known:
            try:
                self.known[file] = hub.probe(file, self.hf_cache, timeout=LIST_TIMEOUT_S)
            except WeightsUnavailable:
                self.enabled = False
                return None
            except WeightsError:
                self.known[file] = None
        return self.known[file]


def _status(part: ModelFile, hf_cache: PathLike | None, asker: _SizeAsker) -> FileStatus:
    status = FileStatus(part.file, part.role, part.needed_for)
    path = hub.cached_path(part.file, hf_cache)
    if path is not None:
        with contextlib.suppress(OSError):
            return replace(status, path=str(path), size=path.stat().st_size, size_from="cache")
    if part.file.size is not None:
        return replace(status, size=part.file.size, size_from="manifest")
    size = asker.size(part.file)
    return replace(status, size=size, size_from="hub" if size is not None else None)


def _model_files(entry: ModelEntry, manifest: Manifest, files: list[FileStatus]) -> ModelFiles:
    return ModelFiles(entry.name, entry.name == manifest.default, entry.config.kind,
                      entry.backbone.name, entry.description, tuple(files))


def list_models(*, manifest: Manifest | None = None, hf_cache: PathLike | None = None,
                ask_hub: bool | None = None) -> list[ModelFiles]:
    """Every manifest model with the Hub files it needs, whether each is cached, and its size.

    Parameters
    ----------
    manifest : Manifest, optional
        The model registry (default: ``weights_manifest.json`` or ``$GRMPIQA_MANIFEST``).
    hf_cache : path, optional
        The Hugging Face cache folder to look in.
    ask_hub : bool, optional
        Ask the Hub for the size of files not cached (one request each, no retries).
        Default: unless ``HF_HUB_OFFLINE`` is set.
    """
    manifest = manifest or load_manifest()
    asker = _SizeAsker(not hub.offline_mode() if ask_hub is None else ask_hub, hf_cache)
    return [_model_files(entry, manifest, [_status(part, hf_cache, asker)
                                           for part in entry.files()])
            for entry in manifest.models.values()]


def download_model(name: str | None = None, *, with_backbone: bool = False,
                   manifest: Manifest | None = None, hf_cache: PathLike | None = None,
                   force: bool = False, progress_bars: bool = True) -> ModelFiles:
    """Fetch ahead of time what a model needs, so that it later runs offline.

    Parameters
    ----------
    name : str, optional
        A manifest model (default: the manifest's default).
    with_backbone : bool
        Also the pristine CLIP backbone that ``adapt`` and ``pretrain`` need (scoring with
        the authors' checkpoints does not).
    manifest : Manifest, optional
        The model registry.
    hf_cache : path, optional
        The Hugging Face cache folder to fill (default: huggingface_hub's, ``HF_HUB_CACHE``).
    force : bool
        Download again even what is cached.
    progress_bars : bool
        huggingface_hub's progress bars on stderr (shown on a terminal).

    Returns
    -------
    ModelFiles
        The files now cached (``downloaded`` marks those fetched by this call); files
        not wanted are listed as they are. Files cached without a pinned revision are
        checked against the Hub's newest commit when it can be reached.
    """
    manifest = manifest or load_manifest()
    entry = manifest.get(name or manifest.default)
    wanted = [part for part in entry.files() if with_backbone or SCORE in part.needed_for]
    asker = _SizeAsker(False, hf_cache)
    out = []
    with _progress_bars(progress_bars):
        for part in entry.files():
            if part not in wanted:
                out.append(_status(part, hf_cache, asker))
                continue
            before = None if force else hub.cached_path(part.file, hf_cache)
            try:
                path = hub.fetch(part.file, hf_cache, refresh=True, force=force)
            except WeightsUnavailable as exc:
                missing = [p.file for p in wanted if hub.cached_path(p.file, hf_cache) is None]
                raise exc.for_model(entry.name, missing) from None
            out.append(FileStatus(part.file, part.role, part.needed_for, str(path),
                                  path.stat().st_size, "cache",
                                  downloaded=before is None or before.resolve() != path.resolve()))
    return _model_files(entry, manifest, out)


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if not enabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


def require_model(name: str | None = None, *, with_backbone: bool = False,
                  manifest: Manifest | None = None, hf_cache: PathLike | None = None
                  ) -> list[HubFile]:
    """Fail now, torch-free and in about a second, if the model cannot be loaded for want of
    files: those scoring needs (with ``with_backbone``, adapt and pretrain too) that are not
    cached, when nothing can be downloaded.

    Returns the files a load will download (empty when all are cached); raises
    :class:`WeightsUnavailable` naming the model and every missing file otherwise.
    """
    manifest = manifest or load_manifest()
    entry = manifest.get(name or manifest.default)
    wanted = entry.hub_files() if with_backbone else entry.scoring_files()
    missing = [f for f in wanted if hub.cached_path(f, hf_cache) is None]
    if missing:
        try:
            hub.probe(missing[0], hf_cache)
        except WeightsUnavailable as exc:
            raise exc.for_model(entry.name, missing) from None
    return missing


def model_for_files(labels: list[str], model: str | None = None,
                    manifest: Manifest | None = None) -> tuple[str, bool] | None:
    """The manifest model that has every file in ``labels`` (``model`` when it does, else the
    default, else the first), and whether it needs one of them for more than scoring."""
    try:
        manifest = manifest or load_manifest()
    except ManifestError:
        return None
    names = [n for n in (model, manifest.default) if n in manifest.models]
    for name in [*names, *manifest.models]:
        parts = {p.file.label: p for p in manifest.models[name].files()}
        if all(label in parts for label in labels):
            return name, any(not parts[label].for_scoring for label in labels)
    return None
