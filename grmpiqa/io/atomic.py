"""Write files so that a crash never leaves a half-written file in their place."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def partial_path(output: str | os.PathLike[str]) -> Path:
    """``FILE.part``: where a streamed output grows until it is complete (``--resume``
    reads it back)."""
    target = Path(output)
    return target.with_name(target.name + ".part")


def file_mode_for(path: str | os.PathLike[str]) -> int:
    """The permissions a rewritten file should have: its own if it exists, else what the
    umask gives a new file (0o666 less the umask), not a temporary file's 0o600."""
    with contextlib.suppress(OSError):
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return st.st_mode & 0o7777
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _take_identity(fd: int, target: Path, owner: str) -> None:
    """Give the temporary file the owner (and extended attributes) of the file it replaces.
    ``owner``: "new" leaves the writer's, "if-root" keeps the old one when running as root
    (the only case where it can differ), "keep" keeps it or raises OSError."""
    if owner == "new" or not hasattr(os, "fchown"):  # Windows has no owners to keep
        return
    try:
        st = os.stat(target)
    except OSError:
        return
    if owner == "if-root" and os.geteuid() != 0:
        return
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except OSError as exc:
            if owner == "keep":
                raise OSError(exc.errno, f"cannot keep its owner {st.st_uid}:{st.st_gid}"
                              ) from None
    for name in _xattrs(target):  # Finder tags, ACLs ...: kept where the system lets us
        with contextlib.suppress(OSError):
            os.setxattr(fd, name, os.getxattr(target, name))


def _xattrs(target: Path) -> list[str]:
    if not hasattr(os, "listxattr"):
        return []
    try:
        return os.listxattr(target)
    except OSError:
        return []


def write_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why no file can be written in ``folder`` (the system's reason), or None.

    A probe file is made there, given a byte and removed: permission bits do not show a
    read-only or full file system, nor /proc, where even root can make no file.
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=".grmpiqa-probe.", suffix=".tmp", dir=folder)
    except FileNotFoundError:
        # the folder exists (the caller made it) but files cannot be created in it
        return "no file can be created there" if os.path.isdir(folder) \
            else "No such file or directory"
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        os.write(fd, b"\0")
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *,
                 owner: str = "new") -> Iterator[IO]:
    """Yield a temporary file beside ``path``; rename it over ``path`` only on success.

    The temporary file lives in the same folder so the final ``os.replace``
    is atomic on POSIX and Windows alike. It gets the old file's permissions;
    ``owner`` (see :func:`_take_identity`) says whether it gets its owner too.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        _take_identity(fd, target, owner)
    except OSError:
        os.close(fd)
        os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        os.fchmod(fd, file_mode_for(target))
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

