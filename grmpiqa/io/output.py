"""Row writers for score results: table, CSV, TSV, JSON Lines and bare paths, row by row.

Writers own their encoding so that any file name survives: CSV, TSV, table
and paths output give back a non-UTF-8 name's original bytes
(surrogateescape), JSON Lines escapes them as ``\\udcXX`` so every line stays
valid JSON.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from grmpiqa.io.atomic import file_mode_for

FORMATS = ("table", "csv", "jsonl", "tsv", "paths", "parquet")
BASE_COLUMNS = ("path", "score", "error")


def format_score(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return format_score(value) if isinstance(value, float) else str(value)


def display_path(path: str) -> str:
    """A path fit for one line of a message: control characters escaped, bad bytes shown."""
    out = []
    for ch in path:
        if ch in "\n\r\t" or ord(ch) < 32 or ord(ch) == 127:
            out.append(repr(ch)[1:-1])
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # undecodable byte from os.fsdecode
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def row_values(result: Any, columns: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(result, name, None) for name in columns}


class RowWriter(Protocol):
    def write(self, result: Any) -> None: ...
    def close(self) -> None: ...


class _TextWriter:
    def __init__(self, stream: IO[bytes], columns: Sequence[str], errors: str) -> None:
        self.columns = list(columns)
        self.text = io.TextIOWrapper(stream, encoding="utf-8", errors=errors, newline="",
                                     write_through=True)

    def close(self) -> None:
        self.text.flush()
        self.text.detach()


class CsvWriter(_TextWriter):
    def __init__(self, stream: IO[bytes], columns: Sequence[str], delimiter: str = ",") -> None:
        super().__init__(stream, columns, "surrogateescape")
        self.csv = csv.writer(self.text, delimiter=delimiter, lineterminator="\n")
        self.csv.writerow(self.columns)

    def write(self, result: Any) -> None:
        self.csv.writerow([_cell(v) for v in row_values(result, self.columns).values()])


def _tsv_escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


class TsvWriter(_TextWriter):
    """Tab-separated, one row per line; ``\\``, tab, CR and LF escaped as in PostgreSQL's text."""

    def __init__(self, stream: IO[bytes], columns: Sequence[str]) -> None:
        super().__init__(stream, columns, "surrogateescape")
        self.text.write("\t".join(self.columns) + "\n")

    def write(self, result: Any) -> None:
        cells = [_tsv_escape(_cell(v)) for v in row_values(result, self.columns).values()]
        self.text.write("\t".join(cells) + "\n")


class JsonlWriter(_TextWriter):
    def __init__(self, stream: IO[bytes], columns: Sequence[str]) -> None:
        super().__init__(stream, columns, "backslashreplace")

    def write(self, result: Any) -> None:
        values = row_values(result, self.columns)
        for key, value in values.items():
            if isinstance(value, float):
                values[key] = round(value, 6)
        self.text.write(json.dumps(values, ensure_ascii=False) + "\n")


class TableWriter(_TextWriter):
    """Aligned columns for people at a terminal, streamed: the score first, then the path."""

    def __init__(self, stream: IO[bytes], columns: Sequence[str]) -> None:
        super().__init__(stream, columns, "surrogateescape")
        self.show_label = "score_label" in self.columns
        head = f"{'score':>8}  " + (f"{'label':>10}  " if self.show_label else "") + "path"
        self.text.write(head + "\n")

    def write(self, result: Any) -> None:
        score = format_score(result.score)[:8] if result.score is not None else "-"
        line = f"{score:>8}  "
        if self.show_label:
            label = getattr(result, "score_label", None)
            line += f"{'-' if label is None else f'{label:.3f}':>10}  "
        line += display_path(result.path)
        if result.error:
            line += f"  [error: {result.error}]"
        self.text.write(line + "\n")


def _warn(message: str) -> None:
    print(f"grmpiqa: {message}", file=sys.stderr, flush=True)


class PathsWriter:
    """Only the paths of scored photos, for ``xargs``: one a line, or NUL-terminated.

    A row without a score is never written: a failed file must not reach a
    ``| xargs rm``. Without ``null`` a name holding a newline would read back
    as two names, so it is left out with a warning that says to use ``--null``.
    """

    def __init__(self, stream: IO[bytes], *, null: bool = False,
                 warn: Callable[[str], None] = _warn) -> None:
        self.stream = stream
        self.end = b"\0" if null else b"\n"
        self.warn = warn
        self.left_out = 0

    def write(self, result: Any) -> None:
        if result.score is None:
            return
        if self.end == b"\n" and ("\n" in result.path or "\r" in result.path):
            self.left_out += 1
            self.warn(f"{display_path(result.path)}: left out of --format paths, its name "
                      "holds a line break (use --null)")
            return
        self.stream.write(os.fsencode(result.path) + self.end)
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


def make_writer(fmt: str, stream: IO[bytes], columns: Sequence[str], *,
                null: bool = False) -> RowWriter:
    """``null`` only changes the ``paths`` format; the others quote any name already."""
    if fmt == "paths":
        return PathsWriter(stream, null=null)
    if fmt == "csv":
        return CsvWriter(stream, columns)
    if fmt == "tsv":
        return TsvWriter(stream, columns)
    if fmt == "jsonl":
        return JsonlWriter(stream, columns)
    if fmt == "table":
        return TableWriter(stream, columns)
    if fmt == "parquet":
        raise ValueError("parquet is written by grmpiqa.io.parquet.ParquetOutput, to a file")
    raise ValueError(f"unknown format {fmt!r}")


def format_for_path(path: str) -> str:
    suffix = Path(path).suffix.lower()
    by_suffix = {".jsonl": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv", ".txt": "table",
                 ".parquet": "parquet"}
    return by_suffix.get(suffix, "csv")


class OutputFile:
    """Rows go to ``FILE.part`` beside ``path``; ``commit`` renames it into place.

    A crash leaves the previous ``path`` untouched and the rows written so far
    in ``FILE.part`` (where ``--resume`` finds them); an interrupted run
    commits the rows it has, so no finished score is lost.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".part")
        mode = file_mode_for(self.path)
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)  # exactly the final file's mode, whatever the umask
        self.stream: IO[bytes] = os.fdopen(fd, "wb")

    def commit(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
