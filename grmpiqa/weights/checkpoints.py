"""Resumable training checkpoints: safetensors plus a JSON header, never a pickle.

A checkpoint holds the trainable tensors now and at the best evaluation,
the random-number streams, the training state and a fingerprint of
everything the run depends on (labels, starting weights, options), so that
``--resume`` refuses to continue a different run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from grmpiqa.errors import ConfigError, WeightsError
from grmpiqa.io.atomic import atomic_write

CHECKPOINT_KEY = "grmpiqa-checkpoint"
CHECKPOINT_VERSION = 1


def checkpoint_path_for(out: str | os.PathLike[str]) -> Path:
    """``mine.safetensors`` -> ``mine.checkpoint.safetensors`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.checkpoint.safetensors")


def fingerprint(parts: dict[str, Any]) -> str:
    """A stable digest of JSON-able run settings."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def save_checkpoint(path: str | os.PathLike[str], *, current: dict[str, torch.Tensor],
                    best: dict[str, torch.Tensor], rng: tuple[torch.Tensor, torch.Tensor],
                    info: dict[str, Any]) -> None:
    """Write atomically. Taken between epochs, when no activations are alive, so the
    serialised copy (about 330 MB for ViT-B/16) stays below the training peak."""
    from safetensors.torch import save

    tensors = {f"current/{k}": v for k, v in current.items()}
    tensors.update({f"best/{k}": v for k, v in best.items()})
    tensors["rng/torch"], tensors["rng/generator"] = rng
    header = json.dumps({"format_version": CHECKPOINT_VERSION, **info}, sort_keys=True)
    blob = save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
                metadata={CHECKPOINT_KEY: header})
    with atomic_write(path, "wb") as handle:
        handle.write(blob)


def load_checkpoint(path: str | os.PathLike[str], expected_fingerprint: str
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor],
                               tuple[torch.Tensor, torch.Tensor], dict[str, Any]]:
    """(current, best, rng, info); refuses a checkpoint of another run."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise ConfigError(f"finds no checkpoint at {path} (it is written at each "
                          "evaluation and removed once training has finished)", param="resume")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = (handle.metadata() or {}).get(CHECKPOINT_KEY)
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable checkpoint ({exc})") from None
    if header is None:
        raise WeightsError(f"{path}: not a grmpiqa training checkpoint")
    info = json.loads(header)
    if info.get("format_version") != CHECKPOINT_VERSION:
        raise WeightsError(f"{path}: checkpoint version {info.get('format_version')!r} is not "
                           f"supported (reads {CHECKPOINT_VERSION})")
    if info.get("fingerprint") != expected_fingerprint:
        saved = info.get("settings", {})
        raise ConfigError(f"{path}: the checkpoint belongs to another run (different labels, "
                          f"starting weights or options); it was made with {saved}",
                          param="resume")
    current = {k[len("current/"):]: v for k, v in tensors.items() if k.startswith("current/")}
    best = {k[len("best/"):]: v for k, v in tensors.items() if k.startswith("best/")}
    return current, best, (tensors["rng/torch"], tensors["rng/generator"]), info
