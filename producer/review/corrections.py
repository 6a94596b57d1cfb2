"""A reviewer's correction of one job: add plates the model missed, remove concealments that are no
plate, change the style; then re-render the concealed photo from the original.

The re-render is the pipeline's own concealment and encoding (``plateveil.imaging.decode``, a
``plateveil.conceal`` style, ``plateveil.imaging.encode``) over the corrected polygons, with no model run:
the original is decoded upright as the worker decoded it, every kept and added polygon is concealed, and
the photo is written over the output object (a versioned bucket keeps the previous one). The sidecar
gets the new plates and a correction record (who, when, what changed, the previous plates and style),
the job record (while it lives) the new plates, and the completion stream a ``corrected`` event.

Writes go output first, sidecar last: the sidecar's number of corrections is the revision a reviewer
must name, so a correction that failed half-way is simply made again, and two reviewers saving the
same job at once get a 409 instead of overwriting each other.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from plateveil.errors import PlateveilError
from plateveil.jobs import JobStore
from plateveil.schema import STYLES, CompletionEvent, JobStatus, iso_ms, utc_now
from plateveil.storage import ObjectStore

logger = logging.getLogger(__name__)

MAX_ADDED = 20
MIN_AREA_PX = 16.0
EDGE_TOLERANCE_PX = 2.0


class CorrectionError(PlateveilError):
    """A correction that cannot be made as asked (``status``: 409 conflict, 422 invalid)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Correction:
    """What a reviewer asks for; ``revision`` is the number of corrections the reviewer saw."""

    revision: int
    add: tuple[tuple[tuple[float, float], ...], ...] = ()
    remove: tuple[int, ...] = ()
    style: str | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def check_polygon(points: Any, width: int, height: int, n: int) -> list[list[float]]:
    """4 finite points inside the image (a 2-pixel tolerance is clipped), a convex quad of at least
    ``MIN_AREA_PX``; returned ordered TL, TR, BR, BL and rounded to 0.1 px. CorrectionError otherwise."""
    import numpy as np

    from plateveil.geometry import is_convex_quad, order_quad, polygon_area

    what = f"added plate {n}"
    if not isinstance(points, list | tuple) or len(points) != 4:
        raise CorrectionError(f"{what}: a polygon is 4 points [[x, y], x4]")
    pts: list[tuple[float, float]] = []
    for p in points:
        if (not isinstance(p, list | tuple) or len(p) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in p)):
            raise CorrectionError(f"{what}: each point is [x, y] with finite numbers, not {p!r}")
        x, y = float(p[0]), float(p[1])
        if not (-EDGE_TOLERANCE_PX <= x <= width + EDGE_TOLERANCE_PX
                and -EDGE_TOLERANCE_PX <= y <= height + EDGE_TOLERANCE_PX):
            raise CorrectionError(f"{what}: point ({x:g}, {y:g}) is outside the {width}x{height} photo")
        pts.append((min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))))
    quad = order_quad(np.asarray(pts))
    if not is_convex_quad(quad):
        raise CorrectionError(f"{what}: the 4 points do not make a convex quadrilateral")
    if polygon_area(quad) < MIN_AREA_PX:
        raise CorrectionError(f"{what}: smaller than {MIN_AREA_PX:g} square pixels")
    return [[round(float(x), 1), round(float(y), 1)] for x, y in quad]


def parse_correction(body: Any) -> Correction:
    """The JSON body of ``POST /review/api/jobs/{id}/corrections``; CorrectionError when malformed."""
    if not isinstance(body, dict):
        raise CorrectionError("expected a JSON object {revision, add?, remove?, style?, note?}")
    unknown = set(body) - {"revision", "add", "remove", "style", "note"}
    if unknown:
        raise CorrectionError(f"unknown fields: {', '.join(sorted(unknown))}")
    revision = body.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise CorrectionError("revision: the number of corrections the page showed (an integer >= 0)")
    add = [] if body.get("add") is None else body["add"]
    remove = [] if body.get("remove") is None else body["remove"]
    if not isinstance(add, list) or len(add) > MAX_ADDED:
        raise CorrectionError(f"add: a list of at most {MAX_ADDED} polygons")
    if not isinstance(remove, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in remove):
        raise CorrectionError("remove: a list of plate indices")
    if len(set(remove)) != len(remove):
        raise CorrectionError("remove: an index appears twice")
    style = body.get("style")
    if style is not None and style not in STYLES:
        raise CorrectionError(f"unknown style {style!r}; valid styles: {', '.join(STYLES)}")
    note = body.get("note") or ""
    if not isinstance(note, str) or len(note) > 500:
        raise CorrectionError("note: a string of at most 500 characters")
    return Correction(revision=revision, add=tuple(tuple(map(tuple, p)) if isinstance(p, list) else p for p in add),
                      remove=tuple(remove), style=style, note=note)


def render(original: bytes, polygons: list[list[list[float]]], style: str, jpeg_quality: int) -> tuple[bytes, str]:
    """The concealed photo of ``original`` with ``polygons`` concealed in ``style``: (bytes, format)."""
    import numpy as np

    from plateveil import imaging
    from plateveil.conceal import get_concealer

    decoded = imaging.decode(original)
    concealed = get_concealer(style).apply(decoded.image_bgr, [np.asarray(p, dtype=np.float64) for p in polygons])
    out = imaging.encode(concealed, decoded.format, jpeg_quality=jpeg_quality, icc_profile=decoded.icc_profile)
    return out, imaging.output_format(decoded.format)


def apply_correction(store: ObjectStore, jobs: JobStore, entry: dict[str, str], correction: Correction,
                     reviewer: str, jpeg_quality: int = 90) -> dict[str, Any]:
    """Make ``correction`` on the job of index ``entry``; returns the new sidecar."""
    from plateveil import imaging

    bucket, out_key, side_key = entry["output_bucket"], entry["output_key"], entry["sidecar_key"]
    sidecar = json.loads(store.get(bucket, side_key).data)
    previous = list(sidecar.get("corrections") or [])
    if correction.revision != len(previous):
        raise CorrectionError(f"the job was corrected meanwhile (revision {len(previous)}, the page showed "
                              f"{correction.revision}): reload it", status=409)
    width, height = int(sidecar["image"]["width"]), int(sidecar["image"]["height"])
    old_plates = list(sidecar.get("plates") or [])
    bad = [i for i in correction.remove if not 0 <= i < len(old_plates)]
    if bad:
        raise CorrectionError(f"remove: no plate {bad[0]} (the job has {len(old_plates)})")
    added = [check_polygon(p, width, height, n) for n, p in enumerate(correction.add, 1)]
    old_style = str(sidecar.get("style") or entry.get("style") or "blur")
    style = correction.style or old_style
    if not added and not correction.remove and style == old_style:
        raise CorrectionError("nothing to change: add or remove a plate or pick another style (or accept the job)")

    source = store.get(sidecar["source"]["bucket"], sidecar["source"]["key"])
    etag = sidecar["source"].get("etag")
    if etag and source.info.etag and etag != source.info.etag:
        raise CorrectionError("the original changed since it was concealed; submit it again instead", status=409)
    now = iso_ms(utc_now())
    new_plates = [p for i, p in enumerate(old_plates) if i not in set(correction.remove)]
    new_plates += [{"polygon": q, "box": [min(x for x, _ in q), min(y for _, y in q), max(x for x, _ in q),
                                          max(y for _, y in q)],
                    "score": None, "det_score": None, "refined": False, "origin": "reviewer",
                    "added_by": reviewer, "added_at": now} for q in added]
    data, fmt = render(source.data, [p["polygon"] for p in new_plates], style, jpeg_quality)
    if fmt != sidecar["image"].get("format", fmt):
        raise CorrectionError(f"the original decodes as {fmt}, the output is {sidecar['image']['format']}", 409)

    record = {"revision": len(previous) + 1, "by": reviewer, "at": now,
              "added": added, "removed": [{"index": i, **old_plates[i]} for i in sorted(correction.remove)],
              "style": {"from": old_style, "to": style} if style != old_style else None,
              "note": correction.note, "previous_plates": old_plates, "previous_style": old_style}
    sidecar.update({"plates": new_plates, "plate_count": len(new_plates), "style": style,
                    "corrections": [*previous, record], "corrected_at": now})
    meta = {"model-version": str(sidecar.get("model") or ""), "plate-count": str(len(new_plates)),
            "job-id": str(sidecar.get("job_id", entry["job_id"])), "corrected-by": reviewer,
            "corrections": str(record["revision"])}
    store.put(bucket, out_key, data, imaging.CONTENT_TYPES[fmt], meta)
    store.put(bucket, side_key, json.dumps(sidecar, indent=1).encode(), "application/json", meta)

    job_key = JobStore.key(entry["job_id"])
    try:
        if jobs.client.exists(job_key):   # the status record, while it lives, answers with the new plates
            jobs.client.hset(job_key, mapping={"plates": json.dumps(new_plates, sort_keys=True), "style": style})
    except Exception as exc:   # the sidecar is the record; the status hash expires anyway
        logger.warning("job %s: corrected, but its status record was not updated: %s", entry["job_id"], exc)
    jobs.publish(CompletionEvent(job_id=entry["job_id"], status=JobStatus.DONE, output_bucket=bucket,
                                 output_key=out_key, sidecar_key=side_key, model=str(sidecar.get("model") or ""),
                                 plate_count=len(new_plates), completed_at=now, event="corrected"))
    logger.info("job %s corrected by %s: revision %d, +%d -%d plates, style %s -> %s, %d bytes",
                entry["job_id"], reviewer, record["revision"], len(added), len(correction.remove), old_style,
                style, len(data))
    return sidecar
