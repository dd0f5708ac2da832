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

BLUR_BELOW = 0.35  # sharpness (0..1) under this: blur
NOISE_ABOVE = 4.0  # noise sigma (8-bit levels of luma at the analysis size) over this: noise
UNDER_BELOW = -2.0  # exposure (EV from middle grey) under this: underexposed
OVER_ABOVE = 1.2  # exposure over this: overexposed ...
OVER_CLIPPED = 0.25  # ... or this fraction of pixels at white
COMPRESSION_ABOVE = 0.6  # JPEG blocking strength over this: compression
