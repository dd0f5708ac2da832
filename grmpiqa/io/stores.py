"""Where score rows go: one store per output, each owning its partial file and its resume.

Every store takes two streams of rows: :meth:`journal` gets each row the
moment it is scored (written through at once, so a crash keeps it), and
:meth:`present` the rows the output shows, in the order it shows them (the
same rows in the same order, unless rows are sorted, filtered or grouped).
:meth:`commit` makes the output complete; :meth:`keep` ends a run that
failed, leaving the journal for a resumed run.

A file ``FILE`` grows as ``FILE.part`` (the journal), locked while a run
writes it so that a second run refuses at once instead of mixing rows in.
Parquet keeps its journal as part files in a ``FILE.part/`` folder
(:mod:`grmpiqa.io.parquet`). Rows carry the key of the model that scored
them; a resumed run refuses rows of another model.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Protocol

from grmpiqa.errors import ConfigError, OutputError, os_error_text
from grmpiqa.identity import ModelIdentity, difference
from grmpiqa.io.atomic import file_mode_for, partial_path
from grmpiqa.io.output import display_path, make_writer
from grmpiqa.io.rowfiles import TEXT_FORMATS, read_text_rows
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


class StreamStore:
    """Rows on a stream (stdout): only the presented rows, as they come; nothing to resume."""

    def __init__(self, stream: IO[bytes], fmt: str, columns: Sequence[str], *,
                 null: bool = False, on_left_out: Callable[[str], None] | None = None,
                 name: str = "standard output") -> None:
        self.carried: list[ScoreResult] = []
        self.notes: list[str] = []
        self.stream, self.name = stream, name
        self.writer = make_writer(fmt, stream, columns, null=null, on_left_out=on_left_out)

    @property
    def left_out(self) -> int:
        return getattr(self.writer, "left_out", 0)

    def is_done(self, path: str) -> bool:
        return False

    def journal(self, row: ScoreResult) -> None:
        pass

    def present(self, row: ScoreResult) -> None:
        try:
            self.writer.write(row)
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise output_error(exc, self.name, None, 0) from None

    def commit(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.writer.close()

    def keep(self) -> None:
        self.commit()


class _TextFile:
    """One text output file being written: its stream and row writer, written through."""

    def __init__(self, fd: int, path: Path, fmt: str, columns: Sequence[str]) -> None:
        self.path = path
        self.stream: IO[bytes] = os.fdopen(fd, "wb")
        self.writer = make_writer(fmt, self.stream, columns)
        self.rows = 0
        self.stream.flush()

    def write(self, row: ScoreResult) -> None:
        self.writer.write(row)
        self.stream.flush()
        self.rows += 1

    def finish(self) -> None:
        """Everything on disk (the caller renames it into place)."""
        self.writer.close()
        self.stream.flush()
        os.fsync(self.stream.fileno())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()


def _temporary(beside: Path, mode: int) -> tuple[int, Path]:
    fd, name = tempfile.mkstemp(prefix=f".{beside.name}.", suffix=".tmp",
                                dir=beside.parent if str(beside.parent) else ".")
    with contextlib.suppress(OSError):
        os.fchmod(fd, mode)  # exactly the final file's mode, whatever the umask
    return fd, Path(name)


class TextStore:
    """``FILE`` in CSV, TSV or JSON Lines, growing as the locked journal ``FILE.part``.

    Opening takes the lock on ``FILE.part``, then writes a fresh journal (holding
    the resumed rows, read from ``FILE`` and the old ``FILE.part``) under a
    temporary name and renames it over the old one, so a kill at any moment
    leaves every complete row on disk. When the output is the journal itself
    (``same_order``), :meth:`commit` renames it to ``FILE``; otherwise the
    presented rows go to a temporary file that becomes ``FILE``.
    """

    def __init__(self, path: str | os.PathLike[str], fmt: str, columns: Sequence[str],
                 output_columns: Sequence[str], *, model: ModelIdentity | None = None,
                 resume: bool = False, same_order: bool = True) -> None:
        if fmt not in TEXT_FORMATS:
            raise ValueError(f"a text store writes {', '.join(TEXT_FORMATS)}, not {fmt}")
        self.path, self.part, self.fmt = Path(path), partial_path(path), fmt
        self.output_columns = list(output_columns)
        self.same_order = same_order and list(columns) == self.output_columns
        self.mode = file_mode_for(self.path)
        self.final: _TextFile | None = None
        shown = display_path(str(self.path))
        existed = self.part.exists()
        try:
            old = self._locked_journal(shown)
        except OSError as exc:
            raise output_error(exc, self.part, None, 0) from None
        try:
            self.carried = merged(read_text_rows(self.path, fmt),
                                  read_text_rows(self.part, fmt)) if resume else []
            self.notes = check_carried(self.carried, model, shown)
            self.done = {row.path for row in self.carried}
            self.file = self._fresh_journal(columns)
        except BaseException as exc:
            if not existed:  # refused: leave no empty partial file behind
                with contextlib.suppress(OSError):
                    os.unlink(self.part)
            if isinstance(exc, OSError):
                raise output_error(exc, self.part, None, 0) from None
            raise
        finally:
            os.close(old)

    def _locked_journal(self, shown: str) -> int:
        """The current ``FILE.part``, created if absent, locked by this run."""
        while True:
            fd = os.open(self.part, os.O_RDWR | os.O_CREAT, self.mode)
            try:
                lock(fd, shown)
                if os.fstat(fd).st_ino == os.stat(self.part).st_ino:
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # another run renamed a new journal into place meanwhile: look again

    def _fresh_journal(self, columns: Sequence[str]) -> _TextFile:
        fd, tmp = _temporary(self.part, self.mode)
        try:
            lock(fd, display_path(str(self.path)))
            file = _TextFile(fd, self.part, self.fmt, columns)
            for row in self.carried:
                file.write(row)
            file.stream.flush()
            os.fsync(fd)
            os.replace(tmp, self.part)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return file

    def is_done(self, path: str) -> bool:
        return path in self.done

    def journal(self, row: ScoreResult) -> None:
        try:
            self.file.write(row)
        except OSError as exc:
            raise output_error(exc, self.part, self.part, self.file.rows) from None

    def present(self, row: ScoreResult) -> None:
        if self.same_order:
            return
        try:
            if self.final is None:
                fd, tmp = _temporary(self.path, self.mode)
                self.final = _TextFile(fd, tmp, self.fmt, self.output_columns)
            self.final.write(row)
        except OSError as exc:
            raise output_error(exc, self.path, self.part, self.file.rows) from None

    def commit(self) -> None:
        """The output becomes ``FILE`` (also after an interrupt: the rows so far)."""
        try:
            if self.same_order:
                self.file.finish()
                os.replace(self.part, self.path)
            else:
                if self.final is None:
                    fd, tmp = _temporary(self.path, self.mode)
                    self.final = _TextFile(fd, tmp, self.fmt, self.output_columns)
                self.final.finish()
                os.replace(self.final.path, self.path)
                self.final.close()
                self.final = None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.part)
        except OSError as exc:
            self.keep()
            raise output_error(exc, self.path, self.part, self.file.rows) from None
        finally:
            self.file.close()

    def keep(self) -> None:
        """A failed run: ``FILE`` stays as it was; the journal stays for a resumed run,
        unless it holds no row at all."""
        if self.final is not None:
            self.final.close()
            with contextlib.suppress(OSError):
                os.unlink(self.final.path)
            self.final = None
        with contextlib.suppress(OSError):
            self.file.stream.flush()
            os.fsync(self.file.stream.fileno())
        if not self.file.rows:
            with contextlib.suppress(OSError):
                os.unlink(self.part)
        self.file.close()


class PlainFileStore(StreamStore):
    """A table or bare paths in a file: the presented rows into the locked ``FILE.part``,
    renamed to ``FILE`` at the end; such a file cannot be resumed."""

    def __init__(self, path: str | os.PathLike[str], fmt: str, columns: Sequence[str], *,
                 null: bool = False, on_left_out: Callable[[str], None] | None = None) -> None:
        self.path, self.part = Path(path), partial_path(path)
        mode = file_mode_for(self.path)
        try:
            fd = os.open(self.part, os.O_WRONLY | os.O_CREAT, mode)
            lock(fd, display_path(str(self.path)))
            os.ftruncate(fd, 0)
            with contextlib.suppress(OSError):
                os.fchmod(fd, mode)
        except OSError as exc:
            raise output_error(exc, self.part, None, 0) from None
        super().__init__(os.fdopen(fd, "wb"), fmt, columns, null=null, on_left_out=on_left_out,
                         name=str(self.part))

    def commit(self) -> None:
        try:
            self.writer.close()
            self.stream.flush()
            os.fsync(self.stream.fileno())
            os.replace(self.part, self.path)
        except OSError as exc:
            self.keep()
            raise output_error(exc, self.path, None, 0) from None
        finally:
            with contextlib.suppress(OSError):
                self.stream.close()

    def keep(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        with contextlib.suppress(OSError):
            os.unlink(self.part)


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
