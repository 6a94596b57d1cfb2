"""Label repair (issue 35): the repairs file read by the data loaders, ignore regions everywhere a region could
be taken for background, the proposal pass's rules, and corrections exports as one more folder. Tiny
fixtures written here (never ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from model_training import augment, mine, repair, repairs
from model_training.augment import DetectorSampler, LandmarkSampler, Photo, load_photos
from model_training.data import load_folder, load_split
from model_training.evaluate import score_image
from model_training.train import default_config

PLATE = [40, 60, 100, 80]        # labelled in the data
MISSED = [300, 200, 360, 220]    # a plate the labels leave out: the repair adds it
UNSURE = [500, 100, 540, 112]    # a distant plate nobody can read: ignore


def _image(folder: Path, name: str, w: int = 640, h: int = 360, value: int = 90) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    path = folder / "images" / name
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))
    return path


def _voc(folder: Path, name: str, boxes: list[list[int]]) -> None:
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    body = "".join(f"<object><name>plate</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for b in boxes)
    (folder / "annotations" / (Path(name).stem + ".xml")).write_text(f"<annotation>{body}</annotation>")


def _region(rid: str, box: list[int], reviewed: bool = True, **extra: object) -> dict:
    return {"id": rid, "box": box, "quad": None, "by": "test", "why": "test", "reviewed": reviewed, **extra}


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for name in ("a.jpg", "b.jpg"):
        _image(root / "streets", name)
        _voc(root / "streets", name, [PLATE])
    return root


@pytest.fixture
def repairs_file(tmp_path: Path) -> Path:
    doc = {"version": repairs.SCHEMA_VERSION, "about": "test", "photos": [
        {"folder": "streets", "file": "a.jpg", "plates": [_region("p0000", MISSED)],
         "ignore": [_region("p0001", UNSURE, reviewed=False)],
         "rejected": [_region("p0002", [10, 300, 60, 320], kind="headlight")]}]}
    return repairs.write(doc, tmp_path / "repairs.json")


def test_a_repaired_plate_becomes_a_label_and_an_ignore_region_is_set(data_root: Path, repairs_file: Path) -> None:
    train, val = load_split(data_root, val_fraction=0.0, repairs=repairs_file)
    by = {s.path.name: s for s in train + val}
    assert by["a.jpg"].boxes.tolist() == [PLATE, MISSED]            # the rejected region stays background
    assert np.isnan(by["a.jpg"].corners[1]).all()
    assert by["a.jpg"].ignore.tolist() == [UNSURE]
    assert by["b.jpg"].boxes.tolist() == [PLATE] and by["b.jpg"].ignore.shape == (0, 4)
    given = {s.path.name: s for s in load_split(data_root, val_fraction=0.0, repairs=False)[0]}
    assert given["a.jpg"].boxes.tolist() == [PLATE] and given["a.jpg"].ignore.shape == (0, 4)
    # the photos' own scale follows into training photos
    [photo] = [p for p in load_photos([by["a.jpg"]], max_side=320)]
    np.testing.assert_allclose(photo.ignore, [[v / 2 for v in UNSURE]])
    np.testing.assert_allclose(photo.boxes[1], [v / 2 for v in MISSED])


def test_the_shipped_repairs_file_is_valid_and_read_by_default() -> None:
    doc = repairs.read(repairs.REPAIRS)
    table = repairs.load(repairs.REPAIRS)
    assert doc["version"] == repairs.SCHEMA_VERSION and doc["photos"]
    assert sum(len(r.plates) + len(r.ignore) for r in table.values()) > 0


@pytest.mark.parametrize("doc, message", [
    ({"version": 99, "photos": []}, "version 1"),
    ({"version": 1, "photos": [{"folder": "x", "file": "a.jpg", "plates": [{"id": "p1", "box": [5, 5, 1, 9]}]}]},
     "x2 > x1"),
    ({"version": 1, "photos": [{"file": "a.jpg"}]}, "lacks folder"),
])
def test_a_broken_repairs_file_is_refused_clearly(tmp_path: Path, doc: dict, message: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        repairs.load(path)


def test_detector_targets_ignore_the_anchors_on_an_ignore_region() -> None:
    cfg = default_config()["detector"]
    sampler = DetectorSampler([Photo(np.zeros((320, 320, 3), np.uint8), np.zeros((0, 4), np.float32),
                                     np.zeros((0, 4, 2), np.float32), "x")], cfg, size=320, synth_p=0.0)
    ignore = np.array([[150, 150, 190, 162]], np.float32)
    cls_free, _ = sampler.targets(np.zeros((0, 4), np.float32))
    cls_t, _ = sampler.targets(np.zeros((0, 4), np.float32), ignore)
    on = sampler.anchors_on(ignore)
    assert on.sum() > 0 and (cls_free[on] == 0).all()       # without the repair: background
    assert (cls_t[on] == -1).all() and (cls_t[~on] == 0).all()
    # a plate's positives stay positive even inside an ignore region around it
    plate = np.array([[150, 150, 190, 162]], np.float32)
    cls_p, _ = sampler.targets(plate, ignore)
    assert (cls_p == 1).sum() > 0


def test_ignore_boxes_follow_the_detector_crop_scale_and_flip(monkeypatch: pytest.MonkeyPatch) -> None:
    # a dark photo with one bright region, which is the ignore region: after any crop/scale/flip, the bright
    # pixels of the crop must lie inside the ignore box the targets receive
    img = np.zeros((360, 640, 3), np.uint8)
    img[100:140, 300:420] = 255
    photo = Photo(img, np.zeros((0, 4), np.float32), np.zeros((0, 4, 2), np.float32), "x",
                  ignore=np.array([[300, 100, 420, 140]], np.float32))
    cfg = default_config()["detector"]
    sampler = DetectorSampler([photo], cfg, size=320, synth_p=0.0, seed=1)
    monkeypatch.setattr(augment, "photometric", lambda rng, x: x)
    seen: list[np.ndarray] = []
    real = sampler.targets
    monkeypatch.setattr(sampler, "targets", lambda b, ig=None: (seen.append(ig), real(b, ig))[1])
    checked = 0
    for _ in range(40):
        x, cls_t, _ = sampler.sample()
        bright = np.argwhere(x.mean(axis=0) > 0.5)          # normalised: 255 -> ~1
        if not len(bright):
            continue
        ig = seen[-1][0]
        ys, xs = bright[:, 0], bright[:, 1]
        assert xs.min() >= ig[0] - 2 and xs.max() <= ig[2] + 2 and ys.min() >= ig[1] - 2 and ys.max() <= ig[3] + 2
        assert (cls_t[sampler.anchors_on(seen[-1])] == -1).all()
        checked += 1
    assert checked >= 5


def test_landmark_negatives_are_never_taken_on_an_ignore_region() -> None:
    img = np.full((300, 400, 3), 90, np.uint8)
    ignore = np.array([[0, 0, 400, 150], [0, 150, 200, 300]], np.float32)   # three quarters of the photo
    photo = Photo(img, np.zeros((0, 4), np.float32), np.zeros((0, 4, 2), np.float32), "x", ignore=ignore)
    sampler = LandmarkSampler([photo], default_config()["landmarks"], synth_p=0.0, neg_p=1.0, seed=0)
    boxes = [b for b in (sampler._negative_box(photo) for _ in range(300)) if b is not None]
    assert len(boxes) > 20
    assert all(mine.near_share(b, ignore) < 0.1 for b in boxes)
    unrepaired = Photo(img, photo.boxes, photo.corners, "x")
    free = [b for b in (sampler._negative_box(unrepaired) for _ in range(300)) if b is not None]
    assert any(mine.near_share(b, ignore) >= 0.1 for b in free)   # the test can fail: without it they land there


class _Detections:
    def __init__(self, boxes: list[list[float]]) -> None:
        self.boxes = boxes

    def detect(self, image: np.ndarray, score_threshold: float = 0.0) -> list:
        from model_store.runtime import Detection
        return [Detection(tuple(b), 0.9) for b in self.boxes]


def test_hard_negative_mining_skips_ignore_regions() -> None:
    photo = Photo(np.zeros((300, 600, 3), np.uint8), np.array([PLATE], np.float32), np.full((1, 4, 2), np.nan),
                  "x", ignore=np.array([UNSURE], np.float32))
    headlight = [200.0, 150.0, 240.0, 170.0]
    rows = mine.mine_hard_negatives(_Detections([PLATE, UNSURE, headlight]), [photo], progress=False)
    assert [r["box"] for r in rows] == [headlight]


def test_evaluation_counts_no_concealment_on_an_ignore_region_as_spurious() -> None:
    quad = np.array([[UNSURE[0], UNSURE[1]], [UNSURE[2], UNSURE[1]], [UNSURE[2], UNSURE[3]], [UNSURE[0], UNSURE[3]]])
    _, spurious, _, excess, _, _ = score_image((360, 640), np.array([PLATE]), [quad])
    assert spurious == 1 and excess > 0
    cov, spurious, _, excess, _, _ = score_image((360, 640), np.array([PLATE]), [quad], np.array([UNSURE]))
    assert spurious == 0 and excess == 0 and cov.tolist() == [0.0]   # no recall is asked of it either


# ------------------------------------------------------------------------------------ proposal pass

def _scan_line(folder: str, file: str, path: Path, cands: dict) -> str:
    return json.dumps({"key": f"{folder}/{file}", "folder": folder, "file": file, "path": str(path), "h": 360,
                       "w": 640, "cands": cands})


def _quad(b: list[int]) -> list[list[int]]:
    return [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]


def test_propose_keeps_confident_unlabelled_regions_merged_across_models(tmp_path: Path) -> None:
    root = tmp_path / "data"
    a = _image(root / "ro-dashcam", "a.jpg")
    _voc(root / "ro-dashcam", "a.jpg", [PLATE])
    b = _image(root / "open-lpr", "b.jpg")
    _voc(root / "open-lpr", "b.jpg", [PLATE])
    cache = tmp_path / "scan.jsonl"
    cache.write_text("\n".join([
        _scan_line("ro-dashcam", "a.jpg", a, {
            "2.0.0": [{"det": 0.9, "lm": 0.99, "quad": _quad(PLATE)},          # the labelled plate
                      {"det": 0.8, "lm": 0.95, "quad": _quad(MISSED)},         # unlabelled, confident
                      {"det": 0.35, "lm": 0.6, "quad": _quad(UNSURE)},          # low: not in this folder
                      {"det": 0.9, "lm": 0.9, "quad": _quad([50, 64, 70, 76])}],   # inside the label
            "1.10.0": [{"det": 0.7, "lm": 0.9, "quad": _quad([302, 201, 361, 221])}]}),   # the same plate
        _scan_line("open-lpr", "b.jpg", b, {"2.0.0": [{"det": 0.35, "lm": 0.6, "quad": _quad(UNSURE)}]}),
        '{"key": "cut off by an interrupted run',
    ]) + "\n")
    props = repair.propose(cache, root, known={})
    assert [(p.id, p.folder, p.box) for p in props] == [("p0000", "ro-dashcam", [float(v) for v in MISSED]),
                                                        ("p0001", "open-lpr", [float(v) for v in UNSURE])]
    assert sorted(props[0].models) == ["1.10.0", "2.0.0"]
    # the repairs file: every proposal an unreviewed ignore region, then the decisions, reviewed
    doc = repair.new_doc()
    assert repair.seed(doc, props) == 2 and repair.seed(doc, props) == 0
    assert repairs.counts(doc)["open-lpr"]["ignore_unreviewed"] == 1
    got = repair.decide(doc, props, repair.parse_decisions("0 plate readable\np1 reject headlight: fog light\n"),
                        by="test")
    assert got == {"plate": 1, "ignore": 0, "reject": 1}
    path = repairs.write(doc, tmp_path / "repairs.json")
    table = repairs.load(path)
    assert table["ro-dashcam/a.jpg"].plates.tolist() == [[float(v) for v in MISSED]]
    assert "open-lpr/b.jpg" not in table       # rejected: nothing to add or ignore
    [ph] = [p for p in repairs.read(path)["photos"] if p["folder"] == "open-lpr"]
    assert ph["rejected"][0]["kind"] == "headlight" and ph["rejected"][0]["reviewed"] is True
    with pytest.raises(ValueError, match="no proposal p0007"):
        repair.decide(doc, props, {"p0007": ("plate", "")}, by="test")
    with pytest.raises(ValueError, match="not one of"):
        repair.decide(doc, props, {"p0000": ("maybe", "")}, by="test")


def test_sheets_number_every_proposal(tmp_path: Path) -> None:
    root = tmp_path / "data"
    a = _image(root / "oi-streets", "a.jpg")
    _voc(root / "oi-streets", "a.jpg", [PLATE])
    props = [repair.Proposal(f"p{i:04d}", "oi-streets", "a.jpg", str(a), [float(v) for v in MISSED], _quad(MISSED),
                             0.9, {"2.0.0": [0.9, 0.9]}) for i in range(40)]
    sheets = repair.write_sheets(props, tmp_path / "sheets", root)
    assert [p.name for p in sheets] == ["sheet-000.png", "sheet-001.png"]
    first = cv2.imread(str(sheets[0]))
    assert first.shape[:2] == (6 * (repair.TILE + 2), 6 * (repair.TILE + 2))


# ------------------------------------------------------------------------------------ corrections

def _export(folder: Path) -> Path:
    """A ``plateveil models corrections export`` folder: one photo with a plate a reviewer drew and a removed
    false concealment, as ``corrections.export_corrections`` writes it."""
    _image(folder, "job-1.jpg")
    (folder / "corners").mkdir(parents=True)
    (folder / "corners" / "job-1.json").write_text(json.dumps({"plates": [_quad(MISSED)]}))
    (folder / "negatives.json").write_text(json.dumps({"job-1.jpg": [[10, 300, 60, 320]]}))
    (folder / "manifest.json").write_text(json.dumps({"jobs": [{"job_id": "job-1", "image": "job-1.jpg"}]}))
    return folder


def test_a_correction_changes_the_next_training_set_in_exactly_the_corrected_items(
        data_root: Path, tmp_path: Path) -> None:
    export = _export(tmp_path / "corrections")
    before = load_split(data_root, val_fraction=0.0, repairs=False)[0]
    after = load_split(data_root, val_fraction=0.0, repairs=False, corrections=export)[0]

    def items(samples: list) -> dict:
        return {(s.source, s.path.name): (s.boxes.tolist(), s.negatives.tolist()) for s in samples}

    b, a = items(before), items(after)
    assert {k: v for k, v in a.items() if b.get(k) != v} == {
        ("corrections", "job-1.jpg"): ([[float(v) for v in MISSED]], [[10.0, 300.0, 60.0, 320.0]])}
    assert set(b) <= set(a)
    # the removed false concealment is a hard negative of the landmark model, the drawn plate a positive
    photos = load_photos(after)
    sampler = LandmarkSampler(photos, default_config()["landmarks"], synth_p=0.0, seed=0)
    j = next(i for i, s in enumerate(after) if s.source == "corrections")
    assert [(i, b.tolist()) for i, b in sampler.known_negatives] == [(j, [10.0, 300.0, 60.0, 320.0])]


def test_a_corrections_folder_under_the_data_root_is_read_once(data_root: Path) -> None:
    export = _export(data_root / "corrections")
    train = load_split(data_root, val_fraction=0.0, repairs=False, corrections=export)[0]
    assert sum(s.path.name == "job-1.jpg" for s in train) == 1
    assert [s.negatives.tolist() for s in train if s.path.name == "job-1.jpg"] == [[[10.0, 300.0, 60.0, 320.0]]]


def test_a_folder_that_is_no_export_is_refused(tmp_path: Path) -> None:
    _image(tmp_path / "x", "a.jpg")
    with pytest.raises(ValueError, match="not a corrections export"):
        load_split(tmp_path, corrections=tmp_path / "x")


def test_load_folder_still_reads_plain_folders(data_root: Path) -> None:
    assert [s.ignore.shape for s in load_folder(data_root / "streets")] == [(0, 4), (0, 4)]


def test_ids_stay_when_a_scan_grows() -> None:
    def prop(box: list[int], file: str = "a.jpg") -> repair.Proposal:
        return repair.Proposal("", "oi-streets", file, "/x", [float(v) for v in box], _quad(box), 0.9, {})

    first = repair.number([prop(MISSED), prop(UNSURE)], [])
    assert [p.id for p in first] == ["p0000", "p0001"]
    # a new photo scanned before them, and one of the regions found a little differently by the tiles
    second = repair.number([prop(PLATE, "0.jpg"), prop(UNSURE), prop([301, 201, 361, 221])], first)
    assert [p.id for p in second] == ["p0002", "p0001", "p0000"]
