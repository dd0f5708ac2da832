"""The one progress protocol the library reports through; the CLI renders it with rich.

Library functions take ``progress: Progress | None``. ``advance(n)`` counts work
done (images, usually); ``message(text)`` is one human-readable line. A
receiver may also have ``begin(what, total)`` (a new phase: ``total`` units, or
None for one of unknown length such as loading the model), ``warn(text)`` (a
warning worth showing even when per-file messages are not wanted) and
``failed(path, error)`` (one file could not be processed). None of them may
raise. :func:`or_silent` fills in what a receiver lacks.
"""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    """Receives progress from a long library call."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units of work are done."""

    def message(self, text: str) -> None:
        """One line for the user (a skipped file, an epoch's figures)."""


class Reporting:
    """A receiver with every method, passing each to ``receiver`` where it has it."""

    def __init__(self, receiver: Any = None) -> None:
        self.receiver = receiver

    def advance(self, n: int = 1) -> None:
        if self.receiver is not None:
            self.receiver.advance(n)

    def message(self, text: str) -> None:
        if self.receiver is not None:
            self.receiver.message(text)

    def begin(self, what: str, total: int | None = None) -> None:
        begin = getattr(self.receiver, "begin", None)
        if begin is not None:
            begin(what, total)

    def warn(self, text: str) -> None:
        warn = getattr(self.receiver, "warn", None)
        if warn is not None:
            warn(text)
        else:
            self.message(f"warning: {text}")

    def failed(self, path: str, error: str) -> None:
        failed = getattr(self.receiver, "failed", None)
        if failed is not None:
            failed(path, error)
        else:
            from grmpiqa.io.output import display_path

            self.message(f"{display_path(path)}: {error}")


SILENT: Progress = Reporting()


def or_silent(progress: Progress | None) -> Reporting:
    """``progress`` with every method of the protocol (those it lacks do the obvious thing,
    or nothing when ``progress`` is None)."""
    return progress if isinstance(progress, Reporting) else Reporting(progress)
