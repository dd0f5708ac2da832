"""Photos held in memory (tar members, bytes given to the Ray scorer), decoded like files."""

from __future__ import annotations

import io

from PIL import Image

from grmpiqa.config import DEFAULT_MAX_PIXELS
from grmpiqa.errors import ImageError
from grmpiqa.io.extensions import extension_of
from grmpiqa.io.images import enable_heif, looks_like_heif, open_with_pillow
from grmpiqa.io.inputs import HEIF_EXTENSIONS, RAW_EXTENSIONS


def open_encoded(data: bytes, name: str, *, draft_size: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an encoded photo to an upright RGB image; ``name``'s extension picks RAW/HEIF."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    extension = extension_of(name)
    if extension in RAW_EXTENSIONS:
        from grmpiqa.io.raw import open_raw

        return open_raw(io.BytesIO(data), draft_size=draft_size, max_pixels=max_pixels,
                        open_preview=open_with_pillow)
    if extension in HEIF_EXTENSIONS or looks_like_heif(data[:64]):
        enable_heif()
    return open_with_pillow(io.BytesIO(data), draft_size=draft_size, max_pixels=max_pixels)
