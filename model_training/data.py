"""Labelled photo readers and the train/validation split.

Formats:
* ``voc``: ``images/*.jpg`` + ``annotations/*.xml`` (Pascal VOC, any object whose name looks like a plate).
* ``yolo``: ``images/*.jpg`` + ``labels/*.txt`` (``class cx cy w h`` normalised; class 0 = plate).
* ``corners``: ``images/*.jpg`` + ``corners/*.json`` (our own: ``{"plates": [[[x,y] x4], ...]}``, TL TR BR BL).

A folder may also hold split sub-folders (``train/``, ``test/``...) in one of those layouts; ``auto``
picks the format from what is there. Images are read lazily (``Sample.image``) so a split of a
thousand photos costs nothing until used.

The shared data's labels leave out some plates (mostly the neighbouring cars' plates in the dash-cam frames).
Those found by review are in ``labels/reviewed_plates*.json`` (one file per round); ``load_split`` adds them by default
(``with_reviewed``), so that training does not teach the models that a readable plate is background and the
evaluation does not count its concealment as a false positive. The label repair of issue 35 (every folder, every
split, an ensemble's proposals reviewed by eye) is ``labels/repairs.json`` (:mod:`.repairs`): its plates are
added the same way and its ignore regions (``Sample.ignore``) are neither plate nor background anywhere.

Reviewers' corrections (``plateveil models corrections export DIR``) are one more folder: ``load_split(...,
corrections=DIR)`` reads DIR as a corners folder and its ``negatives.json`` (removed false concealments) as
``Sample.negatives``, known non-plates the landmark model trains on as hard negatives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
PLATE_NAMES = {"plate", "licence", "license", "license-plate", "licence-plate", "license_plate", "number_plate", "lp"}
FORMATS = ("auto", "voc", "yolo", "corners")
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# the plates the data's labels leave out, one file per review round in order (``model_training/review.py``); a
# training stage names how many rounds it saw, so a stage trained before a round reproduces as it was
REVIEW_ROUNDS = [Path(__file__).resolve().parent / "labels" / name
                 for name in ("reviewed_plates.json", "reviewed_plates-2.json")]
REVIEWED_PLATES = REVIEW_ROUNDS[-1]   # the round ``plateveil models review --accept`` adds to
# the environment variable the training verbs read ``--corrections DIR``'s default from (the CLI reads it, once)
CORRECTIONS_ENV = "PLATEVEIL_CORRECTIONS_DIR"


@dataclass(frozen=True)
class Sample:
    """One labelled photo: plate boxes (N, 4) x1y1x2y2 and corners (N, 4, 2), NaN where unknown; ``ignore``
    (M, 4): regions that are neither plate nor background (unsure or unreviewed, ``repairs``); ``negatives``
    (K, 4): regions known not to be plates (a reviewer's removed false concealment)."""

    path: Path
    boxes: np.ndarray
    corners: np.ndarray
    source: str = ""
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def image(self) -> np.ndarray:
        img = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot read image {self.path}")
        return img


def _boxes_array(boxes: list[list[float]]) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def _nan_corners(n: int) -> np.ndarray:
    return np.full((n, 4, 2), np.nan, dtype=np.float32)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS)


def read_voc(folder: Path, source: str = "") -> list[Sample]:
    samples = []
    for img in _images(folder):
        xml = folder / "annotations" / (img.stem + ".xml")
        boxes: list[list[float]] = []
        if xml.is_file():
            root = ET.parse(xml).getroot()
            for obj in root.iter("object"):
                name = (obj.findtext("name") or "").strip().lower()
                bb = obj.find("bndbox")
                if name in PLATE_NAMES and bb is not None:
                    boxes.append([float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax")])
        samples.append(Sample(img, _boxes_array(boxes), _nan_corners(len(boxes)), source))
    return samples


def read_yolo(folder: Path, source: str = "", plate_class: int = 0) -> list[Sample]:
    samples = []
    for img in _images(folder):
        txt = folder / "labels" / (img.stem + ".txt")
        boxes: list[list[float]] = []
        if txt.is_file():
            h, w = _image_size(img)
            for line in txt.read_text().split("\n"):
                parts = line.split()
                if len(parts) == 5 and int(float(parts[0])) == plate_class:
                    cx, cy, bw, bh = (float(v) for v in parts[1:])
                    boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
        samples.append(Sample(img, _boxes_array(boxes), _nan_corners(len(boxes)), source))
    return samples


def read_corners(folder: Path, source: str = "") -> list[Sample]:
    samples = []
    for img in _images(folder):
        js = folder / "corners" / (img.stem + ".json")
        quads = json.loads(js.read_text())["plates"] if js.is_file() else []
        corners = np.asarray(quads, dtype=np.float32).reshape(-1, 4, 2)
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1) if len(corners) else _boxes_array([])
        samples.append(Sample(img, boxes.astype(np.float32), corners, source))
    return samples


def write_corners(folder: Path, image_name: str, corners: np.ndarray) -> None:
    out = folder / "corners"
    out.mkdir(parents=True, exist_ok=True)
    payload = {"plates": np.asarray(corners, dtype=float).round(2).tolist()}
    (out / (Path(image_name).stem + ".json")).write_text(json.dumps(payload))


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) without decoding the whole image when Pillow can read the header."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    return h, w


def detect_format(folder: Path) -> str:
    if (folder / "corners").is_dir():
        return "corners"
    if (folder / "annotations").is_dir():
        return "voc"
    if (folder / "labels").is_dir():
        return "yolo"
    raise ValueError(f"{folder}: no annotations/, labels/ or corners/ folder beside images/ "
                     f"(formats: {', '.join(FORMATS[1:])})")


_READERS = {"voc": read_voc, "yolo": read_yolo, "corners": read_corners}


def iter_leaf_folders(root: Path) -> Iterator[Path]:
    """Folders that hold ``images/`` directly, depth first, sorted."""
    root = Path(root)
    if (root / "images").is_dir():
        yield root
        return
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        yield from iter_leaf_folders(child)


def load_folder(folder: str | Path, fmt: str = "auto") -> list[Sample]:
    """Every labelled photo under ``folder`` (recursing into split sub-folders)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown label format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    samples: list[Sample] = []
    leaves = list(iter_leaf_folders(folder))
    if not leaves:
        raise ValueError(f"{folder}: no images/ folder found")
    for leaf in leaves:
        kind = detect_format(leaf) if fmt == "auto" else fmt
        source = str(leaf.relative_to(folder.parent))
        samples.extend(_READERS[kind](leaf, source))
    return samples


def _hash_fraction(name: str) -> float:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_of(sample: Sample, val_fraction: float = 0.2) -> str:
    """``val`` for ``*/test/*`` photos and a fixed, name-hashed ``val_fraction`` of the rest."""
    if "test" in Path(sample.source).parts:
        return "val"
    return "val" if _hash_fraction(sample.path.name) < val_fraction else "train"


def load_reviewed(path: Path | None = None, rounds: int | None = None) -> dict[str, np.ndarray]:
    """``{"<source>/<file name>": boxes (N, 4)}`` from one reviewed-plates file (``path``), else from the first
    ``rounds`` review rounds (``REVIEW_ROUNDS``; None: all of them) merged."""
    out: dict[str, np.ndarray] = {}
    for p in [Path(path)] if path is not None else REVIEW_ROUNDS[:rounds]:
        for key, boxes in json.loads(p.read_text())["plates"].items():
            b = _boxes_array(boxes)
            out[key] = np.concatenate([out[key], b]) if key in out else b
    return out


def with_reviewed(samples: list[Sample], reviewed: dict[str, np.ndarray] | None = None) -> list[Sample]:
    """``samples`` with the reviewed plates their labels leave out added (corners unknown).

    A photo is matched by its source folder and file name, or by a trailing part of the source, so that
    ``load_folder`` of the data root (source ``data/ro-dashcam``) and of one folder (``ro-dashcam``) both match.
    """
    reviewed = load_reviewed() if reviewed is None else reviewed
    out = []
    for s in samples:
        parts = Path(s.source).parts
        extra = next((reviewed[key] for key in ("/".join((*parts[i:], s.path.name)) for i in range(len(parts) + 1))
                      if key in reviewed), None)
        if extra is not None:
            s = replace(s, boxes=np.concatenate([s.boxes, extra]),
                        corners=np.concatenate([s.corners, _nan_corners(len(extra))]), _cache={})
        out.append(s)
    return out


def read_negatives(folder: str | Path) -> dict[str, np.ndarray]:
    """``{image file name: boxes (N, 4)}`` from a corrections export's ``negatives.json`` ({} when there is none)."""
    path = Path(folder) / "negatives.json"
    if not path.is_file():
        return {}
    return {name: np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
            for name, boxes in json.loads(path.read_text()).items()}


def load_corrections(folder: str | Path) -> list[Sample]:
    """A ``plateveil models corrections export`` folder as samples: its corners labels (the plates after the
    corrections, reviewer-drawn ones included) and its ``negatives.json`` as ``Sample.negatives``."""
    folder = Path(folder)
    if not (folder / "corners").is_dir():
        raise ValueError(f"{folder}: not a corrections export (no corners/ folder; write one with "
                         "`plateveil models corrections export DIR`)")
    negatives = read_negatives(folder)
    return [replace(s, negatives=negatives[s.path.name], _cache={}) if s.path.name in negatives else s
            for s in load_folder(folder, "corners")]


def load_split(data_root: str | Path = DEFAULT_DATA_ROOT, val_fraction: float = 0.2, reviewed: bool = True,
               rounds: int | None = None, repairs: Path | bool | None = None,
               corrections: str | Path | None = None) -> tuple[list[Sample], list[Sample]]:
    """(train, val) over every data folder under ``data_root``; ``reviewed``: with the plates of the first
    ``rounds`` review rounds (None: all) added, else with the data's labels as they are. ``repairs``: the label
    repairs file applied (with ``reviewed`` only; True: ``repairs.REPAIRS``, a path: that file, False: none; None,
    the default: ``repairs.REPAIRS`` when every review round is used, so that a stage trained on the first
    ``rounds`` rounds reproduces as it was). ``corrections``:
    a corrections export folder read as one more folder (``load_corrections``), split by the same rule."""
    from model_training import repairs as repairs_mod

    train: list[Sample] = []
    val: list[Sample] = []
    extra = load_reviewed(rounds=rounds) if reviewed else {}
    if repairs is None:
        repairs = rounds is None
    fixes = repairs_mod.load(repairs_mod.REPAIRS if repairs is True else (repairs or None)) if reviewed else {}
    skip = Path(corrections).resolve() if corrections is not None else None   # read once, with its negatives
    folders: list[list[Sample]] = [load_folder(f) for f in sorted(Path(data_root).iterdir())
                                   if f.is_dir() and f.resolve() != skip]
    if corrections is not None:
        folders.append(load_corrections(corrections))
    for samples in folders:
        for s in repairs_mod.apply(with_reviewed(samples, extra), fixes) if reviewed else samples:
            (val if split_of(s, val_fraction) == "val" else train).append(s)
    return train, val
