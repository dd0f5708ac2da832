"""Where a measure becomes a defect named in ``why``: every threshold in one place.

Chosen with ``benchmarks/explain_calibration.py`` on the 627 LIVEC photos: each photo
as it is, and distorted at a clearly visible strength by the project's generators
(:mod:`grmpiqa.pretraining.distortions`, level 4) and by independent code (Pillow's
GaussianBlur, numpy noise, Pillow JPEG quality, a gain). Each threshold is the one
that keeps false alarms on the originals low (LIVEC's own photos carry real blur,
noise and exposure faults, so some alarms there are true) while naming the defect on
at least 80% of the distorted photos; docs/explain.md lists the rates.
"""

from __future__ import annotations

# Bumped with any change below or to a measure: the score catalogue measures again.
VERSION = 3

BLUR_BELOW = 0.6  # sharpness (0..1) under this: blur (LIVEC originals: 10% read < 0.68)
NOISE_ABOVE = 2.5  # noise sigma (8-bit luma levels at the analysis size) over this: noise
UNDER_BELOW = -2.6  # exposure (EV from middle grey) under this: underexposed, ...
UNDER_SHADOWS = 0.03  # ... as is this fraction of pixels crushed (level <= 8) with ...
UNDER_DIM = -1.2  # ... an exposure under this
OVER_ABOVE = 0.7  # exposure over this (the median pixel at about level 155): overexposed, ...
OVER_CLIPPED = 0.15  # ... as is this fraction of pixels at white, ...
OVER_DARKEST = 40  # ... or the darkest 1% of pixels at this level or above (lifted blacks)
OVER_LIFTED = -1.0  # ... with an exposure over this
COMPRESSION_ABOVE = 1.5  # JPEG blocking strength over this (LIVEC originals: 90% < 0.9)
