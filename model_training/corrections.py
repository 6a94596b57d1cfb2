"""Reviewers' corrections as training data: ``plateveil models corrections export DIR``.

A correction (``producer/review``) leaves its record in the job's sidecar in the output bucket: the
plates after the correction (kept model plates and the ones a reviewer drew) and the concealments a
reviewer removed as no plate. The sidecars are the durable record, so the export lists them (under
``<output prefix>/YYYY/MM/DD/``, from ``--since`` on) and writes every corrected job as

* ``DIR/images/<job_id>.<ext>``: the original photo, upright (as the pipeline saw it, so the corners fit);
* ``DIR/corners/<job_id>.json``: ``{"plates": [[[x, y] x4], ...]}`` (TL TR BR BL), the photo's plates after the
  corrections: the corners format of ``model_training.data`` (``load_folder`` reads it; a photo whose
  concealments were all removed has ``[]`` and teaches the detector that those regions are background);
* ``DIR/negatives.json``: ``{"<image file>": [[x1, y1, x2, y2], ...]}``, the removed false positives' boxes
  (not overlapping a final plate); :func:`negatives_as_rows` turns them into the ``(photo index, box)`` rows
  ``LandmarkSampler.hard_negatives`` takes, as ``model_store.mine.load`` does for mined ones;
* ``DIR/manifest.json``: which jobs, corrections and model versions went in.

Placed under the data root (``../shared/data/<name>/``), the folder is one more corners-format data folder:
``load_split`` reads it, a fixed name-hashed 20% goes to validation, the rest to training.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from plateveil.settings import CommonSettings
from plateveil.storage import ObjectStore

logger = logging.getLogger(__name__)


class ExportSettings(CommonSettings):
    """The object store settings of the services (``PLATEVEIL_*``); the export needs no Redis."""

    redis_url: str = ""


@dataclass(frozen=True)
class ExportSummary:
    jobs: int
    plates: int
    added: int
    negatives: int
    sidecars_read: int
    out: Path


def list_sidecars(store: ObjectStore, bucket: str, prefix: str) -> Iterator[str]:
    """Keys of the JSON sidecars under ``prefix``."""
    return (key for key in store.list_keys(bucket, prefix) if key.endswith(".json"))


def day_prefixes(output_prefix: str, since: date | None, until: date | None = None) -> list[str]:
    """``<prefix>/YYYY/MM/DD/`` for every day from ``since`` to ``until`` (today), or the whole prefix."""
    if since is None:
        return [output_prefix.rstrip("/") + "/"]
    until = until or date.today()
    days = (until - since).days
    if days < 0:
        raise ValueError(f"--since {since} is in the future")
    return [f"{output_prefix.rstrip('/')}/{since + timedelta(d):%Y/%m/%d}/" for d in range(days + 1)]


def _box(poly: list[list[float]]) -> list[float]:
    p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    return [round(float(v), 1) for v in (*p.min(axis=0), *p.max(axis=0))]


def _overlaps(box: list[float], others: list[list[float]], iou: float = 0.3) -> bool:
    for o in others:
        iw = max(0.0, min(box[2], o[2]) - max(box[0], o[0]))
        ih = max(0.0, min(box[3], o[3]) - max(box[1], o[1]))
        inter = iw * ih
        union = (box[2] - box[0]) * (box[3] - box[1]) + (o[2] - o[0]) * (o[3] - o[1]) - inter
        if union > 0 and inter / union >= iou:
            return True
    return False


def labels_of(sidecar: dict[str, Any]) -> tuple[list[list[list[float]]], list[list[float]], int]:
    """(final plate polygons, boxes of removed false positives, number of reviewer-drawn plates)."""
    plates = [p["polygon"] for p in sidecar.get("plates") or []]
    final_boxes = [_box(p) for p in plates]
    negatives: list[list[float]] = []
    for record in sidecar.get("corrections") or []:
        for removed in record.get("removed") or []:
            box = _box(removed["polygon"])
            if not _overlaps(box, final_boxes) and not _overlaps(box, negatives, 0.9):
                negatives.append(box)
    drawn = sum(1 for p in sidecar.get("plates") or [] if p.get("origin") == "reviewer")
    return plates, negatives, drawn


def _write_original(store: ObjectStore, sidecar: dict[str, Any], images: Path, job_id: str) -> str:
    """The original, upright: its own bytes when it needs no EXIF rotation, else re-encoded losslessly."""
    from plateveil import imaging

    data = store.get(sidecar["source"]["bucket"], sidecar["source"]["key"]).data
    decoded = imaging.decode(data)
    if decoded.orientation == 1 and decoded.format in ("jpeg", "png", "webp", "bmp"):
        name = job_id + imaging.EXTENSIONS[decoded.format]
        (images / name).write_bytes(data)
    else:
        name = job_id + ".png"
        (images / name).write_bytes(imaging.encode(decoded.image_bgr, "png"))
    return name


def export_corrections(store: ObjectStore, bucket: str, output_prefix: str, out: Path,
                       since: date | None = None) -> ExportSummary:
    """Write every corrected job under ``bucket``/``output_prefix`` to ``out`` (see the module doc)."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "corners").mkdir(parents=True, exist_ok=True)
    negatives: dict[str, list[list[float]]] = {}
    manifest: list[dict[str, Any]] = []
    read = plates_n = added_n = 0
    for prefix in day_prefixes(output_prefix, since):
        for key in list_sidecars(store, bucket, prefix):
            read += 1
            try:
                sidecar = json.loads(store.get(bucket, key).data)
            except ValueError:
                logger.warning("skipping s3://%s/%s: not JSON", bucket, key)
                continue
            if not isinstance(sidecar, dict) or not sidecar.get("corrections"):
                continue
            job_id = str(sidecar["job_id"])
            plates, negs, drawn = labels_of(sidecar)
            name = _write_original(store, sidecar, out / "images", job_id)
            (out / "corners" / f"{job_id}.json").write_text(json.dumps({"plates": plates}))
            if negs:
                negatives[name] = negs
            plates_n += len(plates)
            added_n += drawn
            manifest.append({"job_id": job_id, "image": name, "sidecar": f"s3://{bucket}/{key}",
                             "model": sidecar.get("model"), "plates": len(plates), "drawn": drawn,
                             "negatives": len(negs), "corrections": len(sidecar["corrections"]),
                             "by": sorted({c.get("by", "") for c in sidecar["corrections"]})})
    (out / "negatives.json").write_text(json.dumps(negatives, indent=1))
    (out / "manifest.json").write_text(json.dumps({"bucket": bucket, "prefix": output_prefix,
                                                   "since": since.isoformat() if since else None,
                                                   "sidecars_read": read, "jobs": manifest}, indent=1))
    summary = ExportSummary(jobs=len(manifest), plates=plates_n, added=added_n,
                            negatives=sum(len(v) for v in negatives.values()), sidecars_read=read, out=out)
    logger.info("exported %d corrected photos (%d plates, %d drawn by reviewers, %d negatives) of %d sidecars "
                "to %s", summary.jobs, summary.plates, summary.added, summary.negatives, read, out)
    return summary


def load_negatives(folder: Path) -> dict[str, np.ndarray]:
    """``{image file name: boxes (N, 4)}`` from an export's ``negatives.json`` ({} when there is none)."""
    from model_training.data import read_negatives

    return read_negatives(folder)


def negatives_as_rows(samples: list[Any], negatives: dict[str, np.ndarray],
                      max_side: int = 960) -> list[tuple[int, np.ndarray]]:
    """``(index into samples, box)`` rows for ``LandmarkSampler.hard_negatives``, boxes scaled as
    ``augment.load_photos(samples, max_side)`` scales each photo; samples are matched by file name."""
    from model_training.data import _image_size

    rows: list[tuple[int, np.ndarray]] = []
    for i, sample in enumerate(samples):
        boxes = negatives.get(Path(sample.path).name)
        if boxes is None or not len(boxes):
            continue
        h, w = _image_size(Path(sample.path))
        scale = min(1.0, max_side / max(h, w))
        rows += [(i, (box * scale).astype(np.float32)) for box in boxes]
    return rows


def export_main(out: Path, since: str | None = None) -> ExportSummary:
    """``plateveil models corrections export``: the services' store settings from ``PLATEVEIL_*``."""
    from plateveil.settings import load_settings
    from plateveil.storage import get_store

    settings = load_settings(ExportSettings)
    day = None
    if since:
        try:
            day = date.fromisoformat(since)
        except ValueError:
            raise SystemExit(f"--since takes a day YYYY-MM-DD, not {since!r}") from None
    return export_corrections(get_store(settings), settings.output_bucket, settings.output_prefix, out, day)
