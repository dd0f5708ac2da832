"""grmpiqa's own weights files: safetensors with a JSON metadata header.

A file holds only what differs from the pretrained backbone (prompts, text
context, fine-tuned blocks) and says which backbone, model config,
preprocessing and label scale it belongs to, so ``score --weights FILE``
needs nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grmpiqa.config import LabelScale, ModelConfig, PreprocessConfig
from grmpiqa.errors import ManifestError, WeightsError, first_line
from grmpiqa.io.atomic import atomic_write
from grmpiqa.weights.manifest import BackboneSpec, parse_backbone

FORMAT_NAME = "grmpiqa-weights"
FORMAT_VERSION = 1
METADATA_KEY = "grmpiqa"


@dataclass(frozen=True)
class WeightsMetadata:
    backbone: BackboneSpec
    config: ModelConfig
    preprocess: PreprocessConfig
    label: LabelScale | None = None
    training: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_json(self) -> str:
        from grmpiqa import __version__

        return json.dumps({
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "grmpiqa_version": __version__,
            "backbone": self.backbone.to_dict(),
            "config": self.config.to_dict(),
            "preprocess": self.preprocess.to_dict(),
            "label": self.label.to_dict() if self.label else None,
            "training": self.training,
            "source": self.source,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> WeightsMetadata:
        try:
            data = json.loads(text)
        except ValueError:
            raise WeightsError(f"{where}: the grmpiqa metadata header is not valid JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise WeightsError(f"{where}: not a grmpiqa weights file (no '{FORMAT_NAME}' header)")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise WeightsError(
                f"{where}: weights format version {version!r} is not supported by this grmpiqa "
                f"(reads version {FORMAT_VERSION})"
            )
        try:
            backbone_data = data["backbone"]
            name = backbone_data.get("name", "backbone") if isinstance(backbone_data, dict) else ""
            label = data.get("label")
            training = data.get("training") or {}
            if not isinstance(training, dict):
                raise ManifestError("training: expected an object")
            return cls(
                backbone=parse_backbone(name, backbone_data, "backbone"),
                config=ModelConfig.from_dict(data["config"]),
                preprocess=PreprocessConfig.from_dict(data["preprocess"]),
                label=LabelScale.from_dict(label) if label is not None else None,
                training=training,
                source=str(data.get("source", "")),
            )
        except KeyError as exc:
            raise WeightsError(f"{where}: metadata header lacks {exc.args[0]!r}") from None
        except ManifestError as exc:
            raise WeightsError(f"{where}: bad metadata header: {exc}") from None


def save_weights(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor],
                 metadata: WeightsMetadata) -> Path:
    """Write ``tensors`` and ``metadata`` atomically (temporary file + rename)."""
    from safetensors.torch import save

    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    blob = save(clean, metadata={METADATA_KEY: metadata.to_json()})
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "wb") as handle:
        handle.write(blob)
    return target


def read_metadata(path: str | os.PathLike[str]) -> WeightsMetadata:
    """Only the header: cheap, for listing and for building the right backbone first."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except Exception as exc:
        raise WeightsError(
            f"{path}: not a readable safetensors file ({first_line(exc)})"
        ) from None
    if METADATA_KEY not in header:
        raise WeightsError(f"{path}: not a grmpiqa weights file (no '{METADATA_KEY}' metadata)")
    return WeightsMetadata.from_json(header[METADATA_KEY], str(path))


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMetadata]:
    from safetensors.torch import load_file

    metadata = read_metadata(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise WeightsError(f"{path}: tensors cannot be read ({first_line(exc)})") from None
    return tensors, metadata


def apply_weights(model: Any, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Load a weights file into a freshly built model, all or nothing.

    Every learned GRMP parameter must be present; backbone overrides must name
    existing backbone tensors; every shape must match. Nothing is copied until
    everything has been checked.
    """
    expected = model.state_dict()
    for key in model.learned_state():
        if key not in tensors:
            raise WeightsError(f"{where}: missing tensor {key!r}")
    for key, value in tensors.items():
        if key not in expected:
            raise WeightsError(f"{where}: unexpected tensor {key!r} (not part of this model)")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise WeightsError(
                f"{where}: tensor {key!r} has shape {tuple(value.shape)}, the model needs "
                f"{tuple(expected[key].shape)}"
            )
        if not torch.isfinite(value).all():
            raise WeightsError(f"{where}: tensor {key!r} holds NaN or infinite values")
    model.load_state_dict(tensors, strict=False)


def differing_state(state: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
    """What a weights file must hold: every GRMP tensor, plus ``clip.*`` tensors that differ
    from the pretrained backbone's ``base`` state (keys without the ``clip.`` prefix)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("clip."):
            original = base.get(key[len("clip."):])
            if original is not None and torch.equal(value.cpu(), original.to(value.dtype).cpu()):
                continue
        out[key] = value
    return out
