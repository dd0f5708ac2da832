"""Which row store an output gets, and what an output already holds.

One store per kind of output, each owning its partial file and its resume:
:class:`~grmpiqa.io.text_store.StreamStore` (standard output),
:class:`~grmpiqa.io.text_store.PlainFileStore` (a table or bare paths in a file),
:class:`~grmpiqa.io.text_store.TextStore` (CSV, TSV, JSON Lines) and
:class:`~grmpiqa.io.parquet.ParquetStore`; :mod:`grmpiqa.io.journal` says what
they share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from grmpiqa.errors import ConfigError
from grmpiqa.identity import ModelIdentity
from grmpiqa.io.atomic import partial_path
from grmpiqa.io.journal import RESUMABLE_FORMATS, RowStore, merged
from grmpiqa.io.rowfiles import TEXT_FORMATS, read_text_rows
from grmpiqa.io.text_store import PlainFileStore, StreamStore, TextStore


def read_done(output: str, fmt: str) -> Callable[[str], bool]:
    """Which paths ``output`` and its partial file hold, read without taking the lock (for
    a process that scores a share of a run another process writes)."""
    if fmt == "parquet":
        from grmpiqa.io.parquet import read_rows, text_path

        stored = {row.path for row in read_rows(output)}
        return lambda path: text_path(path) in stored
    stored = {row.path for row in merged(read_text_rows(Path(output), fmt),
                                         read_text_rows(partial_path(output), fmt))}
    return stored.__contains__


def open_store(output: str | None, fmt: str, columns: Sequence[str],
               output_columns: Sequence[str], *, model: ModelIdentity | None = None,
               resume: bool = False, same_order: bool = True, stream: IO[bytes] | None = None,
               null: bool = False, on_left_out: Callable[[str], None] | None = None
               ) -> RowStore:
    """The store for an output: ``output`` None writes the presented rows to ``stream``.

    ``columns`` are the journal's (every scored row), ``output_columns`` the output's;
    ``same_order`` says the output shows exactly the journal's rows in its order.
    Raises ConfigError for a resume of a format that cannot be resumed, for an output
    another run is writing and for rows of another model; OutputError when the partial
    file cannot be written.
    """
    if resume and (output is None or fmt not in RESUMABLE_FORMATS):
        raise ConfigError(f"needs an output file in {', '.join(RESUMABLE_FORMATS)}, not "
                          f"{'standard output' if output is None else fmt}", param="resume")
    if output is None:
        if stream is None:
            raise ValueError("rows need an output file or a stream")
        return StreamStore(stream, fmt, output_columns, null=null, on_left_out=on_left_out)
    if fmt == "parquet":
        from grmpiqa.io.parquet import ParquetStore

        return ParquetStore(output, columns, output_columns, model=model, resume=resume,
                            same_order=same_order)
    if fmt in TEXT_FORMATS:
        return TextStore(output, fmt, columns, output_columns, model=model, resume=resume,
                         same_order=same_order)
    return PlainFileStore(output, fmt, output_columns, null=null, on_left_out=on_left_out)
