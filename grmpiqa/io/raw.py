"""Camera RAW files (CR2, NEF, ARW, DNG, ...) through rawpy (LibRaw), the ``raw`` extra.

The model looks at a 244-pixel squash of the photo, so a full demosaic would
be wasted work: the camera's embedded JPEG preview is used when its shorter
side reaches ``draft_size`` (the size JPEGs are draft-decoded to), otherwise
a half-size demosaic with the camera's white balance. Either way the photo is
turned upright the way the camera recorded it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import IO, Any

import numpy as np
from PIL import Image

from grmpiqa.config import DEFAULT_MAX_PIXELS
from grmpiqa.errors import ImageError, describe, needs_extra_message

# draft_size when the caller gives none: twice the default model's 244-pixel squash
DEFAULT_PREVIEW_MIN_SIDE = 488
# LibRaw's ``sizes.flip`` -> the transpose that makes the image upright
_FLIP = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90,
         6: Image.Transpose.ROTATE_270}


def _import_rawpy() -> Any:
    try:
        import rawpy
    except ImportError:
        raise ImageError(needs_extra_message("camera RAW", "raw")) from None
    return rawpy


def open_raw(source: str | IO[bytes], *, draft_size: int | None = None,
             max_pixels: int = DEFAULT_MAX_PIXELS,
             open_preview: Callable[..., Image.Image] | None = None) -> Image.Image:
    """Decode a camera RAW file (a path or an in-memory file) to an upright RGB image
    (preview or half-size demosaic).

    ``open_preview(file, draft_size=, max_pixels=)`` decodes an embedded JPEG preview
    (:func:`grmpiqa.io.images.open_with_pillow`, passed in by ``open_image`` so that this
    module does not import it back); without it the RAW data is always demosaiced.
    """
    rawpy = _import_rawpy()
    min_side = draft_size or DEFAULT_PREVIEW_MIN_SIDE
    try:
        # A file object, not the path: LibRaw cannot open names that are not valid UTF-8.
        opened = open(source, "rb") if isinstance(source, str) \
            else contextlib.nullcontext(source)  # noqa: SIM115 (closed by the with below)
        with opened as handle, rawpy.imread(handle) as raw:
            sizes = raw.sizes
            if sizes.raw_width * sizes.raw_height > max_pixels:
                raise ImageError(
                    f"RAW sensor {sizes.raw_width}x{sizes.raw_height} is over the limit of "
                    f"{max_pixels:,} pixels; raise the pixel limit (max_pixels) if you trust "
                    "this file")
            preview = None if open_preview is None else \
                _embedded_preview(raw, rawpy, min_side, max_pixels, open_preview)
            if preview is not None:
                image, upright = preview
                return image if upright else _turn_upright(image, sizes.flip)
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    except ImageError:
        raise
    except PermissionError:
        raise ImageError("permission denied") from None
    except rawpy.LibRawFileUnsupportedError:
        raise ImageError("not a camera RAW file LibRaw can read (unknown or corrupt format)"
                         ) from None
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise ImageError(f"cannot decode RAW ({describe(exc)})") from None
    except MemoryError:
        raise ImageError("out of memory while demosaicing") from None
    return Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")


def _embedded_preview(raw: Any, rawpy: Any, min_side: int, max_pixels: int,
                      open_preview: Callable[..., Image.Image]
                      ) -> tuple[Image.Image, bool] | None:
    """The camera's preview if its shorter side is at least ``min_side``, else None.

    Also says whether the preview is upright already (its own EXIF orientation
    was applied); otherwise the RAW's orientation applies to it.
    """
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, OSError, ValueError):
        return None  # no preview, or one LibRaw cannot unpack: demosaic instead
    if thumb.format == rawpy.ThumbFormat.BITMAP:
        array = np.asarray(thumb.data)
        if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < min_side:
            return None
        return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB"), False
    if thumb.format != rawpy.ThumbFormat.JPEG:
        return None
    try:
        with Image.open(io.BytesIO(thumb.data)) as probe:
            if min(probe.size) < min_side:
                return None
            upright = probe.getexif().get(0x0112, 1) != 1
        image = open_preview(io.BytesIO(thumb.data), draft_size=min_side,
                                 max_pixels=max_pixels)
    except Exception:
        return None  # a broken preview is no reason to give up on the RAW data
    return image, upright


def _turn_upright(image: Image.Image, flip: int) -> Image.Image:
    transpose = _FLIP.get(flip)
    return image.transpose(transpose) if transpose is not None else image
