"""The one progress protocol the library reports through; the CLI renders it with rich.

Library functions take ``progress: Progress | None``. ``advance(n)`` counts work
done (images, usually); ``message(text)`` is one human-readable line. Neither
may raise. :data:`SILENT` is what ``None`` means.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress from a long library call."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units of work are done."""

    def message(self, text: str) -> None:
        """One line for the user (a skipped file, an epoch's figures)."""


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass

    def message(self, text: str) -> None:
        pass


SILENT: Progress = _Silent()


def or_silent(progress: Progress | None) -> Progress:
    """``progress``, or a receiver that drops everything when it is ``None``."""
    return SILENT if progress is None else progress
