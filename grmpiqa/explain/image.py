"""``explain_image``: every measure of one image, and the defects they name."""

from __future__ import annotations

from typing import Any

from grmpiqa.explain import thresholds as t
from grmpiqa.explain.analysis import analysis_grey, as_image, levels, native_window
from grmpiqa.explain.blocking import blockiness
from grmpiqa.explain.exposure import clipped_parts, exposure_ev, level_at, shadow_share
from grmpiqa.explain.noise import noise_sigma
from grmpiqa.explain.sharpness import sharpness
from grmpiqa.results import Explanation


def defects(sharp: float, noise: float, exposure: float, white: float, compression: float,
            *, shadows: float = 0.0, darkest: int = 0) -> str:
    """The ``why`` of these measures: the defects named, ``;``-separated. ``white`` is the
    fraction of pixels at white, ``shadows`` of those crushed to black
    (:func:`~grmpiqa.explain.exposure.shadow_share`), ``darkest`` the 1st percentile
    level (:func:`~grmpiqa.explain.exposure.level_at`)."""
    found = [name for name, hit in (
        ("blur", sharp < t.BLUR_BELOW),
        ("noise", noise > t.NOISE_ABOVE),
        ("underexposed", exposure < t.UNDER_BELOW
         or (shadows > t.UNDER_SHADOWS and exposure < t.UNDER_DIM)),
        ("overexposed", exposure > t.OVER_ABOVE or white > t.OVER_CLIPPED
         or (darkest >= t.OVER_DARKEST and exposure > t.OVER_LIFTED)),
        ("compression", compression > t.COMPRESSION_ABOVE)) if hit]
    return ";".join(found)


def explain_image(image: Any) -> Explanation:
    """Measure the defects of one image, without the model.

    Parameters
    ----------
    image : PIL.Image.Image or numpy.ndarray
        The photo, upright, at the resolution it was taken (a uint8 array is (H, W) grey
        or (H, W, 3) RGB). Sharpness, noise and exposure are measured on it reduced to
        at most 1024 pixels a side, JPEG blocking on a window at full resolution.

    Returns
    -------
    Explanation
        The measures and ``why``, the defects they name (docs/explain.md).
    """
    picture = as_image(image)
    small = analysis_grey(picture)
    grey, histogram = levels(small), small.histogram()
    darkest = level_at(histogram, 0.01)
    sharp = sharpness(grey, span=level_at(histogram, 0.99) - darkest)
    noise = noise_sigma(grey)
    exposure = exposure_ev(histogram)
    black, white = clipped_parts(histogram)
    compression = blockiness(native_window(picture))
    why = defects(sharp, noise, exposure, white, compression,
                  shadows=shadow_share(histogram), darkest=darkest)
    return Explanation(round(sharp, 4), round(noise, 3), round(exposure, 3),
                       round(black + white, 4), round(compression, 4), why)
