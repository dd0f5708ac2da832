"""Exceptions the command line turns into one clean line on stderr.

Every error a user can cause (bad file, bad manifest, missing weights) is a
:class:`GrmpiqaError`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class GrmpiqaError(Exception):
    """A user-facing error: the message alone must say what went wrong and where.

    ``param`` names the library parameter at fault (``output``, ``shard``, ...); the
    message then reads after it (``output`` + ``scores.jpg: .jpg is a photo's
    extension``), and the command line puts its own option name in its place.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    @property
    def detail(self) -> str:
        """The message without the parameter's name."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return f"{self.param} {self.detail}" if self.param else self.detail


class ConfigError(GrmpiqaError):
    """Bad options, unknown model names, unusable devices."""


class ManifestError(GrmpiqaError):
    """The weights manifest is malformed or names something impossible."""


class WeightsError(GrmpiqaError):
    """A weights file is missing, corrupt, tampered with or of the wrong layout."""


class WeightsUnavailable(WeightsError):
    """Files a model needs are not in the local Hub cache and cannot be downloaded now.

    ``files`` are (label, size in bytes or None) pairs; ``reason`` says why nothing can be
    downloaded (offline mode, the Hub unreachable); ``model`` names the model when known.
    The message ends with how to fetch the files: ``fetch_hint`` (the Python call by
    default; the command line puts its own command there).
    """

    def __init__(self, files: list[tuple[str, int | None]], reason: str, cache: str, *,
                 offline: bool = False, model: str | None = None) -> None:
        self.files, self.reason, self.cache = list(files), reason, cache
        self.offline, self.model = offline, model
        super().__init__(self.message())

    def for_model(self, model: str, files: list[Any]) -> WeightsUnavailable:
        """The same error, naming ``model`` and every file of it (HubFiles) still missing."""
        listed = [(f.label, f.size) for f in files] or self.files
        return WeightsUnavailable(listed, self.reason, self.cache, offline=self.offline,
                                  model=model)

    def message(self, fetch_hint: str | None = None) -> str:
        """The whole message; ``fetch_hint`` says how to fetch the files (``""``: say nothing
        about it)."""
        names = ", ".join(f"{label} ({format_size(size)})" if size else label
                          for label, size in self.files)
        verb = "is" if len(self.files) == 1 else "are"
        where = f"not in the Hugging Face cache {self.cache}; {self.reason}"
        text = f"{self.model} needs {names}, which {verb} {where}" if self.model \
            else f"{names} {verb} {where}"
        if fetch_hint == "":
            return text
        if fetch_hint is None:
            fetch_hint = f"grmpiqa.download_model({self.model or 'NAME'!r})"
        if self.offline:
            return f"{text}. Unset HF_HUB_OFFLINE where the Hub can be reached and fetch it " \
                   f"with {fetch_hint}, or copy that cache from a machine that has it"
        return f"{text}. Fetch it while online with {fetch_hint}; then HF_HUB_OFFLINE=1 " \
               "uses the cache without asking the Hub"


class InputError(GrmpiqaError):
    """An input path or list that cannot be used at all."""


class OutputError(GrmpiqaError):
    """An output cannot be written (disk full, read-only file system, I/O error,
    permission). ``partial`` is the partial file that keeps the rows written so far
    (``kept`` of them) for a resumed run, when there is one."""

    exit_code = 4

    def __init__(self, message: str, *, param: str | None = None, partial: str | None = None,
                 kept: int = 0) -> None:
        super().__init__(message, param=param)
        self.partial = partial
        self.kept = kept


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM after saving what it had: ``run`` says what
    (a :class:`grmpiqa.results.ScoreRun`), ``cause`` is the interrupt itself."""

    def __init__(self, run: object, cause: BaseException) -> None:
        super().__init__("interrupted")
        self.run = run
        self.cause = cause


def os_error_text(exc: OSError) -> str:
    """``No space left on device``: the reason of an OS error, without its file name."""
    return exc.strerror or first_line(exc)


class ImageError(GrmpiqaError):
    """One image cannot be scored; the run goes on without it."""


class XmpError(GrmpiqaError):
    """One photo's XMP (a sidecar, or the packet inside it) cannot be read or written; the
    run goes on without it."""

    exit_code = 1


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message (bytes decoded), for a one-line error;
    ``default`` (else the exception's type name) when the message is empty."""
    text = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], bytes) else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if default is None else default


def describe(exc: BaseException) -> str:
    """``Type: first line`` (or just ``Type``): what went wrong inside a library call."""
    text = first_line(exc, "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def needs_extra_message(kind: str, extra: str) -> str:
    return f"{kind} files need the optional extra: pip install 'grmpiqa[{extra}]'"


def format_size(size: int) -> str:
    """Bytes in decimal units, as the Hub shows them: ``605.0 MB``."""
    if size < 1000:
        return f"{size} B"
    value = size / 1000
    for unit in ("kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
