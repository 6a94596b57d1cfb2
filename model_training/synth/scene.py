"""Whole synthetic scenes: real (or generated) background + pasted plates + unlabelled negatives."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_training.synth import negatives, paste


def _negative_renderer(rng: np.random.Generator) -> tuple[float, paste.Draw]:
    return negatives.negative_item(rng)


def _kinds_renderer(kinds: Sequence[str]) -> paste.Renderer:
    for kind in kinds:
        if kind not in negatives.NEGATIVE_KINDS:
            raise ValueError(f"unknown negative kind {kind!r}; valid: {', '.join(negatives.NEGATIVE_KINDS)}")
    return lambda rng: negatives.negative_item(rng, kinds[int(rng.integers(len(kinds)))])


def paste_negatives(rng: np.random.Generator, image_bgr: np.ndarray, count: int,
                    avoid_boxes: np.ndarray | None = None, width_range: tuple[float, float] = (0.03, 0.35),
                    jpeg: bool = True, kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``count`` plate-ish non-plates (warped like plates, never labelled as plates) onto a copy, clear
    of ``avoid_boxes``; returns (image, their corners (N, 4, 2) float32), N below ``count`` when room ran out.
    The corners say where the non-plates are, for samplers that crop them as negatives. ``kinds``: draw only
    these of ``negatives.NEGATIVE_KINDS`` (default every kind)."""
    img = np.ascontiguousarray(image_bgr).copy()
    taken = paste.padded_boxes(avoid_boxes)
    render = _kinds_renderer(kinds) if kinds else _negative_renderer
    pasted = paste.paste_items(rng, img, count, render, width_range, taken, paste.dark_map_of(img))
    if jpeg:
        img = paste.recompress(rng, img, [p.roi for p in pasted])
    return img, np.array([p.quad for p in pasted], np.float32).reshape(-1, 4, 2)


def synth_scene(rng: np.random.Generator, background_bgr: np.ndarray, existing_boxes: np.ndarray | None = None,
                max_plates: int = 3, negatives: bool = True,
                width_range: tuple[float, float] = (0.03, 0.45), layouts: Sequence[str] | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Paste 1..``max_plates`` plates (of ``layouts``, default every layout) and 0..3 negatives; returns
    (image, corners (N, 4, 2) float32).

    Only the pasted plates' corners are returned; the caller keeps ``existing_boxes`` (which are
    kept clear, padded). N can be below the drawn count when the image has no free room left.
    One JPEG re-compression is applied at the end.
    """
    img = np.ascontiguousarray(background_bgr).copy()
    taken = paste.padded_boxes(existing_boxes)
    dark = paste.dark_map_of(img)
    n_plates = int(rng.integers(1, max(int(max_plates), 1) + 1))
    pasted = paste.paste_items(rng, img, n_plates, paste.render_plate_item(layouts=layouts), width_range, taken, dark)
    rois = [p.roi for p in pasted]
    if negatives:
        n_neg = int(rng.integers(0, 4))
        negs = paste.paste_items(rng, img, n_neg, _negative_renderer, (width_range[0], min(width_range[1], 0.35)),
                                 taken, dark)
        rois += [p.roi for p in negs]
    img = paste.recompress(rng, img, rois)
    return img, np.array([p.quad for p in pasted], np.float32).reshape(-1, 4, 2)
