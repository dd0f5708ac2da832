"""A rich progress bar on stderr that per-file messages can print above."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f} img/s", style="progress.data.speed")


class Reporter:
    """Progress and one-line messages on stderr; a no-op bar when stderr is not a terminal."""

    def __init__(self, total: int, *, quiet: bool, label: str = "scoring") -> None:
        self.quiet = quiet
        self.console = Console(file=sys.stderr, highlight=False)
        self.progress: Progress | None = None
        if not quiet and self.console.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                RateColumn(), TimeRemainingColumn(), console=self.console, transient=True,
            )
            self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> Reporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def advance(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def message(self, text: str) -> None:
        """Always one line on stderr, above the bar when there is one."""
        if self.quiet:
            return
        if self.progress is not None:
            self.console.print(f"grmpiqa: {text}", markup=False, soft_wrap=True)
        else:
            print(f"grmpiqa: {text}", file=sys.stderr, flush=True)
