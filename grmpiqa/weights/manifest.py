"""The registry of named models: ``weights_manifest.json``, validated on load.

Like Whisper's name registry, a model name resolves to files with pinned
revisions and checksums. Unlike it, a value we do not know (the authors never
published a revision or checksum) stays ``null`` and is never invented.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from grmpiqa.config import ModelConfig, PreprocessConfig
from grmpiqa.env import manifest_override
from grmpiqa.errors import ManifestError

SCHEMA_VERSION = 1
WeightsFormat = Literal["grmpiqa-safetensors", "authors-pt"]
WEIGHTS_FORMATS = ("grmpiqa-safetensors", "authors-pt")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HubFile:
    """One file on the Hugging Face Hub, optionally pinned to a commit and a checksum."""

    repo: str
    filename: str
    revision: str | None = None
    sha256: str | None = None
    size: int | None = None  # bytes, only where verified against the Hub

    @property
    def label(self) -> str:
        at = f"@{self.revision[:12]}" if self.revision else ""
        return f"{self.repo}{at}/{self.filename}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"repo": self.repo, "filename": self.filename,
                                "revision": self.revision, "sha256": self.sha256}
        if self.size is not None:
            data["size"] = self.size
        return data


@dataclass(frozen=True)
class BackboneSpec:
    """An open_clip CLIP: its architecture and where its pretrained weights live.

    ``architecture`` names one of open_clip's built-in configs; alternatively
    ``config_file`` names an ``open_clip_config.json`` in the same Hub repo.
    """

    name: str
    weights: HubFile
    architecture: str | None = None
    config_file: str | None = None
    quick_gelu: bool = False
    pretrained: str | None = None
    description: str = ""
    licence: str = ""

    def config_hub_file(self) -> HubFile | None:
        if self.config_file is None:
            return None
        return HubFile(self.weights.repo, self.config_file, self.weights.revision)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "weights": self.weights.to_dict(),
            "architecture": self.architecture, "config_file": self.config_file,
            "quick_gelu": self.quick_gelu, "pretrained": self.pretrained,
            "description": self.description, "licence": self.licence,
        }


@dataclass(frozen=True)
class WeightsSpec:
    file: HubFile
    format: WeightsFormat


# What each command needs a model's files for: ``score`` also stands for ``evaluate``,
# ``cull`` and ``bench``.
SCORE, ADAPT, PRETRAIN = "score", "adapt", "pretrain"


@dataclass(frozen=True)
class ModelFile:
    """One Hub file of a model: what it is and which commands need it."""

    file: HubFile
    role: Literal["weights", "backbone", "backbone config"]
    needed_for: tuple[str, ...]

    @property
    def for_scoring(self) -> bool:
        return SCORE in self.needed_for


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    backbone: BackboneSpec
    config: ModelConfig
    preprocess: PreprocessConfig
    weights: WeightsSpec | None
    licence: str
    source: str

    @property
    def self_contained(self) -> bool:
        """Whether the weights file holds every tensor, so that scoring needs no pretrained
        backbone: the authors' checkpoints do (their converter requires every key)."""
        return self.weights is not None and self.weights.format == "authors-pt"

    def files(self) -> list[ModelFile]:
        """Every Hub file of the model, with the commands that need it. The pristine
        backbone is needed to score only where the weights do not hold every tensor;
        ``adapt`` (its teacher) and ``pretrain`` (fresh prompts) always need it."""
        out = []
        if self.weights is not None:
            out.append(ModelFile(self.weights.file, "weights", (SCORE, ADAPT)))
        if self.config.kind == "zeroshot":
            uses: tuple[str, ...] = (SCORE,)
        else:
            uses = (ADAPT, PRETRAIN) if self.self_contained else (SCORE, ADAPT, PRETRAIN)
        out.append(ModelFile(self.backbone.weights, "backbone", uses))
        config_file = self.backbone.config_hub_file()
        if config_file is not None:
            out.append(ModelFile(config_file, "backbone config",
                                 tuple(dict.fromkeys((SCORE, *uses)))))
        return out

    def scoring_files(self) -> list[HubFile]:
        """What ``load_model`` reads from the Hub."""
        return [f.file for f in self.files() if f.for_scoring]

    def hub_files(self) -> list[HubFile]:
        return [f.file for f in self.files()]


@dataclass(frozen=True)
class Manifest:
    default: str
    models: dict[str, ModelEntry]
    path: str

    def get(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ManifestError(f"unknown model {name!r}; known models: {known}") from None


def _take(data: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...],
          *, required: bool = True, default: Any = None) -> Any:
    if key not in data:
        if required:
            raise ManifestError(f"{where}: missing required key {key!r}")
        return default
    value = data[key]
    if value is None and not required:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ManifestError(f"{where}.{key}: expected {names}, got {json.dumps(value)}")
    return value


def _check_keys(data: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    return data


def parse_hub_file(data: Any, where: str, *, extra: set[str] = frozenset()) -> HubFile:
    data = _check_keys(data, {"repo", "filename", "revision", "sha256", "size"} | extra, where)
    repo = _take(data, "repo", where, str)
    if not _REPO.match(repo):
        raise ManifestError(f"{where}.repo: {repo!r} is not a Hub repo id like 'org/name'")
    filename = _take(data, "filename", where, str)
    if not filename or filename.startswith("/") or ".." in filename.split("/"):
        raise ManifestError(f"{where}.filename: {filename!r} is not a relative file name")
    revision = _take(data, "revision", where, str, required=False)
    if revision is not None and not _COMMIT.match(revision):
        raise ManifestError(
            f"{where}.revision: {revision!r} must be a full 40-character commit hash "
            "(branches and tags move; use null when no commit is known)"
        )
    sha256 = _take(data, "sha256", where, str, required=False)
    if sha256 is not None and not _SHA256.match(sha256):
        raise ManifestError(f"{where}.sha256: {sha256!r} is not 64 lowercase hex digits")
    size = _take(data, "size", where, int, required=False)
    if size is not None and size <= 0:
        raise ManifestError(f"{where}.size: {size} is not a size in bytes")
    return HubFile(repo, filename, revision, sha256, size)


def parse_backbone(name: str, data: Any, where: str) -> BackboneSpec:
    allowed = {"weights", "architecture", "config_file", "quick_gelu", "pretrained",
               "description", "licence", "name"}
    data = _check_keys(data, allowed, where)
    weights = parse_hub_file(_take(data, "weights", where, dict), f"{where}.weights")
    architecture = _take(data, "architecture", where, str, required=False)
    config_file = _take(data, "config_file", where, str, required=False)
    if (architecture is None) == (config_file is None):
        raise ManifestError(f"{where}: give exactly one of 'architecture' or 'config_file'")
    return BackboneSpec(
        name=_take(data, "name", where, str, required=False, default=name),
        weights=weights,
        architecture=architecture,
        config_file=config_file,
        quick_gelu=_take(data, "quick_gelu", where, bool, required=False, default=False),
        pretrained=_take(data, "pretrained", where, str, required=False),
        description=_take(data, "description", where, str, required=False, default=""),
        licence=_take(data, "licence", where, str, required=False, default=""),
    )


def _parse_entry(name: str, data: Any, backbones: dict[str, BackboneSpec]) -> ModelEntry:
    where = f"models.{name}"
    allowed = {"description", "backbone", "config", "preprocess", "weights", "licence", "source"}
    data = _check_keys(data, allowed, where)
    backbone_name = _take(data, "backbone", where, str)
    if backbone_name not in backbones:
        raise ManifestError(f"{where}.backbone: no backbone named {backbone_name!r}")
    config = ModelConfig.from_dict(_take(data, "config", where, dict), f"{where}.config")
    preprocess = PreprocessConfig.from_dict(
        _take(data, "preprocess", where, dict), f"{where}.preprocess"
    )
    weights_data = _take(data, "weights", where, dict, required=False)
    weights = None
    if weights_data is not None:
        hub_file = parse_hub_file(weights_data, f"{where}.weights", extra={"format"})
        fmt = _take(weights_data, "format", f"{where}.weights", str)
        if fmt not in WEIGHTS_FORMATS:
            raise ManifestError(
                f"{where}.weights.format: {fmt!r} is not one of {', '.join(WEIGHTS_FORMATS)}"
            )
        weights = WeightsSpec(hub_file, fmt)
    if config.kind == "grmp" and weights is None:
        raise ManifestError(f"{where}: a 'grmp' model needs a 'weights' file")
    if config.kind == "zeroshot" and weights is not None:
        raise ManifestError(f"{where}: a 'zeroshot' model has no learned weights")
    return ModelEntry(
        name=name,
        description=_take(data, "description", where, str),
        backbone=backbones[backbone_name],
        config=config,
        preprocess=preprocess,
        weights=weights,
        licence=_take(data, "licence", where, str),
        source=_take(data, "source", where, str),
    )


def parse_manifest(data: Any, path: str) -> Manifest:
    data = _check_keys(data, {"schema_version", "default", "backbones", "models", "$comment"},
                       "manifest")
    version = _take(data, "schema_version", "manifest", int)
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"manifest schema_version {version} is not supported (this grmpiqa reads "
            f"{SCHEMA_VERSION}); upgrade grmpiqa"
        )
    backbones = {}
    for name, entry in _take(data, "backbones", "manifest", dict).items():
        backbones[name] = parse_backbone(name, entry, f"backbones.{name}")
    models = {}
    for name, entry in _take(data, "models", "manifest", dict).items():
        if not _NAME.match(name):
            raise ManifestError(f"models: {name!r} is not a valid model name "
                                "(lowercase letters, digits, '.', '_' and '-')")
        models[name] = _parse_entry(name, entry, backbones)
    if not models:
        raise ManifestError("manifest: no models")
    default = _take(data, "default", "manifest", str)
    if default not in models:
        raise ManifestError(f"manifest.default: {default!r} is not one of the models")
    return Manifest(default=default, models=models, path=path)


def looks_like_path(name: str) -> bool:
    """A weights file rather than a model name."""
    return os.path.sep in name or name.endswith((".safetensors", ".pt", ".pth", ".bin")) \
        or os.path.exists(name)


def manifest_path() -> Path:
    """The manifest in use: ``$GRMPIQA_MANIFEST``, the one in the wheel, or the source tree's."""
    override = manifest_override()
    if override is not None:
        return override
    packaged = resources.files("grmpiqa").joinpath("weights_manifest.json")
    if packaged.is_file():
        return Path(str(packaged))
    # Editable installs and source checkouts keep the manifest at the repository root.
    return Path(__file__).resolve().parents[2] / "weights_manifest.json"


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    path = Path(path) if path is not None else manifest_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read weights manifest {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    try:
        return parse_manifest(data, str(path))
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None
