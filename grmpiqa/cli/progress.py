"""Progress on stderr that shares a terminal cleanly with the rows on stdout.

On a terminal the model load shows a spinner, then a bar counts the photos;
per-file messages print above the bar, and when stdout is the same terminal
each row is written with the bar taken down first, so no row is ever glued
to it. The rate is photos scored over the time since scoring began, never an
estimate from a burst of rows that arrived together.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.text import Text


def _rate(task: Any) -> float | None:
    elapsed = task.elapsed
    if not elapsed or not task.completed:
        return None
    return task.completed / elapsed


class RateColumn(ProgressColumn):
    """Photos per second since scoring began, and the time left at that rate."""

    def render(self, task: Any) -> Text:
        rate = _rate(task)
        if rate is None:
            return Text("", style="progress.data.speed")
        left = (task.total - task.completed) / rate if task.total is not None else 0.0
        minutes, seconds = divmod(int(left + 0.5), 60)
        return Text(f"{rate:.1f} img/s  {minutes}:{seconds:02d} left", style="progress.data.speed")


def _is_terminal(stream: IO[Any]) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False


class Reporter:
    """Progress and one-line messages on stderr; no bar when stderr is not a terminal."""

    def __init__(self, total: int, *, quiet: bool, label: str = "scoring",
                 stdout: IO[Any] | None = None) -> None:
        self.quiet = quiet
        self.total = total
        self.label = label
        self.console = Console(file=sys.stderr, highlight=False)
        self.live = not quiet and self.console.is_terminal
        # rows on the same terminal must not land on the bar's line
        self.shares_terminal = self.live and _is_terminal(stdout or sys.stdout)
        self.progress: Progress | None = None
        self.started: float | None = None

    @contextlib.contextmanager
    def loading(self, what: str) -> Iterator[None]:
        """A spinner while the model loads (seconds of nothing otherwise), then its time."""
        if not self.live:
            yield
            return
        start = time.monotonic()
        with self.console.status(f"loading {what}", spinner="dots"):
            yield
        self.console.print(f"grmpiqa: loaded {what} in {time.monotonic() - start:.1f} s",
                           markup=False, highlight=False)

    def __enter__(self) -> Reporter:
        self.started = time.monotonic()
        if self.live:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                RateColumn(), console=self.console, transient=True,
            )
            self.task = self.progress.add_task(self.label, total=self.total)
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is None:
            return
        task = self.progress.tasks[0]
        done, rate = task.completed, _rate(task)
        self.progress.stop()
        self.progress = None
        if done and rate is not None:
            self.console.print(f"grmpiqa: {self.label} done: {int(done)} in "
                               f"{done / rate:.2f} s ({rate:.1f} img/s)", markup=False)

    def advance(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def write_row(self, write: Callable[[], None]) -> None:
        """Run ``write`` (a row to stdout) with the bar taken down when stdout shares its
        terminal, so the row starts on a line of its own."""
        if self.progress is None or not self.shares_terminal:
            write()
            return
        self.progress.stop()
        try:
            write()
        finally:
            self.progress.start()

    def message(self, text: str) -> None:
        """Always one line on stderr, above the bar when there is one."""
        if self.quiet:
            return
        if self.progress is not None:
            self.console.print(f"grmpiqa: {text}", markup=False, soft_wrap=True)
        else:
            print(f"grmpiqa: {text}", file=sys.stderr, flush=True)
