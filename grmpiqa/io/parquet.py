"""Parquet output (extra ``parquet``: pyarrow): typed columns, flat memory, resumable.

A Parquet file is only readable once its footer is written, so a run cannot
append rows to one file and survive ``kill -9``. The journal is instead a
folder ``FILE.part/`` of small, complete Parquet files (one per
``rows_per_part`` rows or ``seconds_per_part`` seconds, each written to a
temporary name, synced and renamed, so every ``*.parquet`` there is whole),
locked by the run that writes it. When the run ends (also on an interrupt)
they are copied, a batch at a time, into ``FILE`` as row groups and the folder
is removed. A resumed run reads ``FILE`` and every part.

A run writes its own generation of parts (``g0002-000000.parquet``, ...) and
a resumed run writes the rows it keeps again into its own, so the parts of the
run it resumes are never touched until it finishes: a resumed run killed in
turn loses nothing either. Columns: ``path`` (string), ``score`` (float32,
null on error), ``error`` (string, null when scored), ``score_label``
(float32) for models with a label scale, ``burst`` and ``burst_rank`` (int32)
with bursts, ``model`` (string, dictionary-encoded: the model's key).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from grmpiqa.env import parquet_part_rows
from grmpiqa.errors import ConfigError, InputError, OutputError
from grmpiqa.identity import ModelIdentity
from grmpiqa.io.atomic import file_mode_for, partial_path
from grmpiqa.io.journal import check_carried, lock, merged, output_error
from grmpiqa.io.output import display_path
from grmpiqa.io.rowfiles import row_result
from grmpiqa.results import ScoreResult

ROWS_PER_PART = 4096  # GRMPIQA_PARQUET_PART_ROWS overrides it
SECONDS_PER_PART = 30.0
ROWS_PER_GROUP = 16384  # row groups of the final file (about 1 MB each)
_PART = re.compile(r"^g(\d{4,})-(\d{6,})\.parquet$")


def require_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("Parquet output needs the optional extra: "
                          "pip install 'grmpiqa[parquet]'") from None
    return pa, pq


def text_path(path: str) -> str:
    """A path as Parquet stores it: bytes that are not UTF-8 written as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def schema(columns: Sequence[str]) -> Any:
    pa, _ = require_pyarrow()
    types = {"path": pa.string(), "score": pa.float32(), "error": pa.string(),
             "score_label": pa.float32(), "burst": pa.int32(), "burst_rank": pa.int32(),
             "sharpness": pa.float32(), "noise": pa.float32(), "exposure": pa.float32(),
             "clipped": pa.float32(), "compression": pa.float32(), "why": pa.string(),
             "model": pa.string()}
    return pa.schema([(name, types[name]) for name in columns])


def _write_synced(table: Any, path: Path) -> None:
    _, pq = require_pyarrow()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        pq.write_table(table, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _parts(folder: Path) -> list[tuple[int, int, Path]]:
    found = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in folder.iterdir():
            match = _PART.match(entry.name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), entry))
    return sorted(found)


class _Columns:
    """Rows gathered column by column until they are written as one table."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.values: dict[str, list[Any]] = {name: [] for name in self.columns}

    def add(self, result: Any) -> None:
        for name in self.columns:
            value = getattr(result, name, None)
            self.values[name].append(text_path(value) if name == "path" else value)

    def __len__(self) -> int:
        return len(self.values[self.columns[0]])

    def take(self, schema: Any) -> Any:
        pa, _ = require_pyarrow()
        table = pa.table(self.values, schema=schema)
        self.values = {name: [] for name in self.columns}
        return table


class ParquetStore:
    """``FILE.parquet`` with its journal of part files in ``FILE.parquet.part/``
    (see :mod:`grmpiqa.io.stores` for what a store does)."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str],
                 output_columns: Sequence[str] | None = None, *,
                 model: ModelIdentity | None = None, resume: bool = False,
                 same_order: bool = True, rows_per_part: int | None = None,
                 seconds_per_part: float = SECONDS_PER_PART) -> None:
        self.path = Path(path)
        self.folder = partial_path(path)
        self.schema = schema(columns)
        output_columns = list(output_columns or columns)
        self.same_order = same_order and list(columns) == output_columns
        self.output_schema = schema(output_columns)
        self.pending = _Columns(columns)
        self.rows_per_part = rows_per_part or parquet_part_rows() or ROWS_PER_PART
        self.seconds_per_part = seconds_per_part
        self.written: list[Path] = []
        self.rows = 0
        self.final: Any = None  # a streaming writer of the presented rows, when they differ
        self.final_rows = _Columns(output_columns)
        existed = self.folder.is_dir()
        self.lock_fd: int | None = None
        try:
            self._open(resume, model)
        except BaseException as exc:
            if self.lock_fd is not None:
                os.close(self.lock_fd)
            if not existed:  # refused: leave no partial folder behind
                shutil.rmtree(self.folder, ignore_errors=True)
            if isinstance(exc, OSError):
                raise self._error(exc, self.folder) from None
            raise
        self.last_flush = time.monotonic()

    def _open(self, resume: bool, model: ModelIdentity | None) -> None:
        """Lock the journal, read what a resumed run keeps, write it as this run's first part."""
        shown = display_path(str(self.path))
        self._lock_folder(shown)
        if not resume:
            for _, _, part in _parts(self.folder):
                part.unlink()
        existing = _parts(self.folder)
        self.generation = max((g for g, _, _ in existing), default=0) + 1
        self.carried = merged(read_rows(self.path)) if resume else []
        self.notes = check_carried(self.carried, model, shown)
        self.done = {row.path for row in self.carried}
        for row in self.carried:
            self.pending.add(row)
        self.flush()

    def _lock_folder(self, shown: str) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            self.folder.unlink()  # a text output's journal of the same name: not ours
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock_fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        lock(self.lock_fd, shown)

    def _error(self, exc: OSError, where: Path) -> OutputError:
        return output_error(exc, where, self.folder, self.rows)

    def is_done(self, path: str) -> bool:
        """Whether a resumed run already has ``path`` (Parquet stores names as text)."""
        return text_path(path) in self.done

    def journal(self, row: ScoreResult) -> None:
        self.pending.add(row)
        if len(self.pending) >= self.rows_per_part or \
                time.monotonic() - self.last_flush >= self.seconds_per_part:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as one complete part file."""
        self.last_flush = time.monotonic()
        if not len(self.pending):
            return
        count = len(self.pending)
        part = self.folder / f"g{self.generation:04d}-{len(self.written):06d}.parquet"
        try:
            _write_synced(self.pending.take(self.schema), part)
        except OSError as exc:
            raise self._error(exc, part) from None
        self.written.append(part)
        self.rows += count

    def present(self, row: ScoreResult) -> None:
        if self.same_order:
            return
        self.final_rows.add(row)
        if len(self.final_rows) >= ROWS_PER_GROUP:
            self._write_final()

    def _write_final(self) -> None:
        _, pq = require_pyarrow()
        if self.final is None:
            self.final = pq.ParquetWriter(self.folder / "final.tmp", self.output_schema)
        self.final.write_table(self.final_rows.take(self.output_schema),
                               row_group_size=ROWS_PER_GROUP)

    def commit(self) -> None:
        """The output becomes ``FILE`` (row groups of up to ROWS_PER_GROUP rows)."""
        tmp = self.folder / "final.tmp"
        try:
            self.flush()
            if self.same_order:
                self._merge_parts(tmp)
            else:
                self._write_final()
                self.final.close()
            os.chmod(tmp, file_mode_for(self.path))
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            self.keep()
            raise self._error(exc, self.path) from None
        shutil.rmtree(self.folder, ignore_errors=True)
        self._unlock()

    def _unlock(self) -> None:
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.lock_fd)
            self.lock_fd = None

    def _merge_parts(self, tmp: Path) -> None:
        pa, pq = require_pyarrow()
        with open(tmp, "wb") as handle, pq.ParquetWriter(handle, self.schema) as writer:
            for table in _regrouped(self.written, ROWS_PER_GROUP):
                writer.write_table(table, row_group_size=ROWS_PER_GROUP)
            if not self.written:
                writer.write_table(pa.table({n: [] for n in self.schema.names},
                                            schema=self.schema))

    def keep(self) -> None:
        """A failed run: its complete parts stay for a resumed run (none if it wrote none)."""
        with contextlib.suppress(Exception):
            self.flush()
        if self.final is not None:
            with contextlib.suppress(Exception):
                self.final.close()
        with contextlib.suppress(OSError):
            (self.folder / "final.tmp").unlink()
        if not _parts(self.folder):
            shutil.rmtree(self.folder, ignore_errors=True)
        self._unlock()


def _regrouped(parts: Sequence[Path], rows: int) -> Iterator[Any]:
    """The parts' rows as tables of ``rows`` rows (the last one shorter), one part read at
    a time, so copying them costs one row group of memory."""
    pa, pq = require_pyarrow()
    held: list[Any] = []
    count = 0
    for part in parts:
        table = pq.read_table(part)
        held.append(table)
        count += table.num_rows
        while count >= rows:
            merged_table = pa.concat_tables(held)
            yield merged_table.slice(0, rows)
            rest = merged_table.slice(rows)
            held, count = [rest], rest.num_rows
    if count:
        yield pa.concat_tables(held)


def read_rows(output: str | os.PathLike[str]) -> Iterator[ScoreResult]:
    """Every row in ``output`` and in its ``.part`` folder, in the order written; a part
    that cannot be read is skipped (parts are renamed into place only when complete)."""
    _, pq = require_pyarrow()
    target = Path(output)
    sources = [(target, True)] if target.exists() else []
    sources += [(part, False) for _, _, part in _parts(partial_path(output))]
    for source, required in sources:
        try:
            reader = pq.ParquetFile(source)
            batches = list(reader.iter_batches(batch_size=ROWS_PER_PART))
        except Exception as exc:
            if required:
                raise InputError(f"cannot read {source} as Parquet ({exc})") from None
            continue
        for batch in batches:
            for record in batch.to_pylist():
                result = row_result(record)
                if result is not None:
                    yield result
