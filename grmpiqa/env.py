"""Every environment variable grmpiqa reads, in one module.

Each is read when asked for, not at import, so a long-lived process (and a
test) sees the value of the moment. Hugging Face's own variables
(``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``) are read by
huggingface_hub itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from grmpiqa.errors import ConfigError

DEBUG = "GRMPIQA_DEBUG"  # tracebacks and debug logs (the CLI's --debug sets it)
CACHE = "GRMPIQA_CACHE"  # grmpiqa's own cache folder
CATALOGUE = "GRMPIQA_CATALOGUE"  # the score catalogue file (a shared library disk)
MANIFEST = "GRMPIQA_MANIFEST"  # another weights manifest
PARQUET_PART_ROWS = "GRMPIQA_PARQUET_PART_ROWS"  # rows per Parquet part file
_FALSE = ("", "0", "false", "no", "off")


def debug() -> bool:
    return os.environ.get(DEBUG, "").strip().lower() not in _FALSE


def set_debug() -> None:
    """Turn debugging on for this process and the workers it starts."""
    os.environ[DEBUG] = "1"


def cache_dir() -> Path:
    """grmpiqa's own cache (converted checkpoints, digests): ``$GRMPIQA_CACHE``, else
    ``$XDG_CACHE_HOME/grmpiqa``, else ``~/.cache/grmpiqa``."""
    override = os.environ.get(CACHE)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "grmpiqa"


def catalogue_path() -> Path:
    """The score catalogue file: ``$GRMPIQA_CATALOGUE``, else ``catalogue.sqlite`` in
    :func:`cache_dir`."""
    override = os.environ.get(CATALOGUE)
    return Path(override) if override else cache_dir() / "catalogue.sqlite"


def manifest_override() -> Path | None:
    value = os.environ.get(MANIFEST)
    return Path(value) if value else None


def parquet_part_rows() -> int | None:
    """Rows per Parquet part file when set (a whole number >= 1), else None."""
    value = os.environ.get(PARQUET_PART_ROWS, "").strip()
    if not value:
        return None
    try:
        return max(1, int(value))
    except ValueError:
        raise ConfigError(f"{PARQUET_PART_ROWS}={value!r}: expected a whole number") from None


@dataclass(frozen=True)
class LaunchedRank:
    """What torchrun (or any env:// launcher) told this process."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def launched_rank() -> LaunchedRank | None:
    """The rank a launcher gave this process, when it started more than one."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1 or "RANK" not in os.environ:
            return None
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        return None
    return LaunchedRank(rank, world, local_rank, local_world)
