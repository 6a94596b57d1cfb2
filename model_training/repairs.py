"""The label repairs file (``labels/repairs.json``): plates the shared data's labels leave out, and regions
nobody may train on, found by ``plateveil models repair`` (:mod:`.repair`) and decided by a person.

Schema (``version`` 1)::

    {"version": 1, "about": "...", "updated": "YYYY-MM-DD",
     "photos": [{"folder": "oi-streets", "file": "x.jpg",
                 "plates":   [{"id": "p0012", "box": [x1, y1, x2, y2], "quad": [[x, y] x4] | null,
                               "by": "...", "why": "...", "reviewed": true}],
                 "ignore":   [ same fields ],
                 "rejected": [ same fields, plus "kind": "headlight" | "badge" | ... ]}]}

``folder`` is the photo's ``Sample.source`` (``oi-streets``, ``openimages-plates/train``) and is matched as a
trailing part of the source, as ``data.with_reviewed`` matches its keys. What each list does to a photo:

* ``plates``: become labelled plates (box; corners unknown, so the landmark model weighs them as boxes);
* ``ignore``: ``Sample.ignore`` boxes: never a plate and never background. The detector's targets ignore the
  anchors on them, the landmark model's negatives and the mined hard negatives stay off them, and the
  evaluation counts no concealment on them as spurious. Every proposal not yet reviewed is an ignore region;
* ``rejected``: looked at and not a plate (``kind`` says what): nothing changes, they stay background.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
REPAIRS = Path(__file__).resolve().parent / "labels" / "repairs.json"
LISTS = ("plates", "ignore", "rejected")


@dataclass(frozen=True)
class PhotoRepair:
    plates: np.ndarray     # (N, 4) x1y1x2y2
    ignore: np.ndarray     # (M, 4)


def read(path: Path = REPAIRS) -> dict[str, Any]:
    """The file's document, checked (version, lists, four-number boxes); a clear ValueError otherwise."""
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or doc.get("version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: not a version {SCHEMA_VERSION} repairs file (version {doc.get('version')!r})"
                         if isinstance(doc, dict) else f"{path}: not a repairs file")
    for i, photo in enumerate(doc.get("photos", [])):
        if not photo.get("folder") or not photo.get("file"):
            raise ValueError(f"{path}: photo #{i} lacks folder or file")
        for name in LISTS:
            for r in photo.get(name, []):
                box = r.get("box")
                if not (isinstance(box, list) and len(box) == 4 and box[2] > box[0] and box[3] > box[1]):
                    raise ValueError(f"{path}: {photo['folder']}/{photo['file']} {name} {r.get('id')}: "
                                     f"box must be [x1, y1, x2, y2] with x2 > x1, y2 > y1, not {box!r}")
    return doc


def write(doc: dict[str, Any], path: Path = REPAIRS) -> Path:
    doc["photos"] = sorted(doc["photos"], key=lambda p: (p["folder"], p["file"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def load(path: Path | None = REPAIRS) -> dict[str, PhotoRepair]:
    """``{"<folder>/<file>": PhotoRepair}``; {} when ``path`` is None or absent."""
    if path is None or not Path(path).is_file():
        return {}
    out: dict[str, PhotoRepair] = {}
    for photo in read(path).get("photos", []):
        plates = [r["box"] for r in photo.get("plates", [])]
        ignore = [r["box"] for r in photo.get("ignore", [])]
        if plates or ignore:
            out[f"{photo['folder']}/{photo['file']}"] = PhotoRepair(
                np.asarray(plates, np.float32).reshape(-1, 4), np.asarray(ignore, np.float32).reshape(-1, 4))
    return out


def lookup(table: dict[str, Any], source: str, name: str) -> Any:
    """``table``'s entry for a photo, its key being ``<a trailing part of source>/<name>``; None if none."""
    parts = Path(source).parts
    for i in range(len(parts) + 1):
        key = "/".join((*parts[i:], name))
        if key in table:
            return table[key]
    return None


def apply(samples: list[Any], repairs: dict[str, PhotoRepair]) -> list[Any]:
    """``samples`` (``data.Sample``) with the repairs' plates added to their labels and their ignore regions
    set; photos without repairs are returned as they are."""
    out = []
    for s in samples:
        r = lookup(repairs, s.source, s.path.name)
        if r is not None:
            corners = np.full((len(r.plates), 4, 2), np.nan, np.float32)
            s = replace(s, boxes=np.concatenate([s.boxes, r.plates]).astype(np.float32),
                        corners=np.concatenate([s.corners, corners]).astype(np.float32),
                        ignore=np.concatenate([s.ignore, r.ignore]).astype(np.float32), _cache={})
        out.append(s)
    return out


def counts(doc: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per top folder: plates added, ignore regions, rejected, and how many of all three are reviewed."""
    out: dict[str, dict[str, int]] = {}
    for photo in doc.get("photos", []):
        c = out.setdefault(photo["folder"].split("/")[0],
                           {"plates": 0, "ignore": 0, "ignore_unreviewed": 0, "rejected": 0, "reviewed": 0})
        for name in LISTS:
            for r in photo.get(name, []):
                c[name] += 1
                c["reviewed"] += bool(r.get("reviewed"))
                if name == "ignore" and not r.get("reviewed"):
                    c["ignore_unreviewed"] += 1
    return dict(sorted(out.items()))
