"""Exceptions the command line turns into one clean line on stderr.

Every error a user can cause (bad file, bad manifest, missing weights) is a
:class:`GrmpiqaError`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GrmpiqaError(Exception):
    """A user-facing error: the message alone must say what went wrong and where."""

    exit_code = 2


class ConfigError(GrmpiqaError):
    """Bad options, unknown model names, unusable devices."""


class ManifestError(GrmpiqaError):
    """The weights manifest is malformed or names something impossible."""


class WeightsError(GrmpiqaError):
    """A weights file is missing, corrupt, tampered with or of the wrong layout."""


class InputError(GrmpiqaError):
    """An input path or list that cannot be used at all."""


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
