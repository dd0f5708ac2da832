"""Which model scored a row: everything that changes a score, as one short key.

A score depends on the weights (their files' sha256), the model config and
preprocessing, the precision, the decoding (exact or ``fast_decode``) and
grmpiqa's own scoring code (:data:`SCORING_VERSION`). Output rows carry the
key in their ``model`` column, so ``resume`` never merges rows of two models
and a stored score is never served for another model. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

# Raise whenever a change to grmpiqa makes the same weights give other scores.
SCORING_VERSION = 1
DECODINGS = ("exact", "fast")


def digest_of(value: Any) -> str:
    """sha256 of a JSON-able value, keys sorted (the same value always gives the same digest)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ModelIdentity:
    """``weights``: the sha256 of each weights file the model reads, in order;
    ``settings``: the digest of its config, preprocessing and backbone description."""

    name: str
    precision: str
    decoding: str
    weights: tuple[str, ...]
    settings: str
    version: int = SCORING_VERSION

    def __post_init__(self) -> None:
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}")

    @property
    def digest(self) -> str:
        return digest_of(asdict(self))

    @property
    def key(self) -> str:
        """``NAME:PRECISION:DECODING:DIGEST12``, e.g. ``grmp-clive50:fp32:exact:3f2a9c1e7b0d``."""
        return f"{self.name}:{self.precision}:{self.decoding}:{self.digest[:12]}"


@dataclass(frozen=True)
class KeyParts:
    name: str
    precision: str
    decoding: str
    digest: str


def parse_key(key: str) -> KeyParts | None:
    """The parts of a :attr:`ModelIdentity.key` (names may hold ``:``), None if it is not one."""
    parts = key.rsplit(":", 3)
    if len(parts) != 4 or not all(parts) or parts[2] not in DECODINGS:
        return None
    return KeyParts(*parts)


def difference(stored: str, current: ModelIdentity) -> str:
    """What differs between the model behind a stored key and ``current``, in words:
    ``precision fp32, this run bf16``."""
    old = parse_key(stored)
    if old is None:
        return f"{stored!r} is not a grmpiqa model key"
    said = [f"{what} {then}, this run {now}" for what, then, now in (
        ("model", old.name, current.name), ("precision", old.precision, current.precision),
        ("decoding", old.decoding, current.decoding)) if then != now]
    return "; ".join(said) or ("the same name and settings, but other weights, model config, "
                               "preprocessing or grmpiqa scoring version")
