"""A user's quality labels: a CSV of image paths and scores, checked before anything trains.

Everything a spreadsheet may produce is accepted: a UTF-8 byte-order mark,
UTF-16 "Unicode text" exports, CRLF line ends, ``,`` ``;`` or tab delimiters,
quoted paths holding the delimiter, decimal commas in ``;``/tab files, blank
lines. Every problem is collected with its CSV line number so that the user
fixes them all in one go; :class:`LabelsError` lists them. No torch here.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grmpiqa.config import LabelScale
from grmpiqa.errors import GrmpiqaError
from grmpiqa.results import Ratings

IMAGE_COLUMNS = ("path", "image", "file", "filename")
SCORE_COLUMNS = ("score", "mos", "label", "rating")
DELIMITERS = (",", ";", "\t")
MIN_ROWS = 8
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the labels; ``line`` is the CSV line (1 = header), if any."""

    message: str
    line: int | None = None
    #: the library parameter that fixes it (``root``), for the command line to name
    param: str | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


class LabelsError(GrmpiqaError):
    """The labels cannot be used; the message lists every problem found (exit status 2)."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        if count == 1 and self.problems[0].line is None:
            text = f"{source}: {self.problems[0]}"
        else:
            head = f"{source}: {count} problem{'s' if count != 1 else ''} (fix them and run again)"
            text = "\n".join([head, *(f"  {p}" for p in self.problems)])
        super().__init__(text)


@dataclass(frozen=True)
class LabelRow:
    line: int
    image: str  # as written in the CSV
    path: str  # resolved against --root or the CSV's folder
    score: float


@dataclass(frozen=True)
class LabelTable:
    """The usable rows of a labels file and how the file was read."""

    source: str
    rows: tuple[LabelRow, ...]
    image_column: str
    score_column: str
    higher_is_better: bool = True
    problems: tuple[Problem, ...] = field(default=(), compare=False)
    # Rows of a CSV are named by their line; rows read from XMP ratings by their photo.
    numbered: bool = True
    stars: bool = False  # read from XMP star ratings

    @property
    def paths(self) -> list[str]:
        return [row.path for row in self.rows]

    @property
    def scores(self) -> list[float]:
        return [row.score for row in self.rows]

    @property
    def name(self) -> str:
        """The labels' file name, or what they were read from."""
        return Path(self.source).name if self.numbered else self.source

    def scale(self) -> LabelScale:
        scale = label_scale(self.scores, self.higher_is_better)
        if self.higher_is_better and (self.stars or looks_like_stars(self.scores)):
            return LabelScale(scale.low, scale.high, True, stars=True)
        return scale

    def targets(self) -> list[float]:
        """Scores min-max normalised to [0, 1], 1 = best, whatever the scale's direction."""
        return normalise_scores(self.scores, self.scale())


def label_scale(scores: Sequence[float], higher_is_better: bool = True) -> LabelScale:
    """The range of the user's scores and their direction (DMOS: lower is better)."""
    return LabelScale(float(min(scores)), float(max(scores)), higher_is_better)


def looks_like_stars(scores: Sequence[float]) -> bool:
    """Every score a whole number from 0 to 5: star ratings (e.g. a filled ``suggest`` CSV)."""
    return bool(scores) and all(s == int(s) and 0 <= s <= 5 for s in scores)


def normalise_scores(scores: Sequence[float], scale: LabelScale) -> list[float]:
    """Map scores onto [0, 1] with 1 the best quality; the inverse of ``LabelScale.to_label``."""
    span = scale.high - scale.low
    if scale.higher_is_better:
        return [(s - scale.low) / span for s in scores]
    return [(scale.high - s) / span for s in scores]


# ---------------------------------------------------------------------------- reading
def _decode(data: bytes, source: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise LabelsError(source, [Problem("not valid UTF-16 text")]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise LabelsError(source, [Problem(
            f"not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV", line)]) from None


def _records(text: str, delimiter: str):
    """(first line, cells) per non-blank CSV record; a quoted cell may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
    last = 0
    try:
        for cells in reader:
            first, last = last + 1, reader.line_num
            if any(c.strip() for c in cells):
                yield first, cells
    except csv.Error as exc:
        raise LabelsError("", [Problem(f"malformed CSV ({exc})", last + 1)]) from None


@dataclass(frozen=True)
class Column:
    """A column to find in a CSV header: by the name the user gave, else by usual names."""

    kind: str  # what it holds, for messages: "image", "score", "task" ...
    wanted: str | None
    candidates: tuple[str, ...]
    option: str  # the command-line option that names it
    required: bool = True


def _find_column(header: list[str], column: Column) -> tuple[int | None, Problem | None]:
    names = [h.strip().lower() for h in header]
    shown = ", ".join(repr(h.strip()) for h in header)
    if column.wanted is not None:
        key = column.wanted.strip().lower()
        if key not in names:
            return None, Problem(f"no column {column.wanted!r} ({column.option}); the header "
                                 f"has {shown}", 1)
        return names.index(key), None
    found = [i for i, name in enumerate(names) if name in column.candidates]
    if not found:
        if not column.required:
            return None, None
        hint = ""
        if column.kind == "score" and "dmos" in names:
            hint = "; for a DMOS column use --score-column dmos --lower-is-better"
        return None, Problem(
            f"no {column.kind} column: name one {'/'.join(column.candidates)} or give "
            f"{column.option}; the header has {shown}{hint}", 1)
    if len(found) > 1:
        both = " and ".join(repr(header[i].strip()) for i in found)
        return None, Problem(f"columns {both} could both be the {column.kind}; choose with "
                             f"{column.option}", 1)
    return found[0], None


def _choose_delimiter(text: str, columns: Sequence[Column]) -> str:
    """The delimiter under which the header has every required column; else the one
    splitting the header most."""
    first_line = text.lstrip("\r\n").splitlines()[0] if text.strip() else ""
    best, best_fields = ",", 0
    for delimiter in DELIMITERS:
        header = next(csv.reader([first_line], delimiter=delimiter), [])
        if all(_find_column(header, c)[0] is not None for c in columns if c.required):
            return delimiter
        if len(header) > best_fields:
            best, best_fields = delimiter, len(header)
    return best


@dataclass(frozen=True)
class CsvTable:
    """A decoded CSV: its delimiter, header, where each wanted column is, and the records
    with the line each starts on."""

    source: str
    delimiter: str
    header: list[str]
    index: dict[str, int | None]
    records: list[tuple[int, list[str]]]

    def cell(self, cells: list[str], kind: str) -> str:
        i = self.index.get(kind)
        return cells[i] if i is not None and i < len(cells) else ""


def read_table(csv_path: str | os.PathLike[str], columns: Sequence[Column]) -> CsvTable:
    """Read and decode a CSV and find its columns; anything that stops reading altogether
    (no such file, not text, no header, a required column missing) raises LabelsError."""
    source = os.fspath(csv_path)
    try:
        data = Path(source).read_bytes()
    except FileNotFoundError:
        raise LabelsError(source, [Problem("no such file")]) from None
    except IsADirectoryError:
        raise LabelsError(source, [Problem("is a folder; give the CSV file")]) from None
    except OSError as exc:
        raise LabelsError(source, [Problem(f"cannot read ({exc.strerror or exc})")]) from None
    text = _decode(data, source)
    delimiter = _choose_delimiter(text, columns)
    try:
        records = list(_records(text, delimiter))
    except LabelsError as exc:
        raise LabelsError(source, exc.problems) from None
    if not records:
        raise LabelsError(source, [Problem("empty: expected a header and one row per image")])
    header_line, header = records[0]
    index: dict[str, int | None] = {}
    fatal = []
    for column in columns:
        index[column.kind], problem = _find_column(header, column)
        if problem is not None:
            fatal.append(Problem(problem.message, header_line))
    if fatal:
        raise LabelsError(source, fatal)
    return CsvTable(source, delimiter, header, index, records[1:])


def parse_score(cell: str, delimiter: str) -> float:
    """A float; ``3,5`` is read as 3.5 where the comma cannot be the delimiter."""
    text = cell.strip()
    if delimiter != "," and _DECIMAL_COMMA.match(text):
        text = text.replace(",", ".")
    return float(text)


def resolve_image(cell: str, base: Path) -> str:
    path = Path(os.path.expanduser(cell))
    return os.path.normpath(path if path.is_absolute() else base / path)


def read_labels(csv_path: str | os.PathLike[str], *, image_column: str | None = None,
                score_column: str | None = None, root: str | os.PathLike[str] | None = None,
                lower_is_better: bool = False, check_files: bool = True) -> LabelTable:
    """Read a labels CSV; row problems are collected in ``problems`` (their rows left out).

    A problem that stops reading altogether (no such file, no header, no image
    or score column) raises :class:`LabelsError` at once. ``check_files``
    reports images that do not exist; whether they decode is for the caller.
    """
    table = read_table(csv_path, (
        Column("image", image_column, IMAGE_COLUMNS, "--image-column"),
        Column("score", score_column, SCORE_COLUMNS, "--score-column"),
    ))
    source = table.source
    base = Path(root) if root is not None else Path(source).resolve().parent
    problems: list[Problem] = []
    rows: list[LabelRow] = []
    seen: dict[str, int] = {}
    for line, cells in table.records:
        image = table.cell(cells, "image").strip()
        raw = table.cell(cells, "score")
        bad: list[str] = []
        if not image:
            bad.append("no image path")
        score = math.nan
        if not raw.strip():
            bad.append("no score")
        else:
            try:
                score = parse_score(raw, table.delimiter)
            except ValueError:
                bad.append(f"score {raw.strip()!r} is not a number")
            else:
                if not math.isfinite(score):
                    bad.append(f"score {raw.strip()!r} is not a finite number")
        path = resolve_image(image, base) if image else ""
        if path:
            key = os.path.realpath(path)
            if key in seen:
                bad.append(f"image {image!r} is listed twice (also on line {seen[key]})")
            else:
                seen[key] = line
                if check_files and not os.path.isfile(path):
                    exists = os.path.exists(path)
                    bad.append(f"image {image!r} is {'not a file' if exists else 'missing'} "
                               f"({path})")
        if bad:
            problems.extend(Problem(message, line) for message in bad)
        else:
            rows.append(LabelRow(line, image, path, score))
    if table.records and not any(table.cell(c, "score").strip() for _, c in table.records):
        column = table.header[table.index["score"]].strip()
        problems = [p for p in problems if p.message != "no score"]
        problems.append(Problem(f"the {column!r} column is empty on every row: fill it in "
                                "(e.g. 1-5 stars) and run again"))
    if seen and not any(os.path.exists(p) for p in seen):
        # every path misses: the folder they start from is wrong, not the photos (also
        # without check_files, so that nothing loads a model to find this out)
        first = next(iter(seen))
        problems.append(Problem(
            f"none of the {len(seen)} images exist under {base} (the first would be "
            f"{first}): are the paths relative to another folder?", param="root"))
    header = table.header
    return LabelTable(source, tuple(rows), header[table.index["image"]].strip(),
                      header[table.index["score"]].strip(), not lower_is_better,
                      tuple(problems))


def require_usable(table: LabelTable, extra: Sequence[Problem] = (), *,
                   min_rows: int = MIN_ROWS, purpose: str = "adapt") -> LabelTable:
    """Raise one :class:`LabelsError` with every problem, or return the table unchanged.

    ``extra`` are problems found later (images that do not decode); their rows
    no longer count as usable.
    """
    problems = list(table.problems) + list(extra)
    bad_lines = {p.line for p in extra if p.line is not None}
    if not table.numbered:  # the messages name the photos; their positions mean nothing
        problems = [Problem(p.message) for p in problems]
    usable = [row for row in table.rows if row.line not in bad_lines]
    noun, what = ("row", "scores") if table.numbered else ("rated photo", "ratings")
    if len(usable) < min_rows:
        problems.append(Problem(f"only {len(usable)} usable {noun}{'s' if len(usable) != 1 else ''}"
                                f"; {purpose} needs at least {min_rows}"))
    elif len({row.score for row in usable}) == 1:
        problems.append(Problem(f"all {len(usable)} {what} are equal ({usable[0].score:g}): "
                                "there is no quality difference to learn from"))
    if problems:
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise LabelsError(table.source, problems)
    return table


def ratings_table(ratings: Ratings) -> LabelTable:
    """The labelled photos as adapt's label rows; unreadable photos become problems."""
    rows, problems = [], []
    for position, photo in enumerate(ratings.photos, start=1):
        label = ratings.label(photo)
        if photo.error is not None:
            problems.append(Problem(f"{photo.path}: rating cannot be read: {photo.error}"))
        elif label is not None:
            rows.append(LabelRow(position, photo.path, photo.path, float(label)))
    return LabelTable(ratings.source, tuple(rows), "path", "xmp:Rating", True, tuple(problems),
                      numbered=False, stars=True)
