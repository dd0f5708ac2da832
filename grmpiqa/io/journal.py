"""What every row store shares: the lock on its partial file, the resume check, merging.

A row store (one per output: :mod:`grmpiqa.io.text_store`, :mod:`grmpiqa.io.parquet`)
takes two streams of rows. :meth:`RowStore.journal` gets each row the moment
it is scored (written through at once, so a crash keeps it), and
:meth:`RowStore.present` the rows the output shows, in the order it shows them
(the same rows in the same order, unless rows are sorted, filtered or
grouped). :meth:`RowStore.commit` makes the output complete;
:meth:`RowStore.keep` ends a run that failed, leaving the journal for a
resumed run. A run holds a lock on its journal, so a second run writing the
same output refuses at once instead of mixing rows in. Rows carry the key of
the model that scored them; a resumed run refuses rows of another model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from grmpiqa.errors import ConfigError, OutputError, os_error_text
from grmpiqa.identity import ModelIdentity, difference
from grmpiqa.io.output import display_path
from grmpiqa.io.rowfiles import TEXT_FORMATS
from grmpiqa.results import ScoreResult

RESUMABLE_FORMATS = (*TEXT_FORMATS, "parquet")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is trusted
    fcntl = None  # type: ignore[assignment]


class RowStore(Protocol):
    carried: list[ScoreResult]  # rows an earlier run wrote (resume), in the order written
    notes: list[str]  # things worth telling the user (an output that names no model)

    def is_done(self, path: str) -> bool: ...
    def journal(self, row: ScoreResult) -> None: ...
    def present(self, row: ScoreResult) -> None: ...
    def commit(self) -> None: ...
    def keep(self) -> None: ...


def lock(fd: int, shown: str) -> None:
    """Hold ``fd`` exclusively while this process lives; refuse if another run holds it."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ConfigError(f"{shown} is being written by another grmpiqa run right now; let it "
                          "finish, or write to another file", param="output") from None
    except OSError:
        pass  # a file system without locks (some network mounts): one writer is trusted


def check_carried(rows: Sequence[ScoreResult], model: ModelIdentity | None, shown: str
                  ) -> list[str]:
    """Refuse rows another model scored; notes for rows that name no model at all."""
    if model is None:
        return []
    for row in rows:
        if row.model is not None and row.model != model.key:
            raise ConfigError(
                f"{shown} holds rows scored by another model ({difference(row.model, model)}); "
                "its rows would not compare with this run's: write to another file, or "
                "score with the model and settings that wrote it", param="resume")
    unnamed = sum(row.model is None for row in rows)
    return [f"{shown}: {unnamed} rows name no model (written by an older grmpiqa); "
            "assuming they are this model's"] if unnamed else []


def merged(*sources: Iterable[ScoreResult]) -> list[ScoreResult]:
    """Each path once, first seen first."""
    seen: dict[str, ScoreResult] = {}
    for rows in sources:
        for row in rows:
            seen.setdefault(row.path, row)
    return list(seen.values())


def output_error(exc: OSError, where: Path | str, partial: Path | None, kept: int
                  ) -> OutputError:
    keeps = f"; the {kept} rows written so far are kept in {display_path(str(partial))}" \
        if partial is not None and kept else ""
    return OutputError(f"cannot write {display_path(str(where))} ({os_error_text(exc)})"
                       + keeps, partial=str(partial) if partial else None, kept=kept)
