"""Open any photo a disk may hold as an upright RGB image, or say clearly why not.

Every failure becomes an :class:`ImageError` whose message names the problem;
the caller adds the path. Nothing here may hang (FIFOs are refused before they
are opened) or decode more pixels than the caller allows. HEIC/HEIF (extra
``heif``: pillow-heif) and camera RAW (extra ``raw``: rawpy) are optional; a
file that needs a missing extra gets an error naming it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from grmpiqa.config import DEFAULT_MAX_PIXELS
from grmpiqa.errors import ImageError, describe, needs_extra_message
from grmpiqa.io.extensions import extension_of
from grmpiqa.io.inputs import HEIF_EXTENSIONS, RAW_EXTENSIONS

__all__ = ["DEFAULT_MAX_PIXELS", "check_regular_file", "open_image", "open_with_pillow", "to_rgb"]
WHITE = (255, 255, 255)
ORIENTATION = 0x0112  # the EXIF tag
# ISO-BMFF brands of HEVC-coded HEIF (AVIF, which Pillow reads itself, uses others)
HEVC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_heif_enabled = False


def check_regular_file(path: str) -> None:
    """Refuse directories, FIFOs, devices, broken links and loops before opening anything."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageError("broken symbolic link") from None
        raise ImageError("no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError("symbolic link loop") from None
        raise ImageError(f"cannot access file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError("is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("not a regular file (FIFO, socket or device)")
    if st.st_size == 0:
        raise ImageError("empty file (0 bytes)")


def looks_like_heif(head: bytes) -> bool:
    """An ISO-BMFF ``ftyp`` box naming an HEVC brand (iPhones also save HEIC as ``.jpg``)."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    box_end = min(len(head), int.from_bytes(head[:4], "big"))
    brands = [head[8:12]] + [head[i:i + 4] for i in range(16, box_end - 3, 4)]
    return any(brand in HEVC_BRANDS for brand in brands)


def enable_heif() -> None:
    """Register pillow-heif's opener with Pillow, once per process."""
    global _heif_enabled
    if _heif_enabled:
        return
    try:
        import pillow_heif
    except ImportError:
        raise ImageError(needs_extra_message("HEIC/HEIF", "heif")) from None
    pillow_heif.register_heif_opener()
    _heif_enabled = True


def open_image(path: str, *, draft_size: int | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` to an EXIF-upright RGB image.

    ``draft_size``: for JPEGs, let libjpeg decode at the smallest 1/2, 1/4 or
    1/8 scale whose sides are still at least this many pixels, which makes
    12-megapixel photos several times cheaper when the model needs 244 px.
    Camera RAW files are decoded by :func:`grmpiqa.io.raw.open_raw`.
    """
    check_regular_file(path)
    extension = extension_of(path)
    if extension in RAW_EXTENSIONS:
        from grmpiqa.io.raw import open_raw

        return open_raw(path, draft_size=draft_size, max_pixels=max_pixels,
                        open_preview=open_with_pillow)
    enable_heif_for(path)
    return open_with_pillow(path, draft_size=draft_size, max_pixels=max_pixels)


def enable_heif_for(path: str) -> None:
    """Register pillow-heif when ``path`` is HEIC/HEIF by its name or its content."""
    if extension_of(path) in HEIF_EXTENSIONS:
        enable_heif()
    elif not _heif_enabled:
        try:
            with open(path, "rb") as handle:
                head = handle.read(64)
        except OSError:
            head = b""  # Pillow reports the problem later
        if looks_like_heif(head):
            enable_heif()


def open_lazily(source: str | IO[bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS
                ) -> Image.Image:
    """Pillow's ``Image.open``: the header is read, no pixel is decoded yet."""
    if max_pixels > 2 * (Image.MAX_IMAGE_PIXELS or 0):
        Image.MAX_IMAGE_PIXELS = max_pixels // 2 + 1  # only ever loosened, at the user's request
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # corrupt EXIF and the like: not fatal, not noise
            image = Image.open(source)
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read (unknown or corrupt format)") from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"too many pixels (over {max_pixels:,}); possible decompression bomb, "
            "raise the pixel limit (max_pixels) if you trust this file"
        ) from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:
        raise ImageError(f"cannot open ({exc.strerror or describe(exc)})") from None
    except Exception as exc:
        raise ImageError(f"cannot open ({describe(exc)})") from None
    return image


def open_with_pillow(source: str | IO[bytes], *, draft_size: int | None = None,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Pillow's part of :func:`open_image`, for a path or an in-memory file."""
    with open_lazily(source, max_pixels=max_pixels) as image:
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageError(f"has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageError(
                f"{width}x{height} is {width * height:,} pixels, over the limit of "
                f"{max_pixels:,}; raise the pixel limit (max_pixels) if you trust this file"
            )
        if image.format == "JPEG":
            _check_jpeg_size(image, width * height)
        if draft_size and image.format == "JPEG":
            with contextlib.suppress(Exception):  # draft is an optimisation only
                image.draft(None, (draft_size, draft_size))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image.load()
        except Exception as exc:
            raise ImageError(f"cannot decode ({describe(exc)})") from None
        image = _upright(image)
        return to_rgb(image)


# Huffman-coded JPEG spends at least one bit per 8x8 block on its DC coefficients; one bit per
# 64 blocks leaves room for any real file, while a header claiming far more pixels than its data
# can fill (libjpeg pads a truncated scan with grey and only warns) is refused before decoding
MIN_JPEG_BITS_PER_PIXEL = 1 / 4096


def _check_jpeg_size(image: Image.Image, pixels: int) -> None:
    try:
        position = image.fp.tell()
        size = image.fp.seek(0, os.SEEK_END)
        image.fp.seek(position)
    except (AttributeError, OSError, ValueError):
        return
    if size * 8 < pixels * MIN_JPEG_BITS_PER_PIXEL:
        width, height = image.size
        raise ImageError(f"{width}x{height} pixels declared, but the file holds only {size:,} "
                         "bytes: truncated or forged")


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a corrupt EXIF block is ignored, not fatal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if image.getexif().get(ORIENTATION, 1) == 1:
                return image  # exif_transpose would return a copy (31 ms for 12 MP)
            rotated = ImageOps.exif_transpose(image)
    except Exception:
        return image
    return rotated if rotated is not None else image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert every Pillow mode to 8-bit RGB the way a viewer would show it.

    Transparency is composited over white; 16- and 32-bit greyscale is scaled
    to 8 bits instead of being clipped; CMYK goes through Pillow's conversion.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_grey_to_uint8(image), "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    try:
        if has_alpha:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (*WHITE, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(f"unsupported colour mode {mode} ({describe(exc)})") from None


def _grey_to_uint8(image: Image.Image) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3:  # multi-channel 16-bit: keep the first channel's luminance scale
        array = array[..., 0]
    values = array.astype(np.float64)
    if image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255):
        values = values / 257.0
    elif image.mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
