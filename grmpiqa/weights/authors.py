"""Import the authors' published checkpoints (docs/method.md, "Model") into grmpiqa's format.

Their files are ``torch.save(state_dict)`` of their ``CustomCLIP``. They are
read only with ``torch.load(weights_only=True)``, every key and shape is
checked before anything is used. A checkpoint holds every tensor of the
model, so it is loaded into the bare backbone architecture: scoring with it
downloads no pretrained CLIP. Zip-format files are memory-mapped, so loading
one costs no second copy of the weights.

Untested against the real files: they cannot be downloaded where this was
built. The layout comes from the authors' code and is tested on a synthetic
state dict laid out the same way.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import torch

from grmpiqa.errors import WeightsError, first_line

# Buffers of their PromptLearner: fixed token embeddings we rebuild from the backbone.
IGNORED_KEYS = ("prompt_learner2.token_prefix", "prompt_learner2.token_suffix")
_TEXT_TOWER_PREFIXES = ("transformer.", "token_embedding.", "positional_embedding",
                        "ln_final.", "text_projection")


def _pickle_reason(exc: BaseException) -> str:
    """What torch's refusal names (``unsupported GLOBAL posix.system``), without its advice to
    load with ``weights_only=False``: that would run the code the file carries."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and "weights_only" not in line and "documentation" not in line:
            return line.rstrip(".")
    return "an unsafe pickle"


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pt`` file, with pickle restricted to plain tensors and containers."""
    try:
        mmap = zipfile.is_zipfile(path)  # torch.save's format since 1.6; older files are read
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path}: refused, it holds more than plain tensors ({_pickle_reason(exc)})"
        ) from None
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({first_line(exc)})"
                           ) from None
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise WeightsError(f"{path}: expected a state dict, found a {type(data).__name__}")
    state: dict[str, torch.Tensor] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path}: entry {key!r} is not a named tensor")
        name = key[len("module."):] if key.startswith("module.") else key
        state[name] = value
    return state


def authors_key(our_key: str) -> str:
    """Where one of our state-dict keys lives in the authors' checkpoint."""
    if our_key == "text_context.ctx":
        return "prompt_learner2.ctx"
    if our_key.startswith("visual_prompts."):
        return "image_encoder." + our_key[len("visual_prompts."):]
    if our_key.startswith("clip.visual."):
        return "image_encoder." + our_key[len("clip.visual."):]
    if our_key == "clip.logit_scale":
        return "logit_scale"
    if our_key.startswith("clip."):
        rest = our_key[len("clip."):]
        if rest.startswith(_TEXT_TOWER_PREFIXES):
            return "text_encoder." + rest
    raise KeyError(our_key)


def convert_state(state: Mapping[str, torch.Tensor], model: Any, where: str
                  ) -> dict[str, torch.Tensor]:
    """Map the authors' keys onto ``model``'s, checking every key and shape first."""
    expected = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for our_key, target in expected.items():
        try:
            theirs = authors_key(our_key)
        except KeyError:
            raise WeightsError(f"{where}: no authors' key maps to {our_key!r}") from None
        if theirs not in state:
            raise WeightsError(f"{where}: missing key {theirs!r} (authors' layout)")
        value = state[theirs]
        if tuple(value.shape) != tuple(target.shape):
            raise WeightsError(
                f"{where}: key {theirs!r} has shape {tuple(value.shape)}, expected "
                f"{tuple(target.shape)}"
            )
        if not torch.isfinite(value).all():
            raise WeightsError(f"{where}: key {theirs!r} holds NaN or infinite values")
        converted[our_key] = value.to(target.dtype)
        used.add(theirs)
    extra = sorted(set(state) - used - set(IGNORED_KEYS))
    if extra:
        shown = ", ".join(repr(k) for k in extra[:3]) + (" ..." if len(extra) > 3 else "")
        raise WeightsError(f"{where}: unexpected key(s) {shown}; not the authors' layout")
    return converted
