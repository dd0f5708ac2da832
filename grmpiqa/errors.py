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
