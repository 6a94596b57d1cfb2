"""Synthetic licence plates for training: flat renders, pasting with exact corners, hard negatives.

Public API (all take a ``numpy.random.Generator``; same seed, same output):

- :func:`render_plate` - a flat frontal plate of one of :data:`LAYOUTS` and its 4 corners (``synth_scene``
  draws from all of them, or from the ``layouts`` asked for);
- :func:`paste_plates` - plates warped into a real photo, with exact corners (N, 4, 2);
- :func:`render_negative` / :func:`paste_negatives` - plate-ish things that are not plates;
- :func:`synth_scene` - plates + negatives + JPEG in one call (the training hook);
- :func:`preview_sheet` / :func:`make_preview` - contact sheets for eyeballing samples.

Corners are TL, TR, BR, BL in pixel-edge coordinates (pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)``).
"""

from model_training.synth.negatives import NEGATIVE_KINDS, render_negative
from model_training.synth.paste import paste_plates
from model_training.synth.plates import LAYOUTS, render_plate
from model_training.synth.preview import make_preview, preview_sheet
from model_training.synth.scene import paste_negatives, synth_scene

__all__ = [
    "LAYOUTS",
    "NEGATIVE_KINDS",
    "make_preview",
    "paste_negatives",
    "paste_plates",
    "preview_sheet",
    "render_negative",
    "render_plate",
    "synth_scene",
]
