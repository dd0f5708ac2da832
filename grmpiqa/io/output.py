"""Row writers for score results: table, CSV, TSV, JSON Lines and bare paths, row by row.

Every text output (CSV, TSV, JSON Lines, table) is valid UTF-8. A file name
that is not UTF-8 is written escaped, reversibly: a byte that does not decode
becomes ``\\xHH`` and a backslash becomes ``\\\\`` (TSV also escapes tab, CR and
LF as ``\\t``, ``\\r``, ``\\n``); :func:`name_bytes` gives the exact bytes back.
``--format paths`` writes the bytes themselves.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from grmpiqa.errors import ConfigError, os_error_text
from grmpiqa.io.atomic import write_problem
from grmpiqa.io.inputs import HEIF_EXTENSIONS, PILLOW_EXTENSIONS, RAW_EXTENSIONS

FORMATS = ("table", "csv", "jsonl", "tsv", "paths", "parquet")
BASE_COLUMNS = ("path", "score", "error")
MODEL_COLUMN = "model"  # the key of the model that scored the row (grmpiqa.identity)
# columns holding file names: escaped reversibly (other text only loses undecodable bytes)
NAME_COLUMNS = ("path", "source", "destination")
OUTPUT_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                     ".parquet": "parquet"}
IMAGE_EXTENSIONS = frozenset(PILLOW_EXTENSIONS + HEIF_EXTENSIONS + RAW_EXTENSIONS)
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_ESCAPED = re.compile(rb"\\(x[0-9a-fA-F]{2}|[\\tnr])")
_UNESCAPE = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r"}


def _hex_byte(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()) - 0xDC00:02x}"


def escape_name(name: str) -> str:
    """A file name as valid UTF-8 text: ``\\`` -> ``\\\\``, an undecodable byte -> ``\\xHH``."""
    return _UNDECODABLE.sub(_hex_byte, name.replace("\\", "\\\\"))


def name_bytes(cell: str) -> bytes:
    """The exact bytes of a file name written by CSV, TSV or JSON Lines output."""
    def unescape(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        return bytes.fromhex(code[1:].decode()) if code[:1] == b"x" else _UNESCAPE[code]

    return _ESCAPED.sub(unescape, cell.encode("utf-8", "surrogateescape"))


def unescape_name(cell: str) -> str:
    """``name_bytes`` as the ``str`` Python's ``os`` functions take (``os.fsdecode``)."""
    return os.fsdecode(name_bytes(cell))


def _text(value: str) -> str:
    """Text that is not a file name (an error message): undecodable bytes as ``\\xHH``."""
    return _UNDECODABLE.sub(_hex_byte, value)


def format_score(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return format_score(value) if isinstance(value, float) else str(value)


def _escaped_cells(result: Any, columns: Sequence[str]) -> dict[str, Any]:
    """Row values with names escaped and other text cleaned, for CSV and JSON Lines."""
    values = row_values(result, columns)
    for key, value in values.items():
        if isinstance(value, str):
            values[key] = escape_name(value) if key in NAME_COLUMNS else _text(value)
    return values


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
    """The header goes out with the first row (or at close, for no rows), so that lines
    printed while rows wait (sorting, bursts) come before the table, not inside it."""

    def __init__(self, stream: IO[bytes], columns: Sequence[str]) -> None:
        self.columns = list(columns)
        # every cell is escaped already; backslashreplace only guards against a stray surrogate
        self.text = io.TextIOWrapper(stream, encoding="utf-8", errors="backslashreplace",
                                     newline="", write_through=True)
        self.headed = False

    def header(self) -> str:
        return ""

    def write(self, result: Any) -> None:
        line = self.line(result)
        if not self.headed:
            self.headed = True
            line = self.header() + line
        self.text.write(line)

    def line(self, result: Any) -> str:
        raise NotImplementedError

    def close(self) -> None:
        if not self.headed:
            self.headed = True
            self.text.write(self.header())
        self.text.flush()
        self.text.detach()


class CsvWriter(_TextWriter):
    def __init__(self, stream: IO[bytes], columns: Sequence[str], delimiter: str = ",") -> None:
        super().__init__(stream, columns)
        self.delimiter = delimiter

    def _csv_line(self, cells: Sequence[str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.delimiter, lineterminator="\n").writerow(cells)
        return buffer.getvalue()

    def header(self) -> str:
        return self._csv_line(self.columns)

    def line(self, result: Any) -> str:
        return self._csv_line([_cell(v) for v in _escaped_cells(result, self.columns).values()])


def _tsv_escape(value: str) -> str:
    return escape_name(value).replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class TsvWriter(_TextWriter):
    """Tab-separated, one row per line; ``\\``, tab, CR, LF and undecodable bytes escaped as in
    PostgreSQL's text format."""

    def header(self) -> str:
        return "\t".join(self.columns) + "\n"

    def line(self, result: Any) -> str:
        cells = [_tsv_escape(_cell(v)) for v in row_values(result, self.columns).values()]
        return "\t".join(cells) + "\n"


class JsonlWriter(_TextWriter):
    def line(self, result: Any) -> str:
        values = _escaped_cells(result, self.columns)
        for key, value in values.items():
            if isinstance(value, float):
                values[key] = round(value, 6)
        return json.dumps(values, ensure_ascii=False) + "\n"


class TableWriter(_TextWriter):
    """Aligned columns for people at a terminal, streamed: the score first, then the path."""

    def __init__(self, stream: IO[bytes], columns: Sequence[str]) -> None:
        super().__init__(stream, columns)
        self.show_label = "score_label" in self.columns
        self.show_burst = "burst" in self.columns
        self.show_why = "why" in self.columns

    def header(self) -> str:
        return (f"{'score':>8}  " + (f"{'label':>10}  " if self.show_label else "")
                + (f"{'burst':>6} {'rank':>4}  " if self.show_burst else "") + "path\n")

    def line(self, result: Any) -> str:
        score = format_score(result.score)[:8] if result.score is not None else "-"
        line = f"{score:>8}  "
        if self.show_label:
            label = getattr(result, "score_label", None)
            line += f"{'-' if label is None else f'{label:.3f}':>10}  "
        if self.show_burst:
            burst, rank = getattr(result, "burst", None), getattr(result, "burst_rank", None)
            line += f"{burst or '-':>6} {rank or '-':>4}  "
        line += display_path(result.path)
        if self.show_why and getattr(result, "why", None):
            line += f"  [{result.why}]"
        if result.error:
            line += f"  [error: {_text(result.error)}]"
        return line + "\n"


class PathsWriter:
    """Only the paths of scored photos, for ``xargs``: one a line, or NUL-terminated.

    A row without a score is never written: a failed file must not reach a
    ``| xargs rm``. Without ``null`` a name holding a newline would read back
    as two names, so it is left out, counted in ``left_out`` and passed to
    ``on_left_out`` (which says to use NUL separators).
    """

    def __init__(self, stream: IO[bytes], *, null: bool = False,
                 on_left_out: Callable[[str], None] | None = None) -> None:
        self.stream = stream
        self.end = b"\0" if null else b"\n"
        self.on_left_out = on_left_out
        self.left_out = 0

    def write(self, result: Any) -> None:
        if result.score is None:
            return
        if self.end == b"\n" and ("\n" in result.path or "\r" in result.path):
            self.left_out += 1
            if self.on_left_out is not None:
                self.on_left_out(result.path)
            return
        self.stream.write(os.fsencode(result.path) + self.end)
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


def make_writer(fmt: str, stream: IO[bytes], columns: Sequence[str], *,
                null: bool = False, on_left_out: Callable[[str], None] | None = None
                ) -> RowWriter:
    """``null`` and ``on_left_out`` only concern the ``paths`` format; the others quote
    any name already."""
    if fmt == "paths":
        return PathsWriter(stream, null=null, on_left_out=on_left_out)
    if fmt == "csv":
        return CsvWriter(stream, columns)
    if fmt == "tsv":
        return TsvWriter(stream, columns)
    if fmt == "jsonl":
        return JsonlWriter(stream, columns)
    if fmt == "table":
        return TableWriter(stream, columns)
    if fmt == "parquet":
        raise ValueError("parquet is written by grmpiqa.io.parquet.ParquetStore, to a file")
    raise ValueError(f"unknown format {fmt!r}")


def format_for_path(path: str, *, param: str = "output") -> str:
    """The format an output file's extension names; anything else needs the format given."""
    fmt = OUTPUT_EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(OUTPUT_EXTENSIONS)
        raise ConfigError(f"{display_path(path)}: cannot tell the format from the extension; "
                          f"name it {known}, or give the format", param=param)
    return fmt


def check_output_path(path: str, *, param: str = "output") -> None:
    """Refuse, before any work, an output that would destroy a photo or cannot be written.

    An image extension, a folder or something other than a regular file is a
    ConfigError (exit 2). A missing parent folder is created (also for a
    cull's log). See also :func:`check_not_an_input`.
    """
    shown = display_path(path)
    ext = Path(path).suffix.lower().lstrip(".")
    if ext in IMAGE_EXTENSIONS:
        raise ConfigError(f"{shown}: .{ext} is a photo's extension; refusing to write rows "
                          "into it", param=param)
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ConfigError(f"{shown}: {os_error_text(exc)}", param=param) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{shown} is a folder; give a file name", param=param)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{shown} is not a regular file", param=param)
    parent = os.path.dirname(path) or "."
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot create its folder ({os_error_text(exc)})",
                          param=param) from None
    problem = write_problem(parent)
    if problem is not None:
        raise ConfigError(f"{shown}: cannot write in {display_path(parent)} ({problem})",
                          param=param)


def check_not_an_input(path: str, inputs: Sequence[str], *, param: str = "output") -> None:
    """Refuse an output that is one of ``inputs``: the same file, also through links."""
    try:
        st = os.stat(path)
    except OSError:
        return  # not there yet: it cannot be one of the photos
    if any(_same_file(st, name) for name in inputs):
        raise ConfigError(f"{display_path(path)} is one of the photos to score; refusing to "
                          "overwrite it", param=param)


def _same_file(st: os.stat_result, name: str) -> bool:
    try:
        other = os.stat(name)
    except (OSError, ValueError):
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)
