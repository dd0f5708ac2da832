"""``score --output FILE --resume``: find the rows a previous run already wrote.

A run writes its rows to ``FILE.part`` (flushed row by row; Parquet: see
:mod:`grmpiqa.io.parquet`) and renames it to
``FILE`` when it ends, also when it is interrupted by SIGINT or SIGTERM. A run
killed outright (SIGKILL, power loss) leaves ``FILE.part``; its last row may be
torn. ``done_rows`` reads both, keeps every complete row once and drops a torn
tail, so a resumed run scores each image exactly once.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from grmpiqa.errors import InputError
from grmpiqa.io.atomic import partial_path
from grmpiqa.io.output import unescape_name
from grmpiqa.results import ScoreResult

RESUMABLE_FORMATS = ("csv", "tsv", "jsonl", "parquet")


def _number(value: Any) -> float | None:
    if value in (None, ""):
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


def row_result(row: dict[str, Any]) -> ScoreResult | None:
    """A complete row, or None for anything torn or foreign."""
    try:
        path = row["path"]
        score = _number(row.get("score"))
        label = _number(row.get("score_label"))
    except (KeyError, TypeError, ValueError):
        return None
    error = row.get("error") or None
    if not isinstance(path, str) or not path or (score is None) == (error is None):
        return None
    if score is not None and not 0.0 <= score <= 1.0:
        return None
    return ScoreResult(path, score, error, label)


def read_rows(path: Path, fmt: str) -> list[ScoreResult]:
    """Complete rows of a file written by ``score`` in ``fmt``; stops at the first torn one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"--resume: cannot read {path}: {exc.strerror or exc}") from None
    complete = data.endswith(b"\n")
    if fmt == "jsonl":
        lines = data.decode("utf-8", "surrogateescape").split("\n")
        records: list[Any] = []
        for line in lines[:-1]:  # the last piece is empty, or a torn line
            try:
                records.append(json.loads(line))
            except ValueError:
                break
    else:
        text = data.decode("utf-8", "surrogateescape")
        if fmt == "csv":
            parsed = list(csv.reader(io.StringIO(text, newline="")))
            if not complete and parsed:
                parsed = parsed[:-1]
        else:  # the piece after the last newline is empty, or a torn line
            parsed = [line.split("\t") for line in text.split("\n")[:-1]]
        if not parsed:
            return []
        header, body = parsed[0], parsed[1:]
        if "path" not in header:
            raise InputError(f"--resume: {path} has no 'path' column; not written by grmpiqa")
        records = [dict(zip(header, cells, strict=True)) if len(cells) == len(header) else None
                   for cells in body]
    out = []
    for record in records:
        if isinstance(record, dict):  # undo the output's escaping: TSV escapes every cell
            record = {k: unescape_name(v) if isinstance(v, str) and (k == "path" or fmt == "tsv")
                      else v for k, v in record.items()}
        result = row_result(record) if isinstance(record, dict) else None
        if result is None:
            break  # a torn row: nothing after it can be trusted
        out.append(result)
    return out


def done_rows(output: str | os.PathLike[str], fmt: str) -> list[ScoreResult]:
    """Rows already in ``output`` or its ``.part``, each path once, in the order written."""
    if fmt not in RESUMABLE_FORMATS:
        raise InputError(f"--resume needs --format {', '.join(RESUMABLE_FORMATS)}, not {fmt}")
    seen: dict[str, ScoreResult] = {}
    if fmt == "parquet":  # FILE and the parts in FILE.part/ (grmpiqa.io.parquet)
        from grmpiqa.io import parquet

        for result in parquet.read_rows(output):
            seen.setdefault(result.path, result)
        return list(seen.values())
    for source in (Path(output), partial_path(output)):
        for result in read_rows(source, fmt):
            seen.setdefault(result.path, result)
    return list(seen.values())
