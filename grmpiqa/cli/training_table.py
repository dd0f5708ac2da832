"""The live training table of ``grmpiqa adapt`` on stderr: one row per evaluation.

On a terminal it is a rich table that grows as training goes, with an epoch
bar under it; elsewhere (a log file, CI) each evaluation is one plain line.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.training.finetune import EvaluationRecord

SHOWN_ROWS = 15


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``: an estimate, so two digits at most."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_line(info: dict[str, Any]) -> str:
    """The one line after the first epoch: measured time, fewest and most epochs left."""
    per = info["seconds_per_epoch"]
    fewest, most = info["fewest_left"], info["most_left"]
    line = (f"epoch {info['epoch']} took {per:.1f} s here: at least {fewest} more "
            f"epoch{'s' if fewest != 1 else ''} (about {duration(fewest * per)}) before the "
            "schedule can stop")
    if most > fewest:
        line += f", at most {most} (about {duration(most * per)})"
    return line + "; the estimate is updated on the bar"


class TrainingDisplay:
    def __init__(self, epochs: int, *, quiet: bool) -> None:
        self.quiet = quiet
        self.estimate: dict[str, Any] | None = None
        self.console = Console(file=sys.stderr, highlight=False)
        self.records: list[EvaluationRecord] = []
        self.live: Live | None = None
        self.progress: Progress | None = None
        self.started = False
        if not quiet and self.console.is_terminal:
            self.progress = Progress(
                TextColumn("epoch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"), TextColumn("{task.fields[loss]}"),
                console=self.console)
            self.task = self.progress.add_task("train", total=epochs, loss="", eta="")
            self.live = Live(self._render(), console=self.console, refresh_per_second=2,
                             transient=False)

    def __enter__(self) -> TrainingDisplay:
        if self.live is not None and not self.started:
            self.live.start()
        self.started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None and self.started:
            self.started = False
            if self.progress is not None:
                self.progress.stop()
            self.live.update(self._table(), refresh=True)
            self.live.stop()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self.live is not None:
            self.live.console.print(f"grmpiqa: {text}", markup=False, soft_wrap=True)
        else:
            print(f"grmpiqa: {text}", file=sys.stderr, flush=True)

    def on_epoch(self, epoch: int, loss: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=epoch, loss=f"loss {loss:.4f}")

    def on_progress(self, info: dict[str, Any]) -> None:
        """The measured time per epoch: one line the first time, then the bar's ETA."""
        first = self.estimate is None
        self.estimate = info
        if first:
            self.message(estimate_line(info))
        if self.progress is not None:
            self.progress.update(self.task, total=info["epoch"] + info["fewest_left"],
                                 eta=self._eta())

    def _eta(self) -> str:
        info = self.estimate
        if info is None:
            return ""
        return f"ETA >= {duration(info['fewest_left'] * info['seconds_per_epoch'])}"

    def on_evaluation(self, record: EvaluationRecord) -> None:
        self.records.append(record)
        if self.quiet:
            return
        if self.live is not None:
            if self.progress is not None:
                self.progress.update(self.task, completed=record.epoch)
            self.live.update(self._render())
            return
        mark = "  best" if record.best else ""
        print(f"grmpiqa: epoch {record.epoch:>5}  loss {_num(record.loss)}  "
              f"val SRCC {_num(record.val_srcc)}  val PLCC {_num(record.val_plcc)}  "
              f"lr {record.lr:.3g}{mark}{'  ' + self._eta() if self.estimate else ''}",
              file=sys.stderr, flush=True)

    def _table(self) -> Table:
        table = Table(title="grmpiqa adapt", title_justify="left", box=None, pad_edge=False)
        for name in ("epoch", "loss", "val SRCC", "val PLCC", "lr", ""):
            table.add_column(name, justify="right" if name else "left")
        hidden = max(0, len(self.records) - SHOWN_ROWS)
        if hidden:
            table.add_row("...", f"({hidden} earlier)", "", "", "", "")
        for r in self.records[hidden:]:
            table.add_row(str(r.epoch), _num(r.loss), _num(r.val_srcc), _num(r.val_plcc),
                          f"{r.lr:.3g}", "best" if r.best else "",
                          style="bold" if r.best else None)
        return table

    def _render(self) -> Group:
        parts: list[Any] = [self._table()]
        if self.progress is not None:
            parts.append(self.progress)
        return Group(*parts)
