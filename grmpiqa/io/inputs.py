"""Turn command-line arguments (files, folders, globs, stdin lists) into a file list.

Discovery never fails and never drops anything silently: a path that does not
exist, a folder that cannot be read and a pattern that matches nothing are
passed on so that each gets its own row with an error, exactly like an
unreadable photo (``problems`` maps such entries to their message).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import IO

from grmpiqa.errors import InputError
from grmpiqa.io.extensions import extension_of

PILLOW_EXTENSIONS = ("jpg", "jpeg", "jpe", "jfif", "png", "webp", "bmp", "tif", "tiff", "gif")
HEIF_EXTENSIONS = ("heic", "heif", "hif")
RAW_EXTENSIONS = ("cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "dng", "orf", "rw2",
                  "raf", "pef", "srw", "3fr", "iiq", "erf", "kdc", "mos", "mrw", "x3f", "rwl")
# pip extra -> (the extensions it adds, the module it installs). Modules are looked up, never
# imported here, so ``grmpiqa --help`` stays fast.
EXTRAS = {"heif": (HEIF_EXTENSIONS, "pillow_heif"), "raw": (RAW_EXTENSIONS, "rawpy")}
_FOUND: dict[str, bool] = {}


def extra_installed(extra: str) -> bool:
    """Whether the extra's module can be imported (``sys.modules[name] = None`` hides it)."""
    module = EXTRAS[extra][1]
    if module in sys.modules:
        return sys.modules[module] is not None
    if module not in _FOUND:
        _FOUND[module] = importlib.util.find_spec(module) is not None
    return _FOUND[module]


def missing_extra_for(name: str) -> str | None:
    """The pip extra a file of this name needs and that is not installed, if any."""
    ext = extension_of(name)
    for extra, (extensions, _) in EXTRAS.items():
        if ext in extensions and not extra_installed(extra):
            return extra
    return None


def _default_extensions() -> tuple[str, ...]:
    found = list(PILLOW_EXTENSIONS)
    for extra, (extensions, _) in EXTRAS.items():
        if extra_installed(extra):
            found.extend(extensions)
    return tuple(found)


# What folders yield: Pillow's formats, plus HEIF and camera RAW when their extras are installed.
DEFAULT_EXTENSIONS = _default_extensions()


def normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    """'JPG', '.jpg' and 'jpg' all mean the same; comma lists are split."""
    out: list[str] = []
    for item in extensions:
        for part in str(item).split(","):
            part = part.strip().lower().lstrip(".")
            if part and part not in out:
                out.append(part)
    return tuple(out)


def _has_extension(name: str, extensions: tuple[str, ...]) -> bool:
    return extension_of(name) in extensions


def _folder_error(exc: OSError) -> str:
    return f"cannot read folder ({exc.strerror or exc})"


def walk_folder(folder: str, extensions: tuple[str, ...], recursive: bool,
                skipped: Counter[str] | None = None,
                problems: dict[str, str] | None = None) -> Iterator[str]:
    """Image files under ``folder`` in sorted order, hidden files and folders skipped.

    Symbolic links to folders are followed, but each real folder is visited
    once, so a link loop cannot make the walk endless. ``skipped`` counts, by
    missing extra, the photos passed over because that extra is not installed.
    A folder that cannot be read (permissions, a path over PATH_MAX) is
    yielded itself, with its message in ``problems``.
    """
    seen: set[tuple[int, int]] = set()

    def visit(current: str) -> Iterator[str]:
        try:
            st = os.stat(current)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                return
            seen.add(key)
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if problems is not None:
                problems[current] = _folder_error(exc)
                yield current
            return
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows links; False for broken links and loops
            except OSError:
                is_dir = False
            if is_dir:
                subfolders.append(entry.path)
            elif _has_extension(entry.name, extensions):
                yield entry.path
            elif skipped is not None and (extra := missing_extra_for(entry.name)):
                skipped[extra] += 1
        if recursive:
            for sub in subfolders:
                yield from visit(sub)

    yield from visit(folder)


def case_insensitive_extension(pattern: str) -> str:
    """``shoot/**/*.jpg`` -> ``shoot/**/*.[jJ][pP][gG]``: cameras write ``IMG_0001.JPG``."""
    head, sep, last = pattern.rpartition("/")
    stem, dot, ext = last.rpartition(".")
    if not dot or not ext.isalnum() or not ext.isascii():
        return pattern
    ext = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ext)
    return f"{head}{sep}{stem}.{ext}"


def _expand_glob(pattern: str, exts: tuple[str, ...], recursive: bool,
                 skipped: Counter[str] | None, problems: dict[str, str] | None
                 ) -> Iterator[str]:
    matches = sorted(set(glob.glob(case_insensitive_extension(pattern), recursive=True)))
    kept = 0
    extra_needed = Counter[str]()
    for match in matches:
        if os.path.isdir(match):
            kept += 1
            yield from walk_folder(match, exts, recursive, skipped, problems)
        elif _has_extension(match, exts) or match.lower().endswith(".tar"):
            kept += 1
            yield match  # a tar is a WebDataset shard (grmpiqa.io.shards), one entry here
        elif extra := missing_extra_for(match):
            extra_needed[extra] += 1
    if skipped is not None:
        skipped.update(extra_needed)
    if not kept and not extra_needed:
        if problems is not None:
            problems[pattern] = (f"no image file matches {pattern}" if matches
                                 else f"no file matches {pattern}")
        yield pattern


def expand_inputs(args: Sequence[str], *, extensions: Sequence[str] = DEFAULT_EXTENSIONS,
                  recursive: bool = True, stdin_paths: Sequence[str] = (),
                  skipped: Counter[str] | None = None,
                  problems: dict[str, str] | None = None) -> list[str]:
    """Files for ``args`` in a deterministic order, each file once.

    Folders expand to their sorted image files; globs (``*``, ``?``, ``[``,
    and ``**`` for any depth; the extension matched in any case) expand to
    sorted matches (images, and ``.tar`` shards as one entry each); anything
    else, even a file with another extension, is taken as named. ``-`` stands
    for ``stdin_paths``, a list of files taken literally, like ``xargs`` would
    (a folder there gets an error row instead of being searched). ``skipped``:
    see :func:`walk_folder`. ``problems`` collects the entries known to fail
    already (an unreadable folder, a pattern that matches nothing) with their
    message; they stay in the list, where their row belongs.
    """
    exts = normalise_extensions(extensions)
    files: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        if path not in seen:
            seen.add(path)
            files.append(path)

    for arg in args:
        if arg == "-":
            found: Iterable[str] = stdin_paths
        elif os.path.isdir(arg):
            found = walk_folder(arg, exts, recursive, skipped, problems)
        elif not os.path.lexists(arg) and glob.has_magic(arg):
            found = _expand_glob(arg, exts, recursive, skipped, problems)
        else:
            found = (arg,)
        for path in found:
            add(path)
    return files


def read_path_list(stream: IO[bytes], null_separated: bool = False) -> list[str]:
    """Paths from a list on stdin: one per line, or NUL-separated for any file name."""
    data = stream.read()
    if not null_separated and b"\0" in data:
        raise InputError("is needed: the list of paths on stdin holds NUL bytes", param="null")
    separator = b"\0" if null_separated else b"\n"
    paths = []
    for raw in data.split(separator):
        if not null_separated:
            raw = raw.rstrip(b"\r")
        if raw:
            paths.append(os.fsdecode(raw))
    return paths
