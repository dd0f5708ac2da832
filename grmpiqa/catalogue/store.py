"""The catalogue file: SQLite in WAL mode, short transactions, and never a failed run.

Tables (``SCHEMA_VERSION`` in ``meta``):

- ``models(id, key, used)``: a :attr:`~grmpiqa.identity.ModelIdentity.key` and when it last ran;
- ``files(dev, ino, size, mtime_ns, ctime_ns, content, path)``: the fast path from a file's
  stat to its content digest (ctime changes on every write and cannot be set back);
- ``scores(content, model, score, label)``: one complete row per photo content and model;
- ``features(content, model, phash, layout, embedding, capture_time, camera)``: what bursts,
  suggestions and reports need, when the pass computed it;
- ``explanations(content, model, version, sharpness, noise, exposure, clipped, compression,
  why)``: the measured defects (:mod:`grmpiqa.explain`), when they were asked for; a row
  of another ``version`` of the thresholds is measured again.

Several processes may write at once (WAL, a busy timeout, one short transaction per batch
of rows); a killed writer leaves whole rows only. A file that is not a SQLite database, or
a damaged one, is moved aside with one warning and started afresh; a folder that cannot be
written, a full disk or a catalogue of a newer grmpiqa turn caching off with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 120.0  # a writer waits this long for another process's transaction
DIGEST_BYTES = 16  # blake2b-128 of a file's bytes: its identity
_CORRUPT = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
    used REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files (dev INTEGER NOT NULL, ino INTEGER NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    content BLOB NOT NULL, path TEXT NOT NULL, PRIMARY KEY (dev, ino)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_content ON files (content);
CREATE TABLE IF NOT EXISTS scores (content BLOB NOT NULL, model INTEGER NOT NULL,
    score REAL NOT NULL, label REAL, PRIMARY KEY (content, model)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS features (content BLOB NOT NULL, model INTEGER NOT NULL,
    phash INTEGER NOT NULL, layout BLOB NOT NULL, embedding BLOB, capture_time REAL,
    camera TEXT, PRIMARY KEY (content, model)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS explanations (content BLOB NOT NULL, model INTEGER NOT NULL,
    version INTEGER NOT NULL, sharpness REAL NOT NULL, noise REAL NOT NULL,
    exposure REAL NOT NULL, clipped REAL NOT NULL, compression REAL NOT NULL,
    why TEXT NOT NULL, PRIMARY KEY (content, model)) WITHOUT ROWID;
"""


class FileStat(NamedTuple):
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def stat_of(path: str) -> FileStat | None:
    """The stat of a regular file, None for anything else (a tar member, a missing file)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileStat(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def content_digest(path: str) -> bytes | None:
    """blake2b-128 of the file's bytes, None when it cannot be read (scoring says why)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, lambda: hashlib.blake2b(
                digest_size=DIGEST_BYTES)).digest()
    except OSError:
        return None


@dataclass(frozen=True)
class Stored:
    """One photo's remembered row: ``features`` is a dict of the features table's columns,
    ``explanation`` the explanations table's measures and ``why``; each None when they
    were not computed (or not asked for)."""

    score: float
    label: float | None
    features: dict[str, Any] | None = None
    explanation: tuple[float, float, float, float, float, str] | None = None


@dataclass(frozen=True)
class Remembered:
    """A new row to store: the photo, its score and what the pass computed beside it."""

    entry: Entry
    score: float
    label: float | None
    features: dict[str, Any] | None = None
    explanation: tuple[float, float, float, float, float, str] | None = None


@dataclass(frozen=True)
class Entry:
    """A photo to remember: where it is, its stat when it was hashed, its content digest."""

    path: str
    stat: FileStat
    content: bytes


@dataclass(frozen=True)
class ModelCount:
    key: str
    photos: int
    with_features: int
    used: float


@dataclass(frozen=True)
class CatalogueSummary:
    """What ``grmpiqa cache`` shows: the file, its size on disk, the photos known by their
    stat, and the rows per model."""

    path: str
    bytes: int
    files: int
    models: tuple[ModelCount, ...]


def _stored_path(path: str) -> str | bytes:
    """A path as SQLite can hold it: text, or its bytes when it is not valid UTF-8 (a name
    with undecodable bytes reaches Python as surrogate escapes, which text cannot carry)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _signed(value: int) -> int:
    """A 64-bit perceptual hash as SQLite's signed INTEGER."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


class Catalogue:
    """An open catalogue. No method raises for a catalogue problem: it warns once through
    ``warn`` and stops remembering (reads then find nothing)."""

    def __init__(self, path: str | os.PathLike[str], warn: Callable[[str], None]) -> None:
        self.path = Path(path)
        self.warn = warn
        self.enabled = True
        self._db: sqlite3.Connection | None = None
        self._models: dict[str, int] = {}
        self._run(self._connect)

    # -- safety -----------------------------------------------------------------------
    def _run(self, action: Callable[[], Any], default: Any = None) -> Any:
        """``action`` under the safety rules: a damaged file is moved aside and started
        afresh once; any other SQLite or OS error turns the catalogue off with a warning."""
        for attempt in (1, 2):
            if not self.enabled:
                return default
            try:
                return action()
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _CORRUPT and attempt == 1:
                    self._set_aside(exc)
                    continue
                self._disable(f"{exc}")
            except OSError as exc:
                self._disable(exc.strerror or str(exc))
        return default

    def _disable(self, why: str) -> None:
        self.warn(f"score catalogue {self.path}: {why}; scores are not remembered this run")
        self.enabled = False
        self.close()

    def _set_aside(self, exc: Exception) -> None:
        self.close()
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.remove(f"{self.path}{suffix}")
        self.warn(f"score catalogue {self.path} is damaged ({exc}): moved aside to {aside.name}, "
                  "a new one is started")
        self._connect()

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        self._db = db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        version = self._version(db)
        if version is None:
            with self._write() as tx:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    tx.execute(statement)
                tx.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            version = self._version(db)
        if version != SCHEMA_VERSION:
            raise sqlite3.OperationalError(
                f"written by another grmpiqa (schema {version}, this one reads {SCHEMA_VERSION})")
        db.execute("PRAGMA quick_check(1)").fetchone()

    @staticmethod
    def _version(db: sqlite3.Connection) -> int | None:
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return int(row[0]) if row else None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (taken at once, so writers queue, never deadlock)."""
        assert self._db is not None
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def guarded(self, action: Callable[[sqlite3.Connection], Any], default: Any = None) -> Any:
        """``action(connection)`` under the catalogue's safety rules (see :meth:`_run`)."""
        return self._run(lambda: action(self._connection()), default)

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A short write transaction, for use inside :meth:`guarded`."""
        return self._write()

    def _connection(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    # -- reading ----------------------------------------------------------------------
    def contents(self, stats: dict[str, FileStat]) -> dict[str, bytes]:
        """The content digest of each path whose stat is the one stored (the fast path)."""
        def find() -> dict[str, bytes]:
            assert self._db is not None
            found: dict[str, bytes] = {}
            query = "SELECT size, mtime_ns, ctime_ns, content FROM files WHERE dev=? AND ino=?"
            for path, st in stats.items():
                row = self._db.execute(query, (st.dev, st.ino)).fetchone()
                if row is not None and tuple(row[:3]) == (st.size, st.mtime_ns, st.ctime_ns):
                    found[path] = row[3]
            return found
        return self._run(find, {})

    def scores(self, contents: dict[str, bytes], key: str, *, features: bool,
               explain: bool = False) -> dict[str, Stored]:
        """The stored rows of ``key`` for these contents; with ``features`` (``explain``)
        only rows that have their features (explanation) too."""
        def find() -> dict[str, Stored]:
            assert self._db is not None
            model = self._model_id(key, create=False)
            if model is None:
                return {}
            found: dict[str, Stored] = {}
            for path, content in contents.items():
                row = self._db.execute("SELECT score, label FROM scores WHERE content=? AND "
                                       "model=?", (content, model)).fetchone()
                if row is None:
                    continue
                extra = self._features(content, model) if features else None
                why = self._explanation(content, model) if explain else None
                if (features and extra is None) or (explain and why is None):
                    continue
                found[path] = Stored(row[0], row[1], extra, why)
            return found
        return self._run(find, {})

    def _features(self, content: bytes, model: int) -> dict[str, Any] | None:
        assert self._db is not None
        row = self._db.execute("SELECT phash, layout, embedding, capture_time, camera FROM "
                               "features WHERE content=? AND model=?", (content, model)).fetchone()
        if row is None:
            return None
        return {"phash": _unsigned(row[0]), "layout": row[1], "embedding": row[2],
                "capture_time": row[3], "camera": row[4]}

    def _explanation(self, content: bytes, model: int
                     ) -> tuple[float, float, float, float, float, str] | None:
        from grmpiqa.explain.thresholds import VERSION

        assert self._db is not None
        row = self._db.execute("SELECT sharpness, noise, exposure, clipped, compression, why "
                               "FROM explanations WHERE content=? AND model=? AND version=?",
                               (content, model, VERSION)).fetchone()
        return tuple(row) if row is not None else None

    def _model_id(self, key: str, *, create: bool) -> int | None:
        if key in self._models:
            return self._models[key]
        assert self._db is not None
        row = self._db.execute("SELECT id FROM models WHERE key=?", (key,)).fetchone()
        if row is None and create:
            cursor = self._db.execute("INSERT INTO models (key, used) VALUES (?, ?)",
                                      (key, time.time()))
            row = (cursor.lastrowid,)
        if row is None:
            return None
        self._models[key] = row[0]
        return row[0]

    # -- writing ----------------------------------------------------------------------
    def remember(self, key: str, rows: Sequence[Remembered]) -> None:
        """Store these rows in one transaction."""
        def write() -> None:
            from grmpiqa.explain.thresholds import VERSION

            with self._write() as db:
                model = self._model_id(key, create=True)
                db.execute("UPDATE models SET used=? WHERE id=?", (time.time(), model))
                for row in rows:
                    content, extra = row.entry.content, row.features
                    db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (*row.entry.stat, content, _stored_path(row.entry.path)))
                    db.execute("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                               (content, model, row.score, row.label))
                    if extra is not None:
                        db.execute("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   (content, model, _signed(extra["phash"]), extra["layout"],
                                    extra["embedding"], extra["capture_time"], extra["camera"]))
                    if row.explanation is not None:
                        db.execute("INSERT OR REPLACE INTO explanations VALUES "
                                   "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   (content, model, VERSION, *row.explanation))
        if rows:
            self._run(write)

    def know(self, entries: Sequence[Entry]) -> None:
        """Store the fast path of files found by their content (moved, renamed, touched)."""
        def write() -> None:
            with self._write() as db:
                db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                               [(*e.stat, e.content, _stored_path(e.path)) for e in entries])
        if entries:
            self._run(write)

    def used(self, key: str) -> None:
        def write() -> None:
            with self._write() as db:
                db.execute("UPDATE models SET used=? WHERE key=?", (time.time(), key))
        self._run(write)
