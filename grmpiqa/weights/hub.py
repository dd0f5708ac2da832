"""Files from the Hugging Face Hub: pinned, checksummed, cached the Hub's way.

All downloads go through ``huggingface_hub.hf_hub_download`` so that
``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` behave
exactly as in every other Hub-aware tool, and a file already in the cache is
used offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from grmpiqa import __version__
from grmpiqa.env import cache_dir
from grmpiqa.errors import WeightsError, first_line
from grmpiqa.io.atomic import atomic_write
from grmpiqa.weights.manifest import HubFile

log = logging.getLogger("grmpiqa")
_warned_unpinned: set[tuple[str, str]] = set()


def cached_path(file: HubFile, hf_cache: str | os.PathLike[str] | None = None) -> Path | None:
    """The file's path in the local Hub cache, or None, without touching the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        file.repo, file.filename, cache_dir=hf_cache, revision=file.revision
    )
    return Path(found) if isinstance(found, str) else None


def fetch(file: HubFile, hf_cache: str | os.PathLike[str] | None = None) -> Path:
    """Download (or find in the cache) one file and verify its checksum when one is pinned."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    # said after the download, so an offline run hears only why nothing could be downloaded
    unpinned_download = file.revision is None and cached_path(file, hf_cache) is None
    try:
        path = hf_hub_download(
            repo_id=file.repo,
            filename=file.filename,
            revision=file.revision,
            cache_dir=hf_cache,
            library_name="grmpiqa",
            library_version=__version__,
        )
    except hf_errors.LocalEntryNotFoundError:
        raise WeightsError(
            f"{file.label} is not in the local Hugging Face cache and cannot be downloaded "
            "(offline: HF_HUB_OFFLINE is set or the Hub is unreachable)"
        ) from None
    except hf_errors.RepositoryNotFoundError:
        raise WeightsError(f"Hub repository {file.repo!r} not found (or private)") from None
    except hf_errors.RevisionNotFoundError:
        raise WeightsError(f"revision {file.revision} not found in {file.repo}") from None
    except hf_errors.EntryNotFoundError:
        raise WeightsError(f"{file.label} not found on the Hub") from None
    except (hf_errors.HfHubHTTPError, OSError) as exc:
        raise WeightsError(f"cannot download {file.label}: {first_line(exc)}") from None
    path = Path(path)
    if unpinned_download and (file.repo, file.filename) not in _warned_unpinned:
        _warned_unpinned.add((file.repo, file.filename))
        log.warning("downloaded %s without a pinned revision or checksum: what the Hub served "
                    "today is used as is", file.label)
    if file.sha256 is not None:
        actual = file_sha256(path)
        if actual != file.sha256:
            evict(path)
            raise WeightsError(
                f"{file.label}: sha256 mismatch (expected {file.sha256}, got {actual}); the "
                "file was removed from the cache, run again to download it afresh"
            )
    return path


@contextlib.contextmanager
def evicted_if_unreadable(path: Path) -> Iterator[Path]:
    """A cached Hub file that fails to load is removed, so it is never reused as if good."""
    try:
        yield path
    except WeightsError as exc:
        evict(path)
        raise WeightsError(f"{exc}; the file was removed from the Hugging Face cache, run "
                           "again to download it afresh") from None


def evict(path: Path) -> None:
    """Remove a bad cached file: the snapshot link and the blob it points to."""
    blob = path.resolve()
    for victim in (path, blob):
        with contextlib.suppress(OSError):
            victim.unlink()


def _digest_cache_file() -> Path:
    return cache_dir() / "sha256.json"


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (size, mtime, inode) so that big weights hash once."""
    real = path.resolve()
    try:
        st = real.stat()
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    memo_file = _digest_cache_file()
    memo: dict[str, list] = {}
    with contextlib.suppress(OSError, ValueError):
        memo = json.loads(memo_file.read_text(encoding="utf-8"))
    hit = memo.get(str(real))
    if isinstance(hit, list) and hit[:3] == stamp and len(hit) == 4:
        return hit[3]
    digest = hashlib.sha256()
    try:
        with open(real, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    value = digest.hexdigest()
    memo[str(real)] = [*stamp, value]
    with contextlib.suppress(OSError):
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(memo_file, "w") as out:
            json.dump(memo, out)
    return value
