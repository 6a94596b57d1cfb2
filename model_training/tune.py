"""Choose the post-processing thresholds of a bundle on labelled photos.

The networks run once per photo at permissive thresholds; every candidate setting (detector score,
landmark score, detector score that keeps a box the landmark model doubts, corner margins) is then
scored in numpy with the evaluation's own metrics. The rule favours privacy (see ``objective``).
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model_store.runtime import PlateModel, enclosing_rule, large_region_rule, plate_score, too_large
from model_training.data import Sample
from model_training.evaluate import score_image
from plateveil.geometry import drop_enclosing, pad_quad, polygon_area

logger = logging.getLogger(__name__)


@dataclass
class Candidate:
    det_score: float
    lm_score: float
    quad: np.ndarray      # landmark quad or the box when the corners are implausible (unpadded)
    fraction: float = 0.0  # the quad's area over the photo's (the bounded-region rule)


def collect(model: PlateModel, samples: list[Sample], min_det: float = 0.1) -> list[tuple[Sample, list[Candidate]]]:
    out = []
    saved = dict(model.config["landmarks"])
    # every candidate, unpadded; which of them enclose another depends on the thresholds (score_setting)
    # the landmark score alone (det_weight 0): score_setting combines it with the detector's
    model.config["landmarks"].update({"score_threshold": 0.0, "margin_x": 0.0, "margin_y": 0.0, "enclosing_ratio": 0,
                                      "det_weight": 0.0, "large_region_fraction": None})
    try:
        for s in tqdm(samples, desc="collect", mininterval=2.0):
            img = s.image
            dets = model.detect(img, score_threshold=min_det)
            found = model.refine(img, dets)
            area = float(img.shape[0] * img.shape[1])
            out.append((s, [Candidate(f.det_score, f.score, np.asarray(f.polygon),
                                      polygon_area(np.asarray(f.polygon)) / area) for f in found]))
    finally:
        model.config["landmarks"].clear()
        model.config["landmarks"].update(saved)
    return out


def score_setting(collected: list[tuple[Sample, list[Candidate]]], det_thr: float, lm_thr: float, keep_above: float,
                  margin_x: float, margin_y: float, enclosing: tuple[float, float] | None = None,
                  det_weight: float = 0.0, cache: dict[tuple, tuple] | None = None,
                  large_region: tuple[float, float] | None = None) -> dict[str, float]:
    """The metrics of one setting; ``enclosing`` (cover, area ratio): the bundle's drop_enclosing rule, applied
    to what the thresholds keep, as the runtime does; ``det_weight``: the detector score's weight in the plate
    score (``runtime.plate_score``). ``cache`` (one dict per ``collected``): a photo's scores by the candidates
    kept and the margins, which most settings share (rasterising the regions is what a setting costs).
    ``large_region`` (photo fraction, plate score): the bounded-region rule (``runtime.large_region_rule``)."""
    covs, spurious, excess, plate_area = [], 0, 0.0, 0.0
    for k, (s, cands) in enumerate(collected):
        kept = [i for i, c in enumerate(cands) if c.det_score >= det_thr and (
            (c.lm_score if not det_weight else _combined(c, det_weight)) >= lm_thr or c.det_score >= keep_above)]
        if large_region:
            kept = [i for i in kept if not too_large(cands[i].fraction, 1.0, _score(cands[i], det_weight),
                                                     large_region)]
        if enclosing and len(kept) > 1:
            kept = [kept[i] for i in drop_enclosing([cands[j].quad for j in kept], [cands[j].det_score for j in kept],
                                                    *enclosing)]
        key = (k, tuple(sorted(kept)), margin_x, margin_y)
        if cache is None or key not in cache:
            polys = [pad_quad(cands[i].quad, margin_x, margin_y) for i in kept]
            h, w = _shape(s)
            cov, sp, _, ex, _, pa = score_image((h, w), s.boxes, polys, getattr(s, "ignore", None))
            if cache is None:
                cache = {}
            cache[key] = (cov, sp, ex, pa)
        cov, sp, ex, pa = cache[key]
        covs.append(cov)
        spurious += sp
        excess += ex
        plate_area += pa
    cov = np.concatenate(covs)
    return {"recall_08": float((cov >= 0.8).mean()), "recall_05": float((cov >= 0.5).mean()),
            "spurious_per_image": spurious / len(collected), "excess": excess / max(plate_area, 1.0)}


def _combined(c: Candidate, det_weight: float) -> float:
    """``runtime.plate_score`` of one candidate, cached on it per weight (the sweep asks for it many times)."""
    cache = c.__dict__.setdefault("_combined", {})
    if det_weight not in cache:
        cache[det_weight] = float(plate_score(c.lm_score, c.det_score, det_weight))
    return cache[det_weight]


def _score(c: Candidate, det_weight: float) -> float:
    return c.lm_score if not det_weight else _combined(c, det_weight)


_SHAPES: dict[str, tuple[int, int]] = {}


def _shape(s: Sample) -> tuple[int, int]:
    key = str(s.path)
    if key not in _SHAPES:
        from model_training.data import _image_size

        _SHAPES[key] = _image_size(s.path)
    return _SHAPES[key]


DET_THRESHOLDS = [0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]
LM_THRESHOLDS = [0.3, 0.5, 0.7, 0.85, 0.92, 0.97]
KEEP_ABOVE = [0.7, 0.85, 1.01]            # 1.01: the landmark model always has the last word
MARGINS = [(0.02, 0.08), (0.02, 0.15), (0.05, 0.08), (0.05, 0.15), (0.08, 0.2), (0.1, 0.3)]


# the 2.0 recipe's grid: its detector is calibrated lower (recall keeps rising down to 0.05) and its landmark
# score is the filter, so finer steps where the plate/not-plate trade-off is decided
FINE_DET_THRESHOLDS = [0.05, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3]
FINE_LM_THRESHOLDS = [0.5, 0.7, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97, 0.98, 0.99]
FINE_KEEP_ABOVE = [0.5, 0.6, 0.7, 0.85, 1.01]   # a box the detector is this sure of stays whatever the score


def sweep(collected: list[tuple[Sample, list[Candidate]]], max_spurious: float = 0.05, max_excess: float = 0.3,
          enclosing: tuple[float, float] | None = None, spurious_cap: float | None = None,
          det_thresholds: list[float] | None = None, lm_thresholds: list[float] | None = None,
          keep_above: list[float] | None = None, det_weights: list[float] | tuple[float, ...] = (0.0,),
          large_regions: tuple[tuple[float, float] | None, ...] = (),
          ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Two passes: thresholds at a middle margin, then margins at the best thresholds (margins barely move
    which boxes survive, so the passes hardly interact, and it is ~4x cheaper than the full product).

    ``spurious_cap``: choose among the settings with at most that many spurious regions per photo (and excess
    within ``max_excess``) the one that hides the most plates (``capped``), instead of ``objective``'s trade:
    how a new model is held to "no more false concealments than the model it replaces".

    ``det_weights``: the detector score's weights in the plate score tried (``runtime.plate_score``; rows then
    carry ``det_weight``); the default, (0.0,), is the landmark score alone, as bundles before 3.0.0 use.

    ``large_regions``: bounded-region rules tried (``runtime.large_region_rule``: (photo fraction, plate score), None
    = off) in a third pass at the best thresholds and margins (the rule drops only what the thresholds kept, so it
    hardly moves them); rows then carry ``large_region_fraction`` and ``large_region_threshold``. Empty (the
    default): no such pass, as bundles before 3.0.0 were tuned."""
    rows = []
    det_thresholds = det_thresholds or DET_THRESHOLDS
    lm_thresholds = lm_thresholds or LM_THRESHOLDS
    keep_above = keep_above or KEEP_ABOVE

    def key(r: dict[str, Any]) -> tuple[float, ...]:
        if spurious_cap is None:
            return objective(r, max_spurious, max_excess)
        return capped(r, spurious_cap, max_excess)

    weighted = tuple(det_weights) != (0.0,)

    cache: dict[tuple, tuple] = {}   # a photo's scores by what is kept: most settings keep the same regions

    def run(det_thr: float, lm_thr: float, keep: float, mx_: float, my_: float, w: float = 0.0,
            region: tuple[float, float] | None = None) -> dict[str, Any]:
        m = score_setting(collected, det_thr, lm_thr, keep, mx_, my_, enclosing, det_weight=w, cache=cache,
                          large_region=region)
        row = {"score_threshold": det_thr, "lm_threshold": lm_thr, "keep_detector_above": keep,
               "margin_x": mx_, "margin_y": my_, **({"det_weight": w} if weighted else {}),
               **({"large_region_fraction": region[0] if region else None,
                   "large_region_threshold": region[1] if region else 1.01} if large_regions else {}), **m}
        rows.append(row)
        return row

    grid = [(d, lm, k, w) for w, d, lm, k in itertools.product(det_weights, det_thresholds, lm_thresholds, keep_above)
            if (k > lm and k > d) or k == keep_above[-1]]
    first = [run(d, lm, k, *MARGINS[1], w=w) for d, lm, k, w in tqdm(grid, desc="sweep thresholds", mininterval=2.0)]
    b = max(first, key=key)
    for mx_, my_ in tqdm([m for m in MARGINS if m != MARGINS[1]], desc="sweep margins", mininterval=2.0):
        run(b["score_threshold"], b["lm_threshold"], b["keep_detector_above"], mx_, my_, w=b.get("det_weight", 0.0))
    b = max(rows, key=key)
    for region in tqdm([r for r in large_regions if r], desc="sweep large regions", mininterval=2.0):
        run(b["score_threshold"], b["lm_threshold"], b["keep_detector_above"], b["margin_x"], b["margin_y"],
            w=b.get("det_weight", 0.0), region=region)
    best = max(rows, key=key)
    return best, rows


def capped(r: dict[str, float], spurious_cap: float, max_excess: float) -> tuple[float, ...]:
    """Settings within the spurious cap and the excess limit first, by recall@0.8, then recall@0.5, then fewer
    spurious regions; outside them, the fewest spurious regions (so that no setting fits means the quietest)."""
    within = r["spurious_per_image"] <= spurious_cap + 1e-9 and r["excess"] <= max_excess
    if within:
        return (1.0, round(r["recall_08"], 3), round(r["recall_05"], 3), -r["spurious_per_image"])
    return (0.0, -r["spurious_per_image"], r["recall_08"], 0.0)


def reference_metrics(model: PlateModel, samples: list[Sample]) -> dict[str, float]:
    """A bundle's metrics at its own thresholds, scored as ``sweep`` scores (the cap a successor is held to)."""
    det = model.config["detector"]
    lm = model.config["landmarks"]
    collected = collect(model, samples, min_det=float(det["score_threshold"]))
    return score_setting(collected, float(det["score_threshold"]), float(lm["score_threshold"]),
                         float(lm.get("keep_detector_above", 1.01)), float(lm["margin_x"]), float(lm["margin_y"]),
                         enclosing_rule(lm), det_weight=float(lm.get("det_weight", 0.0)),
                         large_region=large_region_rule(lm))


def objective(r: dict[str, float], max_spurious: float, max_excess: float) -> tuple[float, ...]:
    """Recall@0.8 first; each spurious region per image beyond the limit costs 0.1 of recall and each unit
    of excess beyond the limit 0.05, so a setting that hides nothing never wins by being quiet. On a tie,
    privacy again: more plates at least half hidden (recall@0.5: a wider margin for a tilted plate the
    corners missed), then fewer spurious regions, then the wider margin (margins that hide the same plates
    here differ on a photo whose corners come out worse: the excess limit already bounds their cost)."""
    penalty = 0.1 * max(0.0, r["spurious_per_image"] - max_spurious) + 0.05 * max(0.0, r["excess"] - max_excess)
    return (round(r["recall_08"] - penalty, 3), round(r["recall_05"], 3), -r["spurious_per_image"],
            r.get("margin_x", 0.0) + r.get("margin_y", 0.0))



def tune_bundle(model_dir: Path, data_root: Path, out_dir: Path, max_spurious: float = 0.05,
                max_excess: float = 0.3, reviewed: bool = True, reference: Path | None = None,
                fine: bool = False, det_weights: tuple[float, ...] = (0.0,), min_det: float = 0.0,
                large_regions: tuple[tuple[float, float] | None, ...] = ()) -> tuple[str, dict[str, float]]:
    """``plateveil models tune``: sweep a bundle on the validation split of ``data_root`` (``reviewed``: with
    the reviewed plates added to its labels, ``data.with_reviewed``); writes
    ``out_dir/sweep.json`` (every setting) and ``out_dir/overrides.json``; returns (model tag, best row).
    ``reference``: a bundle (the one in production) whose spurious regions per photo on the same photos cap the
    choice (``sweep``'s ``spurious_cap``); ``fine``: the 2.0 grid (``FINE_*_THRESHOLDS``); ``det_weights``: the
    detector score's weights in the plate score tried (``sweep``); ``min_det``: the lowest detector threshold
    tried (below 0.1 the 3.0 detector sends about 30 boxes per photo to the landmark model: +12 ms);
    ``large_regions``: the bounded-region rules tried (``sweep``)."""
    from model_store.runtime import load_model
    from model_training.data import load_split

    samples = load_split(data_root, reviewed=reviewed)[1]
    ref: dict[str, Any] | None = None
    if reference is not None:
        ref_model = load_model(reference, backend="onnx")
        ref = {"model": ref_model.tag, **reference_metrics(ref_model, samples)}
        logger.info("reference %s: %s", ref_model.tag, json.dumps(ref))
    model = load_model(model_dir, backend="onnx")
    dets = [d for d in (FINE_DET_THRESHOLDS if fine else DET_THRESHOLDS) if d >= min_det - 1e-9]
    best, rows = sweep(collect(model, samples, min_det=min(dets)), max_spurious, max_excess,
                       enclosing_rule(model.config["landmarks"]),
                       spurious_cap=None if ref is None else float(ref["spurious_per_image"]),
                       det_thresholds=dets, lm_thresholds=FINE_LM_THRESHOLDS if fine else LM_THRESHOLDS,
                       keep_above=FINE_KEEP_ABOVE if fine else KEEP_ABOVE, det_weights=det_weights,
                       large_regions=large_regions)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(json.dumps({"model": model.tag, "best": best, "rows": rows,
                                                    "reference": ref}, indent=1))
    (out_dir / "overrides.json").write_text(json.dumps(overrides_for(best), indent=2))
    return model.tag, best


def overrides_for(best: dict[str, float]) -> dict[str, dict[str, float]]:
    """The bundle config overrides (``models build --overrides``) of a sweep row."""
    return {"detector": {"score_threshold": best["score_threshold"]},
            "landmarks": {"score_threshold": best["lm_threshold"], "keep_detector_above": best["keep_detector_above"],
                          "margin_x": best["margin_x"], "margin_y": best["margin_y"],
                          **({"det_weight": best["det_weight"]} if "det_weight" in best else {}),
                          **({"large_region_fraction": best["large_region_fraction"],
                              "large_region_threshold": best["large_region_threshold"]}
                             if best.get("large_region_fraction") else {})}}
