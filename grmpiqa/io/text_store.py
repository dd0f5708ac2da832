"""Row stores for text: a stream (stdout), a plain file (table, paths) and resumable
CSV, TSV and JSON Lines files (see :mod:`grmpiqa.io.journal` for what a store does).

A file ``FILE`` grows as ``FILE.part`` (the journal), locked while a run writes it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from grmpiqa.identity import ModelIdentity
from grmpiqa.io.atomic import file_mode_for, partial_path
from grmpiqa.io.journal import check_carried, lock, merged, output_error
from grmpiqa.io.output import display_path, make_writer
from grmpiqa.io.rowfiles import TEXT_FORMATS, read_text_rows
from grmpiqa.results import ScoreResult


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
