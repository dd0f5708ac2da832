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
import signal
import sys
import threading
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


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold a Ctrl-C back while rich's live bar is taken down or put back, and deliver it
    after: interrupted halfway, the bar is left half-started and stopping it later fails
    (rich pops a render hook it never pushed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append((number, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(*caught[0])
        elif caught and previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)


def _is_terminal(stream: IO[Any]) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False


class Reporter:
    """Progress and one-line messages on stderr; no bar when stderr is not a terminal.

    It is a :class:`grmpiqa.progress.Progress` receiver: ``begin(what, None)`` shows a
    spinner (loading the model), ``begin(label, total)`` a bar counting the photos.
    """

    def __init__(self, total: int | None = None, *, quiet: bool, label: str = "scoring",
                 stdout: IO[Any] | None = None, rows_show_errors: bool = False) -> None:
        self.quiet = quiet
        self.total = total
        self.label = label
        self.console = Console(file=sys.stderr, highlight=False)
        self.live = not quiet and self.console.is_terminal
        # rows on the same terminal must not land on the bar's line
        self.shares_terminal = self.live and _is_terminal(stdout or sys.stdout)
        # a table on this terminal shows each error in its row: no second line for it
        self.errors_in_rows = rows_show_errors and _is_terminal(stdout or sys.stdout)
        self.progress: Progress | None = None
        self.spinner: Any = None
        self.loading_what: str | None = None
        self.loading_since = 0.0

    @contextlib.contextmanager
    def loading(self, what: str) -> Iterator[None]:
        """A spinner while the model loads (seconds of nothing otherwise), then its time."""
        self.begin(f"loading {what}", None)
        try:
            yield
        finally:
            self._end_spinner()

    def begin(self, what: str, total: int | None) -> None:
        """A phase: a spinner for one of unknown length, else the bar over ``total``."""
        self._end_spinner()
        if total is None:
            if self.live:
                self.loading_what, self.loading_since = what, time.monotonic()
                self.spinner = self.console.status(what, spinner="dots")
                with _ctrl_c_held():
                    self.spinner.start()
            return
        self.label, self.total = what, total
        self._start_bar()

    def _end_spinner(self) -> None:
        if self.spinner is None:
            return
        with _ctrl_c_held():
            self.spinner.stop()
            self.spinner = None
        what = (self.loading_what or "").removeprefix("loading ")
        self.console.print(f"grmpiqa: loaded {what} in "
                           f"{time.monotonic() - self.loading_since:.1f} s",
                           markup=False, highlight=False)

    def _start_bar(self) -> None:
        if self.live and self.progress is None:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                RateColumn(), console=self.console, transient=True,
            )
            self.task = self.progress.add_task(self.label, total=self.total)
            with _ctrl_c_held():
                self.progress.start()

    def __enter__(self) -> Reporter:
        if self.total is not None:
            self._start_bar()
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.close(interrupted=kind is not None and issubclass(kind, KeyboardInterrupt))

    def close(self, interrupted: bool = False) -> None:
        """Take the bar down; say how long the work took unless it was interrupted."""
        self._end_spinner()
        if self.progress is None:
            return
        task = self.progress.tasks[0]
        done, rate = task.completed, _rate(task)
        with _ctrl_c_held():
            self.progress.stop()
            self.progress = None
        if done and rate is not None and not interrupted:
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
        with _ctrl_c_held():
            self.progress.stop()
        try:
            write()
        finally:
            with _ctrl_c_held():
                self.progress.start()

    def rows_to(self, stream: IO[bytes]) -> IO[bytes]:
        """``stream`` for rows: each write takes the bar down first when they share a
        terminal."""
        return _BarSafeStream(stream, self) if self.shares_terminal else stream

    def message(self, text: str) -> None:
        """Always one line on stderr, above the bar when there is one."""
        if self.quiet:
            return
        if self.progress is not None:
            self.console.print(f"grmpiqa: {text}", markup=False, soft_wrap=True)
        else:
            print(f"grmpiqa: {text}", file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        """A warning: shown also with --quiet."""
        if self.progress is not None:
            self.console.print(f"grmpiqa: warning: {text}", markup=False, soft_wrap=True)
        else:
            print(f"grmpiqa: warning: {text}", file=sys.stderr, flush=True)

    def failed(self, path: str, error: str) -> None:
        """One file failed: a line, unless its row on this terminal already says so."""
        if not self.errors_in_rows:
            from grmpiqa.io.output import display_path

            self.message(f"{display_path(path)}: {error}")


class _BarSafeStream:
    """A binary stream whose writes happen with the progress bar taken down."""

    def __init__(self, stream: IO[bytes], reporter: Reporter) -> None:
        self.stream, self.reporter = stream, reporter

    def write(self, data: bytes) -> int:
        written = 0

        def write() -> None:
            nonlocal written
            written = self.stream.write(data)
            self.stream.flush()

        self.reporter.write_row(write)
        return written

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
