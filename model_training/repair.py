"""Label repair: proposing the plates the shared data's labels leave out, sheets to review them by eye, and
applying the decisions to ``labels/repairs.json`` (read by ``data.load_split`` through :mod:`.repairs`).

``plateveil models repair propose|sheets|apply``:

1. ``scan`` runs every model of an ensemble (default: the shipped 2.0.0 and 1.10.0 bundles, onnx, 2 threads)
   over every photo of every data folder, all splits, at permissive thresholds (detector >= 0.1, every
   landmark score kept), and caches each photo's candidates as one JSON line in ``runs/repair/scan.jsonl``; a
   rerun skips the photos already there (resumable; progress by tqdm).
2. ``propose`` keeps, per photo, the candidates away from every label (``near_share < 0.1``: the
   evaluation's rule, which also drops regions inside a labelled box) and away from every plate already in
   a review round, that are confident (``combined >= 0.5``; ``combined`` = sqrt(det x landmark), the mean
   of the models that found it) or, in the folders most like production (open-lpr, oi-streets), at least
   ``low`` (0.4), 10 px wide at least; merges what several models found (IoU >= 0.3: one region, the best-scored box, with
   every model named) and numbers them.
3. ``sheets`` draws them on numbered contact sheets (6 x 6 tiles, context around each box, the number on
   it); a person looks and calls each number plate / ignore / reject; ``apply`` records those decisions in
   the repairs file with ``reviewed: true``. Until then every unreviewed proposal is an ignore region
   (``repairs.seed``): never a negative, never a positive.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model_training.data import DEFAULT_DATA_ROOT, Sample, load_folder, load_reviewed
from model_training.mine import near_share
from plateveil.geometry import box_iou

logger = logging.getLogger(__name__)

WEIGHTS = Path(__file__).resolve().parents[1] / "model_store" / "weights"
DEFAULT_MODELS = (WEIGHTS / "plateveil-plates-2.0.0", WEIGHTS / "plateveil-plates-1.10.0")
PRODUCTION_LIKE = ("open-lpr", "oi-streets")   # folders where low-confidence proposals are kept too
MIN_DET = 0.1
TILE_FROM = 800     # px long side: photos at least this large are also scanned in tiles


@dataclass
class Proposal:
    id: str                      # "p0001": the number on the sheets
    folder: str                  # Sample.source ("oi-streets", "openimages-plates/train")
    file: str
    path: str
    box: list[float]             # x1 y1 x2 y2 in the photo's pixels
    quad: list[list[float]]      # the landmark model's corners (TL TR BR BL), or the box's
    score: float                 # sqrt(detector x landmark) of the best model
    models: dict[str, list[float]] = field(default_factory=dict)   # tag -> [detector, landmark]


def key_of(s: Sample) -> str:
    return f"{s.source}/{s.path.name}"


def all_samples(data_root: Path = DEFAULT_DATA_ROOT) -> list[Sample]:
    """Every photo of every folder under ``data_root``, every split, in a fixed order."""
    out: list[Sample] = []
    for folder in sorted(p for p in Path(data_root).iterdir() if p.is_dir()):
        out.extend(load_folder(folder))
    return out


def _tiled_detect(model: Any, img: np.ndarray) -> list[Any]:
    """Detections on a 2 x 2 grid of overlapping tiles (a quarter of the photo each, at the detector's input
    size: small distant plates at about twice their whole-photo scale), in the photo's pixels."""
    from model_store.runtime import Detection

    h, w = img.shape[:2]
    out = []
    th, tw = int(h * 0.6), int(w * 0.6)
    for y0 in (0, h - th):
        for x0 in (0, w - tw):
            for d in model.detect(np.ascontiguousarray(img[y0:y0 + th, x0:x0 + tw]), score_threshold=MIN_DET):
                x1, y1, x2, y2 = d.box
                out.append(Detection((x1 + x0, y1 + y0, x2 + x0, y2 + y0), d.score))
    return out


def _candidates(model: Any, img: np.ndarray, tiled: bool = False) -> list[dict[str, Any]]:
    """Every detection (>= MIN_DET) with its landmark score and corners, unpadded, none dropped; ``tiled``:
    those of ``_tiled_detect`` instead of the whole photo's."""
    saved = dict(model.config["landmarks"])
    model.config["landmarks"].update({"score_threshold": 0.0, "margin_x": 0.0, "margin_y": 0.0,
                                      "enclosing_ratio": 0})
    try:
        dets = _tiled_detect(model, img) if tiled else model.detect(img, score_threshold=MIN_DET)
        found = model.refine(img, dets)
    finally:
        model.config["landmarks"].clear()
        model.config["landmarks"].update(saved)
    return [{"det": round(f.det_score, 4), "lm": round(f.score, 4),
             "quad": [[round(x, 1), round(y, 1)] for x, y in f.polygon]} for f in found]


def scan(cache: Path, data_root: Path = DEFAULT_DATA_ROOT, models: tuple[Path, ...] = DEFAULT_MODELS,
         threads: int = 2, limit: int | None = None, tiled: bool = False) -> int:
    """Run the ensemble over every photo not yet in ``cache`` (JSON lines); returns how many it added.
    ``tiled``: the first model alone on 2 x 2 tiles of the photos at least ``TILE_FROM`` px (small distant
    plates; tag ``<version>-tiles``), an empty row for the smaller ones; a separate cache, so the whole-photo
    pass is done first."""
    from tqdm import tqdm

    from model_store.runtime import load_model

    done: set[str] = set()
    if cache.is_file():
        for line in cache.read_text().splitlines():
            if line.strip():
                try:
                    done.add(json.loads(line)["key"])
                except json.JSONDecodeError:   # a line cut by an interrupted run: that photo is scanned again
                    continue
    todo = [s for s in all_samples(data_root) if key_of(s) not in done][:limit]
    if not todo:
        return 0
    loaded = [load_model(m, backend="onnx", threads=threads) for m in (models[:1] if tiled else models)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a") as fh:
        for s in tqdm(todo, desc="repair scan", mininterval=5.0):
            img = s.image
            row = {"key": key_of(s), "folder": s.source, "file": s.path.name, "path": str(s.path),
                   "h": int(img.shape[0]), "w": int(img.shape[1]),
                   "cands": {}}
            if not tiled:
                row["cands"] = {m.version: _candidates(m, img) for m in loaded}
            elif max(img.shape[:2]) >= TILE_FROM:
                row["cands"] = {loaded[0].version + "-tiles": _candidates(loaded[0], img, tiled=True)}
            fh.write(json.dumps(row) + "\n")
            fh.flush()
    return len(todo)


def _quad_box(quad: list[list[float]], w: int, h: int) -> np.ndarray:
    q = np.asarray(quad, np.float64)
    return np.array([max(q[:, 0].min(), 0), max(q[:, 1].min(), 0), min(q[:, 0].max(), w), min(q[:, 1].max(), h)])


def read_caches(caches: list[Path]) -> list[dict[str, Any]]:
    """The scan rows of several caches (whole photo, tiles), one per photo with every model's candidates, in
    the first cache's order; lines cut by an interrupted run are skipped."""
    rows: dict[str, dict[str, Any]] = {}
    for cache in caches:
        if not Path(cache).is_file():
            continue
        for line in Path(cache).read_text().splitlines():
            try:
                row = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue
            if row is None:
                continue
            if row["key"] in rows:
                rows[row["key"]]["cands"].update(row["cands"])
            else:
                rows[row["key"]] = row
    return list(rows.values())


def propose(caches: Path | list[Path], data_root: Path = DEFAULT_DATA_ROOT, high: float = 0.5, low: float = 0.4,
            min_width: float = 10.0, known: dict[str, np.ndarray] | None = None,
            previous: list[Proposal] | None = None) -> list[Proposal]:
    """The numbered proposals from scan caches (see the module docstring for the rule).

    ``known``: extra boxes per key counted as labelled (default: every review round's plates); ``previous``:
    the proposals of an earlier run, whose ids are kept (``number``)."""
    labels = {key_of(s): s.boxes for s in all_samples(data_root)}
    known = load_reviewed() if known is None else known
    out: list[Proposal] = []
    for row in read_caches(caches if isinstance(caches, list) else [caches]):
        if row["key"] not in labels:
            continue
        boxes = labels[row["key"]]
        if row["key"] in known:
            boxes = np.concatenate([boxes.reshape(-1, 4), known[row["key"]]])
        floor = low if row["folder"].split("/")[0] in PRODUCTION_LIKE else high
        found: list[tuple[np.ndarray, float, list[list[float]], str, float, float]] = []
        for tag, cands in row["cands"].items():
            for c in cands:
                score = math.sqrt(max(c["det"], 0.0) * max(c["lm"], 0.0))
                if score < floor:
                    continue
                box = _quad_box(c["quad"], row["w"], row["h"])
                if box[2] - box[0] < min_width or box[3] - box[1] < 3:
                    continue
                if len(boxes) and near_share(box, boxes) >= 0.1:
                    continue
                found.append((box, score, c["quad"], tag, c["det"], c["lm"]))
        found.sort(key=lambda f: -f[1])
        merged: list[Proposal] = []
        merged_boxes: list[np.ndarray] = []
        for box, score, quad, tag, det, lm in found:
            if merged_boxes:
                iou = box_iou(box[None], np.stack(merged_boxes))[0]
                j = int(iou.argmax())
                if iou[j] >= 0.3:
                    merged[j].models.setdefault(tag, [det, lm])
                    continue
            merged_boxes.append(box)
            merged.append(Proposal("", row["folder"], row["file"], row["path"],
                                   [round(float(v), 1) for v in box], quad, round(score, 4), {tag: [det, lm]}))
        out.extend(merged)
    return number(out, previous or [])


def number(proposals: list[Proposal], previous: list[Proposal]) -> list[Proposal]:
    """Give each proposal its id: the one of a ``previous`` proposal on the same photo and region (IoU >= 0.5),
    so that decisions and sheets stay valid when a scan grows, else the next free number."""
    before: dict[tuple[str, str], list[Proposal]] = {}
    for q in previous:
        before.setdefault((q.folder, q.file), []).append(q)
    taken = {q.id for q in previous}
    nxt = max((int(q.id[1:]) for q in previous), default=-1) + 1
    for p in proposals:
        olds = [q for q in before.get((p.folder, p.file), []) if q.id in taken]
        if olds:
            iou = box_iou(np.asarray(p.box)[None], np.asarray([q.box for q in olds]))[0]
            j = int(iou.argmax())
            if iou[j] >= 0.5:
                p.id = olds[j].id
                taken.discard(p.id)   # one proposal per previous id
                continue
        p.id = f"p{nxt:04d}"
        nxt += 1
    return proposals


def save_proposals(proposals: list[Proposal], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(p) for p in proposals], indent=0) + "\n")
    return path


def load_proposals(path: Path) -> list[Proposal]:
    return [Proposal(**d) for d in json.loads(Path(path).read_text())]


# ---------------------------------------------------------------------------------------------- sheets

TILE = 220          # px, square tiles
COLUMNS = 6
PER_SHEET = 36


def tile(img: np.ndarray, p: Proposal, labels: np.ndarray, size: int = TILE) -> np.ndarray:
    """The region with context (about 3x its width), its quad in red, labelled plates in green, id on top."""
    x0, y0, x1, y1 = p.box
    bw, bh = max(x1 - x0, 10.0), max(y1 - y0, 5.0)
    s = max(bw * 3.0, bh * 5.0, 48.0) / size          # source pixels per tile pixel
    s = max(s, 1.0 / 4.0)                             # at most 4x upscaling
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    m = np.array([[1 / s, 0, size / 2 - cx / s], [0, 1 / s, size / 2 - cy / s]], dtype=np.float32)
    t = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_CUBIC if s < 1 else cv2.INTER_AREA,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(60, 60, 60))
    for b in labels:
        q = (np.array([[b[0], b[1]], [b[2], b[3]]]) - [cx, cy]) / s + size / 2
        cv2.rectangle(t, (int(q[0][0]), int(q[0][1])), (int(q[1][0]), int(q[1][1])), (0, 200, 0), 1)
    q = (np.asarray(p.quad) - [cx, cy]) / s + size / 2
    # the quad drawn a few pixels outside the region, so the characters stay visible
    c = q.mean(axis=0)
    q = c + (q - c) * 1.0 + np.sign(q - c) * 3
    cv2.polylines(t, [np.int32(np.round(q))], True, (0, 0, 255), 1)
    cv2.rectangle(t, (0, 0), (size, 15), (0, 0, 0), -1)
    cv2.putText(t, f"{p.id[1:]} {int(bw)}px {p.score:.2f} {'+'.join(sorted(p.models))}", (2, 11),
                cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 255, 255), 1, cv2.LINE_AA)
    return t


def write_sheets(proposals: list[Proposal], out_dir: Path, data_root: Path = DEFAULT_DATA_ROOT,
                 prefix: str = "sheet") -> list[Path]:
    """``out_dir/<prefix>-NNN.png``: 36 numbered tiles per sheet, in the proposals' order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = {key_of(s): s.boxes for s in all_samples(data_root)} if Path(data_root).is_dir() else {}
    tiles, img, img_path = [], None, None
    for p in proposals:
        if p.path != img_path:
            img, img_path = cv2.imread(p.path, cv2.IMREAD_COLOR), p.path
        if img is None:
            raise ValueError(f"cannot read image {p.path}")
        tiles.append(tile(img, p, labels.get(f"{p.folder}/{p.file}", np.zeros((0, 4)))))
    sheets = []
    blank = np.zeros((TILE, TILE, 3), np.uint8)
    for k in range(0, len(tiles), PER_SHEET):
        page = tiles[k:k + PER_SHEET]
        page += [blank] * (-len(page) % COLUMNS)
        rows = [np.hstack([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in page[j:j + COLUMNS]])
                for j in range(0, len(page), COLUMNS)]
        path = out_dir / f"{prefix}-{k // PER_SHEET:03d}.png"
        cv2.imwrite(str(path), np.vstack(rows))
        sheets.append(path)
    return sheets


# ---------------------------------------------------------------------------------------------- the file

BY_PROPOSAL = "repair propose: ensemble plateveil-plates 2.0.0 (+tiles) + 1.10.0"


def _region(p: Proposal, by: str, why: str, reviewed: bool, kind: str | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"id": p.id, "box": p.box, "quad": p.quad, "score": p.score, "by": by, "why": why,
                         "reviewed": reviewed}
    if kind:
        r["kind"] = kind
    return r


def _photo(doc: dict[str, Any], folder: str, file: str) -> dict[str, Any]:
    for ph in doc["photos"]:
        if ph["folder"] == folder and ph["file"] == file:
            return ph
    ph = {"folder": folder, "file": file, "plates": [], "ignore": [], "rejected": []}
    doc["photos"].append(ph)
    return ph


def _find(ph: dict[str, Any], pid: str) -> tuple[str, int] | None:
    for name in ("plates", "ignore", "rejected"):
        for i, r in enumerate(ph[name]):
            if r["id"] == pid:
                return name, i
    return None


def seed(doc: dict[str, Any], proposals: list[Proposal]) -> int:
    """Every proposal not in ``doc`` yet becomes an unreviewed ignore region; returns how many were added."""
    added = 0
    for p in proposals:
        ph = _photo(doc, p.folder, p.file)
        if _find(ph, p.id) is None:
            ph["ignore"].append(_region(p, BY_PROPOSAL, f"proposed (score {p.score:.2f}), not reviewed yet: "
                                        "neither plate nor background until a person decides", False))
            added += 1
    doc["photos"] = [ph for ph in doc["photos"] if any(ph[n] for n in ("plates", "ignore", "rejected"))]
    return added


DECISIONS = {"plate": "plates", "ignore": "ignore", "reject": "rejected"}


def decide(doc: dict[str, Any], proposals: list[Proposal], decisions: dict[str, tuple[str, str]], by: str,
           ) -> dict[str, int]:
    """Record ``decisions`` (proposal id -> (plate | ignore | reject, why/kind)) with ``reviewed: true``; a
    rejected region's ``kind`` is the text before the first ':' of its note. Returns counts per decision."""
    byid = {p.id: p for p in proposals}
    unknown = sorted(set(decisions) - set(byid))
    if unknown:
        raise ValueError(f"no proposal {', '.join(unknown[:10])} (ids p0000..p{len(proposals) - 1:04d})")
    out = {k: 0 for k in DECISIONS}
    for pid, (what, note) in sorted(decisions.items()):
        if what not in DECISIONS:
            raise ValueError(f"{pid}: decision {what!r} is not one of {', '.join(DECISIONS)}")
        p = byid[pid]
        ph = _photo(doc, p.folder, p.file)
        found = _find(ph, pid)
        if found is not None:
            ph[found[0]].pop(found[1])
        kind = note.split(":")[0].strip() if what == "reject" else None
        ph[DECISIONS[what]].append(_region(p, by, note or what, True, kind))
        out[what] += 1
    return out


def new_doc() -> dict[str, Any]:
    from model_training.repairs import SCHEMA_VERSION

    return {"version": SCHEMA_VERSION,
            "about": "Label repair of issue 35: regions of the shared data's photos (every folder, every split) that "
                     "an ensemble (plateveil-plates 2.0.0 on the whole photo and on 2x2 tiles, 1.10.0) scores as "
                     "plates away from every label; kept where confident (sqrt(detector x landmark) >= 0.5) or, in "
                     "open-lpr and oi-streets, >= 0.4 (10 px wide at least). A person looks at each on numbered sheets: plate (a "
                     "readable or would-be-readable plate: an added label), ignore (unsure, tiny or unreadable "
                     "plate: neither plate nor background), reject (not a plate: stays background). Unreviewed "
                     "proposals are ignore regions. See model_training/repairs.py for what each list does.",
            "photos": []}


def parse_decisions(text: str) -> dict[str, tuple[str, str]]:
    """Lines ``<id or number>[,<id>...] <plate|ignore|reject> [note]`` ('#' starts a comment; ranges
    ``12-15``)."""
    out: dict[str, tuple[str, str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise ValueError(f"line {n}: expected '<ids> <plate|ignore|reject> [note]', got {line!r}")
        ids: list[str] = []
        for tok in parts[0].split(","):
            tok = tok.strip().lstrip("p")
            if "-" in tok:
                a, b = tok.split("-")
                ids += [f"p{i:04d}" for i in range(int(a), int(b) + 1)]
            else:
                ids.append(f"p{int(tok):04d}")
        for i in ids:
            out[i] = (parts[1], parts[2] if len(parts) > 2 else "")
    return out


# ---------------------------------------------------------------------------------------------- CLI

def register(msub: Any) -> None:
    """``plateveil models repair propose|sheets|apply|counts``."""
    import argparse

    from model_training.repairs import REPAIRS

    r = msub.add_parser("repair", help="label repair: propose unlabelled plates, numbered sheets, record decisions")
    rsub = r.add_subparsers(dest="repair_command", required=True, metavar="STEP")
    p = rsub.add_parser("propose", help="scan every photo with the ensemble (resumable) and number the proposals; "
                                        "new ones go into the repairs file as unreviewed ignore regions")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--work", type=Path, default=Path("runs/repair"), help="scan cache and proposals.json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--labels", type=Path, default=REPAIRS)
    p.add_argument("--no-seed", action="store_true", help="do not add the proposals to the repairs file")
    p.add_argument("--no-tiles", action="store_true", help="skip the tiled pass (small distant plates)")
    p.set_defaults(func=_cli_propose)
    s = rsub.add_parser("sheets", help="numbered contact sheets (6x6 tiles) of the proposals")
    s.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    s.add_argument("--work", type=Path, default=Path("runs/repair"))
    s.add_argument("--folder", action="append", help="only these folders (repeatable), in this order")
    s.add_argument("--unreviewed", action="store_true", help="only proposals not yet decided in --labels")
    s.add_argument("--labels", type=Path, default=REPAIRS)
    s.add_argument("--by-score", action="store_true", help="highest score first within each folder")
    s.add_argument("--ids", default=None, help="only these proposal ids (p0001,p0002,...)")
    s.add_argument("--prefix", default="sheet", help="sheet file names: <prefix>-NNN.png")
    s.set_defaults(func=_cli_sheets)
    a = rsub.add_parser("apply", help="record decisions: a file of lines '<ids> <plate|ignore|reject> [note]'")
    a.add_argument("decisions", type=Path)
    a.add_argument("--work", type=Path, default=Path("runs/repair"))
    a.add_argument("--labels", type=Path, default=REPAIRS)
    a.add_argument("--by", default="person, by eye on the sheets")
    a.set_defaults(func=_cli_apply)
    c = rsub.add_parser("counts", help="per folder: plates added, ignore regions, rejected, reviewed")
    c.add_argument("--labels", type=Path, default=REPAIRS)
    c.set_defaults(func=_cli_counts)
    del argparse


def _load_doc(path: Path) -> dict[str, Any]:
    from model_training import repairs

    return repairs.read(path) if path.is_file() else new_doc()


def _cli_propose(args: Any) -> int:
    from model_training import repairs

    n = scan(args.work / "scan.jsonl", args.data, threads=args.threads)
    if not args.no_tiles:
        n += scan(args.work / "scan-tiles.jsonl", args.data, threads=args.threads, tiled=True)
    earlier = args.work / "proposals.json"
    props = propose([args.work / "scan.jsonl", args.work / "scan-tiles.jsonl"], args.data,
                    previous=load_proposals(earlier) if earlier.is_file() else [])
    save_proposals(props, args.work / "proposals.json")
    print(f"scanned {n} new photos; {len(props)} proposals in {args.work / 'proposals.json'}")
    if not args.no_seed:
        doc = _load_doc(args.labels)
        added = seed(doc, props)
        repairs.write(doc, args.labels)
        print(f"{added} new unreviewed ignore regions in {args.labels}")
    return 0


def _cli_sheets(args: Any) -> int:
    props = load_proposals(args.work / "proposals.json")
    if args.unreviewed and args.labels.is_file():
        doc = _load_doc(args.labels)
        done = {r["id"] for ph in doc["photos"] for n in ("plates", "ignore", "rejected") for r in ph[n]
                if r.get("reviewed")}
        props = [p for p in props if p.id not in done]
    if args.folder:
        props = [p for f in args.folder for p in props if p.folder.split("/")[0] == f]
    if args.by_score:   # the likeliest plates first, folder by folder (a stable sort keeps the folders' order)
        props.sort(key=lambda p: -p.score)
        if args.folder:
            props.sort(key=lambda p: args.folder.index(p.folder.split("/")[0]))
    if args.ids:
        props = [p for p in props if p.id in set(args.ids.split(","))]
    paths = write_sheets(props, args.work / "sheets", args.data, prefix=args.prefix)
    (args.work / "sheets" / f"{args.prefix}-order.json").write_text(json.dumps([p.id for p in props]))
    print(f"{len(props)} proposals on {len(paths)} sheets in {args.work / 'sheets'}")
    return 0


def _cli_apply(args: Any) -> int:
    from model_training import repairs

    doc = _load_doc(args.labels)
    got = decide(doc, load_proposals(args.work / "proposals.json"), parse_decisions(args.decisions.read_text()),
                 args.by)
    repairs.write(doc, args.labels)
    print(" ".join(f"{k} {v}" for k, v in got.items()), f"recorded in {args.labels}")
    return 0


def _cli_counts(args: Any) -> int:
    from model_training import repairs

    for folder, c in repairs.counts(repairs.read(args.labels)).items():
        print(f"{folder:<20}", " ".join(f"{k} {v}" for k, v in c.items()))
    return 0
