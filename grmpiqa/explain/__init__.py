"""Measurable defects beside the learned score: sharpness, noise, exposure, clipping, JPEG blocking.

Pure numpy/Pillow measures, one module each; :func:`explain_image` runs them on one
image and names the defects found (:mod:`grmpiqa.explain.thresholds`). No torch and no
model: the decoding workers call it on the image they decoded for the model.
"""
