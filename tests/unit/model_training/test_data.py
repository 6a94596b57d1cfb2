"""Label readers, the split and the reviewed plates, on folders written here in each format."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from model_training import data as data_module
from model_training import repairs
from model_training.data import (
    DEFAULT_DATA_ROOT,
    REVIEW_ROUNDS,
    REVIEWED_PLATES,
    _image_size,
    load_folder,
    load_reviewed,
    load_split,
    split_of,
    with_reviewed,
    write_corners,
)


def _image(folder: Path, name: str, w: int = 200, h: int = 100) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    path = folder / "images" / name
    cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))
    return path


def _voc(folder: Path, name: str, objects: list[tuple[str, list[int]]]) -> None:
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    body = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    (folder / "annotations" / (Path(name).stem + ".xml")).write_text(f"<annotation>{body}</annotation>")


def test_voc_keeps_plates_only(tmp_path: Path) -> None:
    _image(tmp_path / "cars", "a.jpg")
    _voc(tmp_path / "cars", "a.jpg", [("licence", [10, 20, 60, 40]), ("car", [0, 0, 200, 100])])
    _image(tmp_path / "cars", "b.jpg")   # no annotation file: a photo without plates
    a, b = load_folder(tmp_path / "cars")
    assert a.boxes.tolist() == [[10, 20, 60, 40]] and a.source == "cars"
    assert np.isnan(a.corners).all() and a.corners.shape == (1, 4, 2)
    assert b.boxes.shape == (0, 4)


def test_yolo_denormalises_and_keeps_the_plate_class(tmp_path: Path) -> None:
    _image(tmp_path / "oi", "a.jpg", w=400, h=200)
    (tmp_path / "oi" / "labels").mkdir()
    (tmp_path / "oi" / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.1\n1 0.5 0.5 1 1\n")
    [a] = load_folder(tmp_path / "oi")
    np.testing.assert_allclose(a.boxes, [[150, 90, 250, 110]])


def test_corners_round_trip_and_give_their_bounding_box(tmp_path: Path) -> None:
    _image(tmp_path / "own", "a.jpg")
    quad = np.array([[[10, 12], [70, 10], [72, 30], [11, 33]]], np.float32)
    write_corners(tmp_path / "own", "a.jpg", quad)
    [a] = load_folder(tmp_path / "own")
    np.testing.assert_allclose(a.corners, quad)
    np.testing.assert_allclose(a.boxes, [[10, 10, 72, 33]])


def test_split_folders_and_the_fixed_split(tmp_path: Path) -> None:
    for sub in ("train", "test"):
        _image(tmp_path / "oi" / sub, f"{sub}.jpg")
        (tmp_path / "oi" / sub / "labels").mkdir()
    samples = load_folder(tmp_path / "oi")
    assert sorted(s.source for s in samples) == ["oi/test", "oi/train"]
    test = next(s for s in samples if s.source == "oi/test")
    assert split_of(test) == "val"   # a test/ folder is always held out
    assert split_of(test, val_fraction=0.0) == "val"
    train = next(s for s in samples if s.source == "oi/train")
    assert split_of(train, val_fraction=0.0) == "train" and split_of(train, val_fraction=1.0) == "val"


def test_unknown_format_and_missing_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid formats"):
        load_folder(tmp_path, "coco")
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "absent")


def test_reviewed_plates_are_added_by_source_and_name(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _image(root / "dash", "a.jpg")
    _voc(root / "dash", "a.jpg", [("plate", [10, 20, 60, 40])])
    _image(root / "dash", "b.jpg")
    reviewed = {"dash/a.jpg": np.array([[100, 50, 150, 70]], np.float32)}
    a, b = with_reviewed(load_folder(root / "dash"), reviewed)
    assert a.boxes.tolist() == [[10, 20, 60, 40], [100, 50, 150, 70]]
    assert a.corners.shape == (2, 4, 2) and np.isnan(a.corners[1]).all()
    assert b.boxes.shape == (0, 4)
    # the same photo read from the data root has the source "data/dash": still matched
    [a2, _] = with_reviewed(load_folder(root), reviewed)
    assert a2.source == "data/dash" and len(a2.boxes) == 2
    # another folder with a photo of the same name is not
    _image(tmp_path / "other", "a.jpg")
    (tmp_path / "other" / "annotations").mkdir()
    [c] = with_reviewed(load_folder(tmp_path / "other"), reviewed)
    assert c.boxes.shape == (0, 4)


def test_the_reviewed_plates_files_are_well_formed() -> None:
    assert REVIEWED_PLATES == REVIEW_ROUNDS[-1]
    for path in REVIEW_ROUNDS:
        doc = json.loads(path.read_text())
        assert doc["about"] and doc["reviewed"] and doc["plates"], path
    plates = load_reviewed()
    assert sum(len(b) for b in plates.values()) > 100
    for key, boxes in plates.items():
        assert key.count("/") >= 1 and Path(key).suffix == ".jpg", key
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all() and (boxes >= 0).all(), key


@pytest.mark.skipif(not DEFAULT_DATA_ROOT.is_dir(), reason="needs ../shared/data")
def test_every_reviewed_plate_lands_on_a_photo_of_the_data() -> None:
    given = load_split(reviewed=False)
    added = load_split(repairs=False)
    n_added = sum(len(b) for b in load_reviewed().values())
    count = [sum(len(s.boxes) for s in split) for split in (*given, *added)]
    assert count[2] + count[3] == count[0] + count[1] + n_added   # every key matched a photo
    # the label repairs (applied by default on top of every review round) add exactly their plates
    repaired = load_split()
    n_repaired = sum(len(r.plates) for r in repairs.load().values())
    assert sum(len(s.boxes) for s in (*repaired[0], *repaired[1])) == count[2] + count[3] + n_repaired
    for before, after in zip(given[0] + given[1], added[0] + added[1], strict=True):
        if len(after.boxes) > len(before.boxes):
            h, w = _image_size(after.path)
            extra = after.boxes[len(before.boxes):]
            assert (extra[:, 2] <= w).all() and (extra[:, 3] <= h).all(), after.path


def test_review_rounds_merge_in_order_and_a_stage_sees_only_its_rounds(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rounds = [tmp_path / "r1.json", tmp_path / "r2.json"]
    rounds[0].write_text(json.dumps({"plates": {"dash/a.jpg": [[1, 2, 30, 12]]}}))
    rounds[1].write_text(json.dumps({"plates": {"dash/a.jpg": [[50, 2, 80, 12]], "dash/b.jpg": [[5, 5, 25, 15]]}}))
    monkeypatch.setattr(data_module, "REVIEW_ROUNDS", rounds)
    assert {k: v.tolist() for k, v in load_reviewed(rounds=1).items()} == {"dash/a.jpg": [[1, 2, 30, 12]]}
    both = load_reviewed()
    assert both["dash/a.jpg"].tolist() == [[1, 2, 30, 12], [50, 2, 80, 12]] and both["dash/b.jpg"].shape == (1, 4)
    assert load_reviewed(rounds[1]).keys() == {"dash/a.jpg", "dash/b.jpg"}   # one file on its own
    root = tmp_path / "data"
    _image(root / "dash", "a.jpg")
    _voc(root / "dash", "a.jpg", [("plate", [100, 20, 160, 40])])
    train, val = load_split(root, val_fraction=0.0, rounds=1)
    assert [len(s.boxes) for s in train + val] == [2]
    train, val = load_split(root, val_fraction=0.0)
    assert [len(s.boxes) for s in train + val] == [3]
    train, val = load_split(root, val_fraction=0.0, reviewed=False)
    assert [len(s.boxes) for s in train + val] == [1]
