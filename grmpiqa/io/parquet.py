"""``--output scores.parquet`` (extra ``parquet``: pyarrow): typed columns, flat memory, resumable.

A Parquet file is only readable once its footer is written, so a run cannot
append rows to one file and survive ``kill -9``. Rows go instead to small,
complete Parquet files in ``FILE.part/`` (one per ``rows_per_part`` rows or
``seconds_per_part`` seconds, each written to a temporary name, synced and
renamed, so every ``*.parquet`` there is whole). When the run ends (also on
Ctrl-C or SIGTERM) they are copied, a batch at a time, into ``FILE`` as row
groups and the folder is removed. ``--resume`` reads ``FILE`` and every part.

A run writes its own generation of parts (``g0002-000000.parquet``, ...) and
a resumed run writes the rows it keeps again into its own, so the parts of the
run it resumes are never touched until it finishes: a resumed run killed in
turn loses nothing either. Columns: ``path`` (string), ``score`` (float32,
null on error), ``error`` (string, null when scored), and ``score_label``
(float32) for models with a label scale.
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
from grmpiqa.errors import ConfigError, InputError
from grmpiqa.io.atomic import file_mode_for
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


def parts_folder(output: str | os.PathLike[str]) -> Path:
    target = Path(output)
    return target.with_name(target.name + ".part")


def schema(columns: Sequence[str]) -> Any:
    pa, _ = require_pyarrow()
    types = {"path": pa.string(), "score": pa.float32(), "error": pa.string(),
             "score_label": pa.float32()}
    return pa.schema([(name, types[name]) for name in columns])


def _write_synced(table: Any, path: Path, mode: int | None = None) -> None:
    _, pq = require_pyarrow()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        pq.write_table(table, handle)
        handle.flush()
        os.fsync(handle.fileno())
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def _parts(folder: Path) -> list[tuple[int, int, Path]]:
    found = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in folder.iterdir():
            match = _PART.match(entry.name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), entry))
    return sorted(found)


class ParquetOutput:
    """A row writer and output target in one: ``write``, ``close``, then ``commit``."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str], *,
                 resume: bool = False, rows_per_part: int | None = None,
                 seconds_per_part: float = SECONDS_PER_PART) -> None:
        self.schema = schema(columns)
        self.columns = list(columns)
        self.path = Path(path)
        self.folder = parts_folder(path)
        if self.folder.exists() and not self.folder.is_dir():
            self.folder.unlink()
        if not resume:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = _parts(self.folder)
        self.generation = max((g for g, _, _ in existing), default=0) + 1
        self.rows_per_part = rows_per_part or parquet_part_rows() or ROWS_PER_PART
        self.seconds_per_part = seconds_per_part
        self.pending: dict[str, list[Any]] = {name: [] for name in self.columns}
        self.written: list[Path] = []
        self.last_flush = time.monotonic()

    def write(self, result: Any) -> None:
        for name in self.columns:
            value = getattr(result, name, None)
            self.pending[name].append(text_path(value) if name == "path" else value)
        if len(self.pending["path"]) >= self.rows_per_part or \
                time.monotonic() - self.last_flush >= self.seconds_per_part:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as one complete part file."""
        self.last_flush = time.monotonic()
        if not self.pending["path"]:
            return
        pa, _ = require_pyarrow()
        table = pa.table(self.pending, schema=self.schema)
        part = self.folder / f"g{self.generation:04d}-{len(self.written):06d}.parquet"
        _write_synced(table, part)
        self.written.append(part)
        self.pending = {name: [] for name in self.columns}

    def close(self) -> None:
        self.flush()

    def commit(self) -> None:
        """This run's rows become ``path`` (row groups of up to ROWS_PER_GROUP rows)."""
        self.close()
        pa, pq = require_pyarrow()
        tmp = self.folder / "final.tmp"
        with open(tmp, "wb") as handle:
            with pq.ParquetWriter(handle, self.schema) as writer:
                for table in _regrouped(self.written, ROWS_PER_GROUP):
                    writer.write_table(table, row_group_size=ROWS_PER_GROUP)
                if not self.written:
                    writer.write_table(pa.table({n: [] for n in self.columns},
                                                schema=self.schema))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode_for(self.path))
        os.replace(tmp, self.path)
        shutil.rmtree(self.folder, ignore_errors=True)

    def discard(self) -> None:
        """Remove this run's parts; a resumed run's older parts stay for the next --resume."""
        for part in self.written:
            with contextlib.suppress(OSError):
                part.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only if empty


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
            merged = pa.concat_tables(held)
            yield merged.slice(0, rows)
            rest = merged.slice(rows)
            held, count = [rest], rest.num_rows
    if count:
        yield pa.concat_tables(held)


def read_rows(output: str | os.PathLike[str]) -> Iterator[ScoreResult]:
    """Every row in ``output`` and in its ``.part`` folder, in the order written; a part
    that cannot be read is skipped (parts are renamed into place only when complete)."""
    from grmpiqa.io.resume import row_result

    _, pq = require_pyarrow()
    target = Path(output)
    sources = [(target, True)] if target.exists() else []
    sources += [(part, False) for _, _, part in _parts(parts_folder(output))]
    for source, required in sources:
        try:
            reader = pq.ParquetFile(source)
            batches = list(reader.iter_batches(batch_size=ROWS_PER_PART))
        except Exception as exc:
            if required:
                raise InputError(f"--resume: cannot read {source} as Parquet ({exc})") from None
            continue
        for batch in batches:
            for record in batch.to_pylist():
                result = row_result(record)
                if result is not None:
                    yield result
