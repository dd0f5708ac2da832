"""Files from the Hugging Face Hub: pinned, checksummed, cached the Hub's way.

All downloads go through ``huggingface_hub.hf_hub_download`` so that
``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` behave
exactly as in every other Hub-aware tool. A file already in the cache is used
without asking the Hub (``refresh`` asks it for a newer commit of an unpinned
file). Before a download the Hub is asked once, without retries, for the
file's metadata, so an unreachable Hub is reported at once instead of after
huggingface_hub's back-off (half a minute).
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
from grmpiqa.errors import WeightsError, WeightsUnavailable, describe, first_line, format_size
from grmpiqa.io.atomic import atomic_write
from grmpiqa.weights.manifest import HubFile

log = logging.getLogger("grmpiqa")


def cached_path(file: HubFile, hf_cache: str | os.PathLike[str] | None = None) -> Path | None:
    """The file's path in the local Hub cache, or None, without touching the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        file.repo, file.filename, cache_dir=hf_cache, revision=file.revision
    )
    return Path(found) if isinstance(found, str) else None


def hub_cache_folder(hf_cache: str | os.PathLike[str] | None = None) -> str:
    from huggingface_hub import constants

    return os.fspath(hf_cache) if hf_cache is not None else constants.HF_HUB_CACHE


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub read it (at its import)."""
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def probe(file: HubFile, hf_cache: str | os.PathLike[str] | None = None,
          timeout: float | None = None) -> int | None:
    """Ask the Hub, once and without retries, for ``file``'s size (None if it does not say).

    Raises :class:`WeightsUnavailable` when offline or when the Hub cannot be reached (or
    answers as if down), :class:`WeightsError` when it says the file does not exist.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub import errors as hf_errors

    def unavailable(reason: str) -> WeightsUnavailable:
        return WeightsUnavailable([(file.label, file.size)], reason, hub_cache_folder(hf_cache),
                                  offline=offline_mode())

    if offline_mode():
        raise unavailable("HF_HUB_OFFLINE is set, so nothing is downloaded")
    endpoint = constants.ENDPOINT
    url = hf_hub_url(file.repo, file.filename, revision=file.revision)
    try:
        meta = get_hf_file_metadata(url, timeout=timeout or constants.HF_HUB_ETAG_TIMEOUT,
                                    library_name="grmpiqa", library_version=__version__)
    except (hf_errors.RepositoryNotFoundError, hf_errors.GatedRepoError):
        raise WeightsError(f"Hub repository {file.repo!r} not found (or private) at "
                           f"{endpoint}") from None
    except hf_errors.RevisionNotFoundError:
        raise WeightsError(f"revision {file.revision} not found in {file.repo}") from None
    except hf_errors.EntryNotFoundError:
        raise WeightsError(f"{file.label} not found on the Hub ({endpoint})") from None
    except hf_errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status is not None and (status >= 500 or status in (408, 429)):
            raise unavailable(f"the Hub ({endpoint}) answered HTTP {status}") from None
        raise WeightsError(f"cannot download {file.label}: {first_line(exc)}") from None
    except Exception as exc:  # httpx, requests and OS errors: no network to the Hub
        raise unavailable(f"the Hub ({endpoint}) cannot be reached ({describe(exc)})") from None
    if meta.commit_hash is None:
        raise unavailable(f"{endpoint} does not answer like a Hugging Face Hub (no "
                          "X-Repo-Commit header: check HF_ENDPOINT and any proxy)")
    return meta.size


def fetch(file: HubFile, hf_cache: str | os.PathLike[str] | None = None, *,
          refresh: bool = False, force: bool = False) -> Path:
    """The file from the local cache, else downloaded, its checksum (and size) verified when
    pinned. ``refresh``: ask the Hub for a newer commit of a cached unpinned file (from the
    cache when the Hub cannot be reached); ``force``: download it again in any case."""
    path = None if force else cached_path(file, hf_cache)
    if path is None:
        size = probe(file, hf_cache)
        if file.revision is None:
            log.warning("downloading %s (%s) without a pinned revision or checksum: what the "
                        "Hub serves today is used as is", file.label,
                        format_size(size) if size else "size unknown")
        path = _download(file, hf_cache, force)
    elif refresh and file.revision is None:
        path = _download(file, hf_cache, False)
    if file.size is not None and (actual_size := path.stat().st_size) != file.size:
        evict(path)
        raise WeightsError(f"{file.label}: {actual_size} bytes, not the {file.size} the "
                           "manifest pins; the file was removed from the cache, run again to "
                           "download it afresh")
    if file.sha256 is not None:
        actual = file_sha256(path)
        if actual != file.sha256:
            evict(path)
            raise WeightsError(
                f"{file.label}: sha256 mismatch (expected {file.sha256}, got {actual}); the "
                "file was removed from the cache, run again to download it afresh"
            )
    return path


def _download(file: HubFile, hf_cache: str | os.PathLike[str] | None, force: bool) -> Path:
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(
            repo_id=file.repo, filename=file.filename, revision=file.revision,
            cache_dir=hf_cache, force_download=force, library_name="grmpiqa",
            library_version=__version__,
        ))
    except hf_errors.LocalEntryNotFoundError as exc:
        cause = exc.__cause__ or exc
        raise WeightsUnavailable([(file.label, file.size)], f"the download failed "
                                 f"({describe(cause)})", hub_cache_folder(hf_cache)) from None
    except hf_errors.RepositoryNotFoundError:
        raise WeightsError(f"Hub repository {file.repo!r} not found (or private)") from None
    except hf_errors.RevisionNotFoundError:
        raise WeightsError(f"revision {file.revision} not found in {file.repo}") from None
    except hf_errors.EntryNotFoundError:
        raise WeightsError(f"{file.label} not found on the Hub") from None
    except (hf_errors.HfHubHTTPError, OSError) as exc:
        raise WeightsError(f"cannot download {file.label}: {first_line(exc)}") from None
    except Exception as exc:  # a connection that dropped for good mid-download
        raise WeightsError(f"cannot download {file.label}: {describe(exc)}") from None


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
