"""Cull a shoot: move, copy or link the photos scored below a threshold into another folder.

A *photo* is every file in one folder that shares a name up to the extension:
a RAW+JPEG pair (``IMG_1.CR2``, ``IMG_1.JPG``) and its sidecars (``IMG_1.xmp``,
``IMG_1.CR2.xmp``, ``.pp3``, ``.dop``, ``.aae``) travel together. One member
is scored: the JPEG (or other rendered image) when there is one, else the RAW.

Nothing is ever overwritten: when a name is taken in the destination, the
whole group gets the same suffix (``IMG_1-1.CR2``, ``IMG_1-1.JPG``,
``IMG_1-1.xmp``) so it still belongs together. Moves that cross file systems
copy, then delete the original only after the copy is complete.

Copying or linking again is no clash: a destination file that already is the
same (byte for byte; a link to the same original) is "already there". A group
goes under the first name where each file is already there or free (the free
ones are copied: an interrupted run completes); one that differs (another
photo, a sidecar edited since) takes that name for the whole group. A move
never counts a file as already there: no original is deleted for a copy.
"""

from __future__ import annotations

import errno
import filecmp
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from grmpiqa.errors import ConfigError
from grmpiqa.io.atomic import atomic_write
from grmpiqa.io.extensions import extension_of
from grmpiqa.io.inputs import (
    HEIF_EXTENSIONS,
    PILLOW_EXTENSIONS,
    RAW_EXTENSIONS,
    normalise_extensions,
    walk_folder,
)

MODES = ("move", "copy", "link")
ALREADY_THERE = "already-there"
SIDECAR_EXTENSIONS = ("xmp", "pp3", "dop", "aae")
PHOTO_EXTENSIONS = PILLOW_EXTENSIONS + HEIF_EXTENSIONS + RAW_EXTENSIONS
LOG_COLUMNS = ("action", "source", "destination", "score", "error")
BURST_LOG_COLUMNS = (*LOG_COLUMNS, "reason")


@dataclass(frozen=True)
class PhotoGroup:
    """The files of one photo in one folder; ``photos`` and ``sidecars`` are sorted paths."""

    folder: str
    stem: str
    photos: tuple[str, ...]
    sidecars: tuple[str, ...]

    @property
    def scored(self) -> str:
        """The member scored for the whole group: what Pillow reads (a JPEG), then HEIF,
        then RAW, so a pair needs no extra and no demosaic."""
        def rank(path: str) -> int:
            ext = extension_of(path)
            return 2 if ext in RAW_EXTENSIONS else 1 if ext in HEIF_EXTENSIONS else 0

        return min(self.photos, key=lambda p: (rank(p), p))

    @property
    def files(self) -> tuple[str, ...]:
        return self.photos + self.sidecars


@dataclass(frozen=True)
class CullAction:
    """One row of the plan and of the log. ``action`` is move, copy, link, skip (with
    ``error``: the photo could not be scored, so it stays) or already-there (a copy or
    link run found the same file at ``destination``; nothing is done)."""

    action: str
    source: str
    destination: str
    score: float | None
    error: str | None = None
    reason: str = ""


def _split(name: str) -> tuple[str, str]:
    """(stem, kind) where kind is 'photo', 'sidecar' or ''; ``IMG_1.CR2.xmp`` -> IMG_1."""
    base, _, ext = name.rpartition(".")
    ext = ext.lower()
    if not base:
        return name, ""
    if ext in SIDECAR_EXTENSIONS:
        inner, _, inner_ext = base.rpartition(".")
        return (inner if inner and inner_ext.lower() in PHOTO_EXTENSIONS else base), "sidecar"
    return base, "photo" if ext in PHOTO_EXTENSIONS else ""


def find_groups(src: str, *, recursive: bool = True,
                problems: dict[str, str] | None = None) -> list[PhotoGroup]:
    """Photo groups under ``src`` in walk order (folders sorted, hidden ones skipped);
    ``problems`` gets each folder that could not be read, with the reason."""
    wanted = normalise_extensions(PHOTO_EXTENSIONS + SIDECAR_EXTENSIONS)
    photos: dict[tuple[str, str], list[str]] = {}
    sidecars: dict[tuple[str, str], list[str]] = {}
    for path in walk_folder(src, wanted, recursive, problems=problems):
        if problems is not None and path in problems:
            continue
        folder, name = os.path.split(path)
        stem, kind = _split(name)
        (photos if kind == "photo" else sidecars).setdefault((folder, stem), []).append(path)
    return [PhotoGroup(folder, stem, tuple(sorted(files)),
                       tuple(sorted(sidecars.get((folder, stem), ()))))
            for (folder, stem), files in photos.items()]


def check_destination(src: str, dest: str) -> None:
    """Refuse a destination inside the source: culled photos would be found again."""
    if not os.path.isdir(src):
        raise ConfigError(f"{src}: not a folder")
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise ConfigError(f"{dest}: exists and is not a folder")
    real_src, real_dest = os.path.realpath(src), os.path.realpath(dest)
    if os.path.commonpath([real_src, real_dest]) == real_src:
        raise ConfigError(f"destination {dest} is inside the source folder {src}; "
                          "choose a folder outside it")


def cull_reason(below: float | None, score: float, burst: str | None = None) -> str:
    """Why a photo goes ("" if it stays): below the threshold, not among its burst's best
    (``burst`` says so), or both."""
    low = f"below {below:g}" if below is not None and score < below else ""
    return "; ".join(part for part in (low, burst or "") if part)


def with_defects(reason: str, why: str | None) -> str:
    """A culled photo's reason followed by the defects its explanation names
    (``below 0.3; blur; noise``); ``why`` is ``;``-separated, as in the ``why`` column."""
    return "; ".join([reason, *(why.split(";") if why else ())])


class Planner(ABC):
    """What every cull planner decides the same way: an unscored photo gets a ``skip`` row,
    one that stays gets none, a culled one what :meth:`act` says. ``culled`` counts photos
    (groups), not files."""

    below: float | None
    culled: int

    def reason(self, score: float, burst: str | None = None) -> str:
        """Why a photo is culled ("" if it stays)."""
        return cull_reason(self.below, score, burst)

    def plan(self, group: PhotoGroup, score: float | None, error: str | None = None,
             burst: str | None = None, why: str | None = None) -> list[CullAction]:
        """No rows for a photo that stays; those of :meth:`act` for a culled one, whose
        reason ends with the defects ``why`` names (they explain, never decide)."""
        if score is None:
            return [CullAction("skip", group.scored, "", None, error or "not scored")]
        reason = self.reason(score, burst)
        if not reason:
            return []
        return self.act(group, score, with_defects(reason, why))

    @abstractmethod
    def act(self, group: PhotoGroup, score: float, reason: str) -> list[CullAction]:
        """The rows for a culled photo (and counting it)."""


class CullPlanner(Planner):
    """Decides, photo by photo, what happens and where; remembers names it has handed out."""

    def __init__(self, src: str, dest: str, *, mode: str, below: float | None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        check_destination(src, dest)
        self.src, self.dest, self.mode, self.below = src, dest, mode, below
        self.taken: set[str] = set()
        self.culled = 0  # photos (groups), not files
        self.already_there = 0  # culled photos whose files were all at the destination

    def kept(self, group: PhotoGroup, score: float, burst: int) -> list[CullAction]:
        """Nothing happens to the kept frame of a burst when culled photos move."""
        return []

    def act(self, group: PhotoGroup, score: float, reason: str) -> list[CullAction]:
        """One action per file of the culled photo."""
        folder = os.path.join(self.dest, os.path.relpath(group.folder, self.src))
        targets, present = self._place(folder, group)
        self.culled += 1
        self.already_there += len(present) == len(targets)
        actions = []
        for path, target in zip(group.files, targets, strict=True):
            self.taken.add(target)
            action = ALREADY_THERE if target in present else self.mode
            actions.append(CullAction(action, path, target, score, reason=reason))
        return actions

    def _place(self, folder: str, group: PhotoGroup) -> tuple[list[str], set[str]]:
        """The group's targets under the first free name, and those already there."""
        tails = [os.path.basename(p)[len(group.stem):] for p in group.files]
        number = 0
        while True:
            stem = group.stem if number == 0 else f"{group.stem}-{number}"
            targets = [os.path.normpath(os.path.join(folder, stem + tail)) for tail in tails]
            present = {target for source, target in zip(group.files, targets, strict=True)
                       if target not in self.taken and self._already_there(source, target)}
            if not any(t in self.taken or (os.path.lexists(t) and t not in present)
                       for t in targets):
                return targets, present
            number += 1

    def _already_there(self, source: str, target: str) -> bool:
        """Whether ``target`` already is what this run would make of ``source``."""
        if self.mode == "move" or not os.path.lexists(target):
            return False
        try:
            if self.mode == "link":
                return os.path.islink(target) and \
                    os.readlink(target) == os.path.abspath(source)
            return not os.path.islink(target) and filecmp.cmp(source, target, shallow=False)
        except OSError:
            return False  # unreadable: taken, as any file that differs


_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS)


def _rename_unless_taken(source: str, target: str) -> None:
    """For file systems without hard links: check, then rename (a tiny race remains)."""
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "destination exists", target)
    os.rename(source, target)


def _copy(source: str, target: str) -> None:
    """Copy contents and times to a temporary file beside ``target``, then move it there:
    no reader ever sees a half-copied file under the final name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.",
                               suffix=".grmpiqa-tmp", dir=os.path.dirname(target) or ".")
    os.close(fd)
    try:
        shutil.copy2(source, tmp)
        _move(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _move(source: str, target: str) -> None:
    """Like ``mv -n``, but an existing target is an error; symbolic links move as links."""
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno in _NO_HARD_LINKS:
            _rename_unless_taken(source, target)
            return
        if exc.errno != errno.EXDEV:
            raise
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        else:
            _copy(source, target)  # across file systems: the original goes once this is done
    os.unlink(source)


def perform(action: CullAction) -> CullAction:
    """Carry out one action; the returned copy carries the error if it failed."""
    if action.action not in MODES:
        return action
    try:
        os.makedirs(os.path.dirname(action.destination) or ".", exist_ok=True)
        if action.action == "move":
            _move(action.source, action.destination)
        elif action.action == "copy":
            _copy(action.source, action.destination)
        else:
            os.symlink(os.path.abspath(action.source), action.destination)
    except FileExistsError:
        return replace(action, error="destination appeared meanwhile; nothing overwritten")
    except OSError as exc:
        return replace(action, error=f"{exc.strerror or exc}")
    return action


def default_log_path(dest: str, stamp: str) -> str:
    """``DEST/grmpiqa-cull-STAMP.csv``, with a suffix if that name is taken."""
    path = os.path.join(dest, f"grmpiqa-cull-{stamp}.csv")
    number = 0
    while os.path.lexists(path):
        number += 1
        path = os.path.join(dest, f"grmpiqa-cull-{stamp}-{number}.csv")
    return path


def write_log(path: str, actions: Iterable[CullAction],
              columns: Sequence[str] = LOG_COLUMNS) -> None:
    """The CSV log of every action, written atomically (any file name survives)."""
    from grmpiqa.io.output import CsvWriter

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_write(path) as handle:
        writer = CsvWriter(handle, columns)
        for action in actions:
            writer.write(action)
        writer.close()
