"""Reading back the rows grmpiqa wrote, for resuming: every complete row, never a torn one.

A run killed outright (SIGKILL, power loss, a full disk) can leave its last
row half written. Text formats end every row with a newline, so a row is
complete exactly when its newline is there; reading stops at the first row
that is torn or not grmpiqa's, since nothing after it can be trusted.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from grmpiqa.errors import InputError, os_error_text
from grmpiqa.io.output import unescape_name
from grmpiqa.results import EXPLAIN_COLUMNS, Explanation, ScoreResult

TEXT_FORMATS = ("csv", "tsv", "jsonl")


def _number(value: Any) -> float | None:
    if value in (None, ""):
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


def row_result(row: dict[str, Any]) -> ScoreResult | None:
    """A complete row as a result (with its ``model`` key), or None for anything torn or
    foreign."""
    try:
        path = row["path"]
        score = _number(row.get("score"))
        label = _number(row.get("score_label"))
    except (KeyError, TypeError, ValueError):
        return None
    error = row.get("error") or None
    model = row.get("model") or None
    if not isinstance(path, str) or not path or (score is None) == (error is None):
        return None
    if score is not None and not 0.0 <= score <= 1.0:
        return None
    if model is not None and not isinstance(model, str):
        return None
    return ScoreResult(path, score, error, label, model=model, explanation=_explanation(row))


def _explanation(row: dict[str, Any]) -> Explanation | None:
    """The explanation columns of a row read back (resume), None when it has none."""
    try:
        values = [_number(row.get(name)) for name in EXPLAIN_COLUMNS[:-1]]
    except (TypeError, ValueError):
        return None
    if any(value is None for value in values):
        return None
    why = row.get("why") or ""
    return Explanation(*values, why=why if isinstance(why, str) else "")  # type: ignore[arg-type]


def _records(data: bytes, fmt: str, where: Path) -> list[Any]:
    """Parsed rows (dicts, or None for a row of the wrong width), the torn tail dropped."""
    text = data.decode("utf-8", "surrogateescape")
    if fmt == "jsonl":
        records: list[Any] = []
        for line in text.split("\n")[:-1]:  # the last piece is empty, or a torn line
            try:
                records.append(json.loads(line))
            except ValueError:
                break
        return records
    if fmt == "csv":
        parsed = list(csv.reader(io.StringIO(text, newline="")))
        if not data.endswith(b"\n") and parsed:
            parsed = parsed[:-1]
    else:  # tsv: the piece after the last newline is empty, or a torn line
        parsed = [line.split("\t") for line in text.split("\n")[:-1]]
    if not parsed:
        return []
    header, body = parsed[0], parsed[1:]
    if "path" not in header:
        raise InputError(f"{where} has no 'path' column; not written by grmpiqa")
    return [dict(zip(header, cells, strict=True)) if len(cells) == len(header) else None
            for cells in body]


def read_text_rows(path: Path, fmt: str) -> list[ScoreResult]:
    """Complete rows of a file written in ``fmt`` (csv, tsv, jsonl); [] when it is missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"cannot read {path}: {os_error_text(exc)}") from None
    out = []
    for record in _records(data, fmt, path):
        if isinstance(record, dict):  # undo the output's escaping: TSV escapes every cell
            record = {k: unescape_name(v) if isinstance(v, str) and (k == "path" or fmt == "tsv")
                      else v for k, v in record.items()}
        result = row_result(record) if isinstance(record, dict) else None
        if result is None:
            break  # a torn row: nothing after it can be trusted
        out.append(result)
    return out
