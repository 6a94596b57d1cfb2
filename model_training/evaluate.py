"""Evaluation of the whole pipeline on labelled photos, with the quantities the shipped models are
judged on (all areas measured by rasterising at the photo's own resolution):

* ``recall_08`` / ``recall_05``: share of labelled plates whose box is covered at least 80% / 50%
  by the union of concealed polygons; ``recall_08_40px``: recall@0.8 over the plates at least
  ``READABLE_WIDTH`` (40) px wide in the photo (``n_plates_40px`` of them), the ones a viewer can read.
* ``spurious_per_image``: concealed regions with under 10% of their area *near* any labelled plate
  ("near" = the box padded by a quarter of its width left/right and half its height top/bottom),
  per image.
* ``excess``: concealed area away from (outside the near-regions of) labelled plates, over the
  labelled plate area. ``excess_tight`` counts everything outside the labelled boxes themselves,
  which includes the margin the concealment adds around each plate.
* ``p50_ms`` / ``p95_ms``: the pipeline's own total (decode, detect, landmarks, conceal, encode).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model_training.data import Sample, load_folder

logger = logging.getLogger(__name__)

READABLE_WIDTH = 40.0   # px: a labelled plate at least this wide in the photo counts as readable


@dataclass
class ImageResult:
    sample: Sample
    polygons: list[np.ndarray]
    coverage: np.ndarray          # per labelled plate
    spurious: int
    spurious_area: float
    excess_area: float
    excess_tight_area: float
    plate_area: float
    total_ms: float
    error: str | None = None


@dataclass
class EvalReport:
    overall: dict[str, float]
    per_folder: dict[str, dict[str, float]]
    images: list[ImageResult] = field(repr=False, default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "per_folder": self.per_folder}


def near_box(box: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] - w / 4, box[1] - h / 2, box[2] + w / 4, box[3] + h / 2])


def near_share(box: np.ndarray, plates: np.ndarray) -> float:
    """Share of ``box``'s area inside the union of the plates' "near" regions (boxes, so exact enough)."""
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
    best = 0.0
    for p in plates:
        n = near_box(p)
        iw = max(0.0, min(box[2], n[2]) - max(box[0], n[0]))
        ih = max(0.0, min(box[3], n[3]) - max(box[1], n[1]))
        best = max(best, iw * ih / area)
    return best


def _fill_polygon(shape: tuple[int, int], poly: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Rasterise with the same rule for boxes and polygons, so a polygon on a box covers it exactly."""
    mask = np.zeros(shape, dtype=np.uint8) if mask is None else mask
    pts = np.round(np.asarray(poly, dtype=np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return mask


def _fill_boxes(shape: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for b in boxes:
        _fill_polygon(shape, np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]), mask)
    return mask


def score_image(shape: tuple[int, int], boxes: np.ndarray, polygons: list[np.ndarray],
                ignore: np.ndarray | None = None) -> tuple[np.ndarray, int, float, float, float, float]:
    """(coverage per box, spurious count, spurious area, excess area, tight excess area, plate area).

    ``ignore`` regions (unsure plates, ``Sample.ignore``) count as neither: no recall is asked of them, and a
    concealment near one (10% of its area) is not spurious, nor is the area near them excess."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ignore = np.zeros((0, 4)) if ignore is None else np.asarray(ignore, dtype=np.float64).reshape(-1, 4)
    union = np.zeros(shape, dtype=np.uint8)
    poly_masks = [_fill_polygon(shape, p) for p in polygons]
    for m in poly_masks:
        union |= m
    coverage = np.zeros(len(boxes))
    for i, b in enumerate(boxes):
        bm = _fill_boxes(shape, b[None])
        area = bm.sum()
        coverage[i] = (union & bm).sum() / area if area else 1.0
    excused = np.concatenate([boxes, ignore])
    near = (_fill_boxes(shape, np.array([near_box(b) for b in excused])) if len(excused)
            else np.zeros(shape, np.uint8))
    spurious, spurious_area = 0, 0.0
    for m in poly_masks:
        area = m.sum()
        if area and (m & near).sum() < 0.1 * area:
            spurious += 1
            spurious_area += float(area)
    plate_mask = _fill_boxes(shape, boxes) if len(boxes) else np.zeros(shape, np.uint8)
    excess = float((union & (1 - near)).sum())
    excess_tight = float((union & (1 - plate_mask)).sum())
    return coverage, spurious, spurious_area, excess, excess_tight, float(plate_mask.sum())


def summarise(results: list[ImageResult]) -> dict[str, float]:
    """The report's metrics over ``results`` (one folder, or all of them)."""
    cov = np.concatenate([r.coverage for r in results]) if results else np.zeros(0)
    widths = np.concatenate([np.asarray(r.sample.boxes, np.float64).reshape(-1, 4)[:, 2]
                             - np.asarray(r.sample.boxes, np.float64).reshape(-1, 4)[:, 0] for r in results]
                            ) if results else np.zeros(0)
    readable = cov[widths >= READABLE_WIDTH]
    plate_area = sum(r.plate_area for r in results)
    totals = np.array([r.total_ms for r in results if r.error is None])
    return {
        "n_images": len(results),
        "n_plates": int(cov.size),
        "recall_08": float((cov >= 0.8).mean()) if cov.size else 1.0,
        "recall_05": float((cov >= 0.5).mean()) if cov.size else 1.0,
        "n_plates_40px": int(readable.size),
        "recall_08_40px": float((readable >= 0.8).mean()) if readable.size else 1.0,
        "spurious_per_image": float(np.mean([r.spurious for r in results])) if results else 0.0,
        "excess": sum(r.excess_area for r in results) / max(plate_area, 1.0),
        "excess_tight": sum(r.excess_tight_area for r in results) / max(plate_area, 1.0),
        "p50_ms": float(np.percentile(totals, 50)) if totals.size else 0.0,
        "p95_ms": float(np.percentile(totals, 95)) if totals.size else 0.0,
        "errors": sum(r.error is not None for r in results),
    }


def _run_one(model: Any, sample: Sample, data: bytes, style: str = "none") -> ImageResult:
    """The full pipeline on one labelled photo's bytes, scored (a photo that fails is reported, not raised)."""
    from plateveil.pipeline import conceal_bytes

    try:
        out = conceal_bytes(data, model, style=style)
    except Exception as exc:  # an eval run reports broken photos, it does not stop on them
        logger.warning("eval: %s failed: %s", sample.path, exc)
        return ImageResult(sample, [], np.zeros(len(sample.boxes)), 0, 0.0, 0.0, 0.0,
                           float(np.prod(sample.boxes[:, 2:] - sample.boxes[:, :2], axis=1).sum()), 0.0, error=str(exc))
    polys = [np.asarray(p.polygon, dtype=np.float64) for p in out.plates]
    cov, sp, sp_area, ex, ex_t, pa = score_image((out.height, out.width), sample.boxes, polys, sample.ignore)
    return ImageResult(sample, polys, cov, sp, sp_area, ex, ex_t, pa, float(out.timings_ms["total"]))


def _report(results: list[ImageResult], group: Callable[[Sample], str]) -> EvalReport:
    groups: dict[str, list[ImageResult]] = defaultdict(list)
    for r in results:
        groups[group(r.sample)].append(r)
    return EvalReport(summarise(results), {k: summarise(groups[k]) for k in folder_order(groups)}, results)


def _source(sample: Sample) -> str:
    return sample.source


def evaluate_samples(model: Any, samples: list[Sample], style: str = "none", progress: bool = True
                     ) -> EvalReport:
    """Run the full pipeline (``plateveil.pipeline.conceal_bytes``) on each labelled photo."""
    from tqdm import tqdm

    results = [_run_one(model, s, s.path.read_bytes(), style)
               for s in tqdm(samples, desc="eval", disable=not progress, mininterval=2.0)]
    return _report(results, _source)


def evaluate_interleaved(models: dict[str, Any], samples: list[Sample], rounds: int = 1,
                         group: Callable[[Sample], str] | None = None, progress: bool = False) -> dict[str, EvalReport]:
    """Several models (by name) on the same photos in this process, photo by photo, so that whatever else loads
    the machine falls on all of them alike: each photo is read once, then every model runs on it ``rounds``
    times, the order rotating from photo to photo and round to round (with two models: A B, B A, A B, ...).
    The first run of each model is scored; its ``total_ms`` is the fastest of its rounds on that photo (whatever
    else runs on the machine only ever adds time).
    Each model first runs once on the first photo, untimed (session warm-up). ``group``: the folder a photo is
    reported under (default its ``source``). The latencies are the pipeline's own total (decode to encode), as
    a worker measures it."""
    from tqdm import tqdm

    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    names = list(models)
    if samples:
        warm = samples[0].path.read_bytes()
        for name in names:
            _run_one(models[name], samples[0], warm)
    results: dict[str, list[ImageResult]] = {name: [] for name in names}
    for i, s in enumerate(tqdm(samples, desc="gate", disable=not progress, mininterval=2.0)):
        data = s.path.read_bytes()
        scored: dict[str, ImageResult] = {}
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            k = (i + r) % len(names)
            for name in names[k:] + names[:k]:
                if name in scored:
                    t0 = time.perf_counter()
                    _run_one(models[name], s, data)
                    times[name].append((time.perf_counter() - t0) * 1000)
                else:
                    scored[name] = _run_one(models[name], s, data)
                    times[name].append(scored[name].total_ms)
        for name in names:
            results[name].append(replace(scored[name], total_ms=float(np.min(times[name]))))
    return {name: _report(results[name], group or _source) for name in names}


# the folders most like production first (open-lpr: whole-car listing photos; oi-streets: street scenes), then the
# rest by name
FIRST_FOLDERS = ("open-lpr", "oi-streets")


def folder_order(names: Any) -> list[str]:
    """``names`` (data sources such as ``open-lpr`` or ``openimages-plates/test``) in report order."""
    def key(name: str) -> tuple[int, str]:
        top = Path(name).parts[0] if name else ""
        return (FIRST_FOLDERS.index(top) if top in FIRST_FOLDERS else len(FIRST_FOLDERS), name)

    return sorted(names, key=key)


def evaluate_folder(model: Any, data_dir: Path, fmt: str = "auto", progress: bool = False) -> dict[str, Any]:
    """Overall metrics on one labelled folder (the registry's quality gate calls this)."""
    report = evaluate_samples(model, load_folder(data_dir, fmt), progress=progress)
    return report.overall


COLUMNS = [("n_images", "images"), ("n_plates", "plates"), ("n_plates_40px", "plates>=40"),
           ("recall_08_40px", "r@0.8>=40"), ("recall_08", "rec@0.8"), ("recall_05", "rec@0.5"),
           ("spurious_per_image", "spur/img"), ("excess", "excess"), ("excess_tight", "excess_t"),
           ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms")]


def format_table(report: EvalReport) -> str:
    cols = [c for c, _ in COLUMNS]
    head = f"{'folder':<28}" + "".join(f"{t:>12}" for _, t in COLUMNS)
    lines = [head, "-" * len(head)]
    for name, m in [*report.per_folder.items(), ("OVERALL", report.overall)]:
        cells = []
        for c in cols:
            v = m[c]
            cells.append(f"{v:>12d}" if isinstance(v, int) else f"{v:>12.3f}")
        lines.append(f"{name:<28}" + "".join(cells))
    return "\n".join(lines)


def format_comparison(reports: dict[str, dict[str, Any]]) -> str:
    """Markdown table of several models' reports (``EvalReport.to_dict()``) on the same photos, side by side:
    one row per folder and model, then the overall rows. Every report must cover the same folders."""
    if not reports:
        raise ValueError("no reports to compare")
    folders = [list(r["per_folder"]) for r in reports.values()]
    if any(f != folders[0] for f in folders[1:]):
        raise ValueError(f"the reports cover different folders: {folders}")
    head = "| folder | model | " + " | ".join(t for _, t in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for folder in [*folders[0], "OVERALL"]:
        for tag, r in reports.items():
            m = r["overall"] if folder == "OVERALL" else r["per_folder"][folder]
            cells = [str(m[c]) if isinstance(m[c], int) else f"{m[c]:.3f}" for c, _ in COLUMNS]
            lines.append(f"| {folder} | {tag} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def worst_cases_sheet(report: EvalReport, out_png: Path, n: int = 8) -> Path:
    """Before/after sheet: the worst misses (lowest plate coverage) and worst false positives."""
    misses = sorted((r for r in report.images if len(r.coverage)), key=lambda r: float(r.coverage.min()))[:n]
    fps = sorted((r for r in report.images if r.spurious), key=lambda r: -r.spurious_area)[:n]
    rows = [("miss", r) for r in misses] + [("false positive", r) for r in fps]
    cell_w, cell_h = 480, 300
    sheet = np.full((max(1, len(rows)) * cell_h, 2 * cell_w, 3), 255, np.uint8)
    from plateveil.conceal import get_concealer

    blur = get_concealer("blur")
    for i, (kind, r) in enumerate(rows):
        img = r.sample.image
        after = blur.apply(img.copy(), r.polygons) if r.polygons else img.copy()
        for b in r.sample.boxes:
            cv2.rectangle(img, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 200, 0), 2)
        for p in r.polygons:
            cv2.polylines(img, [np.round(p).astype(np.int32)], True, (0, 0, 255), 2)
        for j, im in enumerate((img, after)):
            s = min(cell_w / im.shape[1], (cell_h - 24) / im.shape[0])
            small = cv2.resize(im, (max(1, int(im.shape[1] * s)), max(1, int(im.shape[0] * s))))
            y0 = i * cell_h + 24
            sheet[y0:y0 + small.shape[0], j * cell_w:j * cell_w + small.shape[1]] = small
        cov = f"min cover {r.coverage.min():.2f}" if len(r.coverage) else "no plates"
        cv2.putText(sheet, f"{kind}: {r.sample.source}/{r.sample.path.name} {cov} spurious {r.spurious}",
                    (6, i * cell_h + 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), sheet)
    return out_png


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), x1y1x2y2."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def detector_recall(model: Any, samples: list[Sample], thresholds: tuple[float, ...] = (0.08, 0.15, 0.3),
                    progress: bool = True) -> dict[str, dict[str, float]]:
    """The detector alone, per folder and overall: the share of labelled plates (all; ``>=40``: those at least
    40 px wide) with a detection of IoU >= 0.5 at score >= each threshold, and detections per photo that overlap
    no labelled plate nor ignore region (IoU < 0.1). What a detector cycle bought, before any landmark model or threshold."""
    from tqdm import tqdm

    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in tqdm(samples, desc="detector recall", disable=not progress, mininterval=2.0):
        dets = model.detect(s.image, score_threshold=min(thresholds))
        boxes = np.array([d.box for d in dets], np.float32).reshape(-1, 4)
        scores = np.array([d.score for d in dets], np.float32)
        gt = s.boxes.reshape(-1, 4)
        ignore = np.asarray(getattr(s, "ignore", np.zeros((0, 4))), np.float32).reshape(-1, 4)
        wide = (gt[:, 2] - gt[:, 0]) >= 40
        for group in (s.source, "OVERALL"):
            c = counts[group]
            c["photos"] += 1
            c["plates"] += len(gt)
            c["plates>=40"] += int(wide.sum())
            for t in thresholds:
                b = boxes[scores >= t]
                if len(gt) and len(b):
                    hit = _iou(gt, b).max(axis=1) >= 0.5
                    c[f"recall@{t}"] += int(hit.sum())
                    c[f"recall>=40@{t}"] += int((hit & wide).sum())
                excused = np.concatenate([gt, ignore])
                c[f"other@{t}"] += int((_iou(excused, b).max(axis=0) < 0.1).sum()) if len(excused) else len(b)
    out: dict[str, dict[str, float]] = {}
    for group in [*folder_order([g for g in counts if g != "OVERALL"]), "OVERALL"]:
        c = counts[group]
        out[group] = {"photos": int(c["photos"]), "plates": int(c["plates"]), "plates>=40": int(c["plates>=40"])}
        for t in thresholds:
            out[group][f"recall@{t}"] = round(c[f"recall@{t}"] / max(c["plates"], 1), 3)
            out[group][f"recall>=40@{t}"] = round(c[f"recall>=40@{t}"] / max(c["plates>=40"], 1), 3)
            out[group][f"other/photo@{t}"] = round(c[f"other@{t}"] / max(c["photos"], 1), 3)
    return out
