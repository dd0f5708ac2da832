"""Pre-training tasks: one per distortion type, from good photos or from a labelled set.

A task set hands out, for one task and a list of *groups*, the images of those
groups and their labels in [0, 1] (1 = best). A group is what must never be
split between training and evaluation: a source photo (all its distorted
versions) for synthetic tasks, a reference image (``--group-column``) or
a single image for labelled ones. Splits (held-out, support, query) are made
over groups by :mod:`grmpiqa.pretraining.meta`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from grmpiqa.config import PreprocessConfig
from grmpiqa.errors import ImageError, InputError
from grmpiqa.pretraining.distortions import LEVELS, Distortion
from grmpiqa.training.labels import Column, LabelsError, Problem, parse_score, read_table

# Columns tried, in order, when the user names none (KADID-10k's names included).
IMAGE_COLUMNS = ("image", "dist_img", "path", "file", "filename")
LABEL_COLUMNS = ("mos", "dmos", "score", "label", "quality")
TASK_COLUMNS = ("task", "distortion", "noise", "type")
GROUP_COLUMNS = ("group", "ref_img", "reference", "ref")


@dataclass(frozen=True)
class TaskExamples:
    pixels: torch.Tensor  # uint8 (M, 3, R, R): squashed, not yet cropped
    labels: torch.Tensor  # float (M,), 1 = best quality of the task


class TaskSet(Protocol):
    names: tuple[str, ...]
    group_count: int

    def groups_of(self, task: int) -> list[int]: ...

    def count(self, task: int, groups: Sequence[int]) -> int: ...

    def examples(self, task: int, groups: Sequence[int], seed: int) -> TaskExamples: ...

    def describe(self) -> dict[str, Any]: ...


def derived_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def squashed(cfg: PreprocessConfig) -> PreprocessConfig:
    """The preprocessing without the centre crop: training crops at random, like the authors."""
    return replace(cfg, crop=cfg.resize)


def load_photos(paths: Sequence[str], cfg: PreprocessConfig,
                on_failure: Callable[[str, str], None],
                on_done: Callable[[], None] | None = None) -> tuple[list[str], torch.Tensor]:
    """Decode and squash every photo once; unreadable ones are reported and left out."""
    from grmpiqa.io.preprocess import load_pixels

    kept, pixels = [], []
    for path in paths:
        try:
            pixels.append(load_pixels(path, squashed(cfg)))
            kept.append(path)
        except ImageError as exc:
            on_failure(path, str(exc))
        if on_done is not None:
            on_done()
    stacked = torch.stack(pixels) if pixels else torch.empty(0, 3, cfg.resize, cfg.resize,
                                                             dtype=torch.uint8)
    return kept, stacked


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8)


class SyntheticTasks:
    """Good photos x distortion types: level 0 (the photo itself) has label 1, level 5 label 0.

    Labels are the severity min-max normalised over the task: 1 - level / 5. All
    levels of one photo in one draw share the distortion's random draws (noise
    field, direction, cells), so the only thing that changes is the strength.
    """

    def __init__(self, photos: torch.Tensor, distortions: Sequence[Distortion],
                 photo_names: Sequence[str] = ()) -> None:
        if photos.dtype != torch.uint8 or photos.ndim != 4:
            raise ValueError("photos must be uint8 (N, 3, H, W)")
        self.photos = photos
        self.distortions = tuple(distortions)
        self.names = tuple(d.name for d in self.distortions)
        self.group_count = photos.shape[0]
        self.photo_names = tuple(photo_names)

    def groups_of(self, task: int) -> list[int]:
        return list(range(self.group_count))

    def count(self, task: int, groups: Sequence[int]) -> int:
        return (LEVELS + 1) * len(groups)

    def examples(self, task: int, groups: Sequence[int], seed: int) -> TaskExamples:
        base = self.photos[list(groups)].float() / 255.0
        distortion = self.distortions[task]
        images = [self.photos[list(groups)]]
        for level in range(1, LEVELS + 1):
            images.append(to_uint8(distortion(base, level, seed=seed)))
        labels = torch.tensor([1.0 - level / LEVELS for level in range(LEVELS + 1)])
        return TaskExamples(torch.cat(images), labels.repeat_interleave(len(groups)))

    def describe(self) -> dict[str, Any]:
        return {"data": "synthetic distortions", "photos": self.group_count,
                "tasks": list(self.names), "levels": LEVELS,
                "labels": "1 - level/5 (level 0 = the undistorted photo)"}


@dataclass(frozen=True)
class LabelledRow:
    image: str
    score: float
    task: str
    group: str


@dataclass(frozen=True)
class ColumnChoice:
    image: str | None = None
    label: str | None = None
    task: str | None = None
    group: str | None = None


def read_task_labels(path: str | os.PathLike[str],
                     columns: ColumnChoice = ColumnChoice()) -> list[LabelledRow]:
    """Rows of a labelled task CSV: image path, numeric score, task, and group (reference).

    Read like adapt's labels (any spreadsheet export: BOM, UTF-16, ``;`` or tab,
    decimal commas); every bad row is reported with its line, all at once.
    """
    table = read_table(path, (
        Column("image", columns.image, IMAGE_COLUMNS, "--image-column"),
        Column("score", columns.label, LABEL_COLUMNS, "--score-column"),
        Column("task", columns.task, TASK_COLUMNS, "--task-column"),
        Column("group", columns.group, GROUP_COLUMNS, "--group-column", required=False),
    ))
    rows, problems = [], []
    for line, cells in table.records:
        image, task = table.cell(cells, "image").strip(), table.cell(cells, "task").strip()
        raw = table.cell(cells, "score").strip()
        bad = [f"no {what}" for what, value in (("image path", image), ("task", task))
               if not value]
        try:
            score = parse_score(raw, table.delimiter)
            if not math.isfinite(score):
                raise ValueError(raw)
        except ValueError:
            bad.append(f"score {raw!r} is not a number")
        if bad:
            problems.extend(Problem(message, line) for message in bad)
            continue
        group = table.cell(cells, "group").strip()
        rows.append(LabelledRow(image, score, task, group or image))
    if not rows and not problems:
        problems.append(Problem("no rows"))
    if problems:
        raise LabelsError(table.source, problems)
    return rows


def normalised_labels(scores: Sequence[float], higher_is_better: bool) -> list[float]:
    """Min-max to [0, 1] with 1 = best; a task whose labels are all equal cannot teach order."""
    low, high = min(scores), max(scores)
    if high <= low:
        raise ValueError("all labels are equal")
    values = [(s - low) / (high - low) for s in scores]
    return values if higher_is_better else [1.0 - v for v in values]


class LabelledTasks:
    """A real labelled set (e.g. KADID-10k): the rows of one task are its images.

    Labels are min-max normalised within each task, as the authors do.
    """

    def __init__(self, pixels: torch.Tensor, rows: Sequence[LabelledRow],
                 higher_is_better: bool = True) -> None:
        if len(rows) != pixels.shape[0]:
            raise ValueError("one decoded image per row is needed")
        self.pixels = pixels
        self.names = tuple(dict.fromkeys(r.task for r in rows))
        group_ids = {g: i for i, g in enumerate(dict.fromkeys(r.group for r in rows))}
        self.group_count = len(group_ids)
        self.higher_is_better = higher_is_better
        self._rows: list[list[int]] = [[] for _ in self.names]
        self._groups: list[list[int]] = [[] for _ in self.names]
        task_index = {name: i for i, name in enumerate(self.names)}
        for i, row in enumerate(rows):
            t = task_index[row.task]
            self._rows[t].append(i)
            self._groups[t].append(group_ids[row.group])
        labels = torch.zeros(len(rows))
        for t, members in enumerate(self._rows):
            try:
                values = normalised_labels([rows[i].score for i in members], higher_is_better)
            except ValueError:
                raise InputError(f"task {self.names[t]!r}: all its labels are equal") from None
            labels[members] = torch.tensor(values)
        self.labels = labels

    def groups_of(self, task: int) -> list[int]:
        return sorted(set(self._groups[task]))

    def _members(self, task: int, groups: Sequence[int]) -> list[int]:
        wanted = set(groups)
        return [i for i, g in zip(self._rows[task], self._groups[task], strict=True)
                if g in wanted]

    def count(self, task: int, groups: Sequence[int]) -> int:
        return len(self._members(task, groups))

    def examples(self, task: int, groups: Sequence[int], seed: int) -> TaskExamples:
        index = self._members(task, groups)
        return TaskExamples(self.pixels[index], self.labels[index])

    def describe(self) -> dict[str, Any]:
        return {"data": "labelled set", "images": int(self.pixels.shape[0]),
                "groups": self.group_count, "tasks": list(self.names),
                "labels": "min-max normalised per task, 1 = best"
                          + ("" if self.higher_is_better else " (lower scores were better)")}
