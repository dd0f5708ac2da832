"""The one rule for a file's extension, shared by listing, decoding, culling and sidecars."""

from __future__ import annotations

import os


def extension_of(path: str) -> str:
    """Lower-case extension of the file name without its dot: ``IMG_1.JPG`` -> ``jpg``.

    As :func:`os.path.splitext`: leading dots do not start an extension, so
    ``.hidden`` and ``..jpg`` have none, and a folder's dots never count.
    """
    return os.path.splitext(os.path.basename(path))[1][1:].lower()
