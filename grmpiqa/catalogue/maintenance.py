"""What ``grmpiqa cache`` does: show the catalogue, clear it, prune what is no longer needed."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from grmpiqa.catalogue.store import Catalogue, CatalogueSummary, FileStat, ModelCount, stat_of
from grmpiqa.errors import OutputError

PathLike = str | os.PathLike[str]
_DAY = 86400.0


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune_catalogue` removed: ``files`` photos no longer where the catalogue
    saw them, ``scores`` rows no file refers to any more, ``models`` models unused."""

    files: int
    scores: int
    models: int
    bytes_before: int
    bytes_after: int


def _path(path: PathLike | None) -> Path:
    from grmpiqa import env

    return Path(path) if path is not None else env.catalogue_path()


def _size(path: Path) -> int:
    return sum(os.path.getsize(f) for f in (path, Path(f"{path}-wal")) if f.exists())


def _open(path: Path, warn: Callable[[str], None] | None) -> Catalogue:
    problems: list[str] = []

    def note(text: str) -> None:
        problems.append(text)
        if warn is not None:
            warn(text)

    catalogue = Catalogue(path, note)
    if not catalogue.enabled:
        raise OutputError(problems[-1] if problems else f"{path}: cannot be used")
    return catalogue


def catalogue_summary(path: PathLike | None = None, *,
                      warn: Callable[[str], None] | None = None) -> CatalogueSummary:
    """The catalogue's file, bytes on disk, files known and rows per model (newest use
    first); an empty summary when there is no catalogue yet (none is created).

    Raises OutputError when the catalogue cannot be read."""
    where = _path(path)
    if not where.exists():
        return CatalogueSummary(str(where), 0, 0, ())
    catalogue = _open(where, warn)
    try:
        def count(db: sqlite3.Connection) -> tuple[int, list[ModelCount]]:
            files = db.execute("SELECT count(*) FROM files").fetchone()[0]
            rows = db.execute(
                "SELECT m.key, (SELECT count(*) FROM scores s WHERE s.model = m.id), "
                "(SELECT count(*) FROM features f WHERE f.model = m.id), m.used "
                "FROM models m ORDER BY m.used DESC").fetchall()
            return files, [ModelCount(*row) for row in rows]
        files, models = catalogue.guarded(count, (0, []))
    finally:
        catalogue.close()
    return CatalogueSummary(str(where), _size(where), files, tuple(models))


def clear_catalogue(path: PathLike | None = None, *,
                    warn: Callable[[str], None] | None = None) -> int:
    """Forget every stored score; returns the rows removed (the file stays, emptied)."""
    where = _path(path)
    if not where.exists():
        return 0
    catalogue = _open(where, warn)
    try:
        def clear(db: sqlite3.Connection) -> int:
            with catalogue.transaction():
                removed = db.execute("DELETE FROM scores").rowcount
                for table in ("features", "explanations", "files", "models"):
                    db.execute(f"DELETE FROM {table}")
            db.execute("VACUUM")
            return removed
        return catalogue.guarded(clear, 0)
    finally:
        catalogue.close()


def _gone(db: sqlite3.Connection) -> list[tuple[int, int]]:
    """The files rows whose path no longer holds the file they saw."""
    gone = []
    for dev, ino, size, mtime_ns, ctime_ns, path in db.execute(
            "SELECT dev, ino, size, mtime_ns, ctime_ns, path FROM files").fetchall():
        if stat_of(os.fsdecode(path)) != FileStat(dev, ino, size, mtime_ns, ctime_ns):
            gone.append((dev, ino))
    return gone


def prune_catalogue(path: PathLike | None = None, *, unused_days: float | None = None,
                    models: Sequence[str] = (),
                    warn: Callable[[str], None] | None = None) -> PruneResult:
    """Remove what is no longer needed: photos no longer on disk as the catalogue saw them
    (moved photos it has seen since stay), the rows of models not used for ``unused_days``
    days and of the model keys in ``models``, then the rows no file refers to."""
    where = _path(path)
    if not where.exists():
        return PruneResult(0, 0, 0, 0, 0)
    before = _size(where)
    catalogue = _open(where, warn)
    cutoff = time.time() - unused_days * _DAY if unused_days is not None else None

    def prune(db: sqlite3.Connection) -> tuple[int, int, int]:
        gone = _gone(db)
        with catalogue.transaction():
            db.executemany("DELETE FROM files WHERE dev=? AND ino=?", gone)
            old = [row[0] for row in db.execute(
                "SELECT id FROM models WHERE used < ? OR key IN (SELECT value FROM json_each(?))",
                (cutoff if cutoff is not None else float("-inf"), _json(models))).fetchall()]
            removed = 0
            for table in ("scores", "features", "explanations"):
                counted = table == "scores"
                for model in old:
                    cursor = db.execute(f"DELETE FROM {table} WHERE model=?", (model,))
                    removed += cursor.rowcount if counted else 0
                cursor = db.execute(f"DELETE FROM {table} WHERE content NOT IN "
                                    "(SELECT content FROM files)")
                removed += cursor.rowcount if counted else 0
            db.executemany("DELETE FROM models WHERE id=?", [(m,) for m in old])
        db.execute("VACUUM")
        return len(gone), removed, len(old)

    try:
        files, scores, dropped = catalogue.guarded(prune, (0, 0, 0))
    finally:
        catalogue.close()
    return PruneResult(files, scores, dropped, before, _size(where))


def _json(values: Sequence[str]) -> str:
    import json

    return json.dumps(list(values))
