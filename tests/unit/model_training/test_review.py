"""``plateveil models review``: the shipped model proposes the plates a folder's labels leave out, a person
accepts some by number, and the labels then have them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from model_store.golden import drawn_photos
from model_training.data import load_reviewed, load_split, with_reviewed
from model_training.mine import near_share
from plateveil_ops.cli import main


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """Two drawn car photos in a VOC folder: golden-2 with its plate labelled, golden-3 with none."""
    folder = tmp_path / "data" / "cars"
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    two, three = drawn_photos()[1:]
    for g in (two, three):
        cv2.imwrite(str(folder / "images" / f"{g.name}.jpg"), g.image)
    quad = np.asarray(two.plates[0])
    x1, y1 = quad.min(axis=0)
    x2, y2 = quad.max(axis=0)
    (folder / "annotations" / f"{two.name}.xml").write_text(
        f"<annotation><object><name>plate</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
        f"<ymax>{y2}</ymax></bndbox></object></annotation>")
    return tmp_path / "data"


def test_review_then_accept_adds_the_unlabelled_plate(data_root: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out, labels = tmp_path / "review", tmp_path / "reviewed.json"
    assert main(["models", "review", "--data", str(data_root), "--out", str(out), "--labels-file", str(labels)]) == 0
    assert "on 2 photos" in capsys.readouterr().out
    cands = json.loads((out / "candidates.json").read_text())
    # the labelled plate is not proposed; golden-3's plate is
    three = drawn_photos()[2]
    quad = np.asarray(three.plates[0])
    truth = [*quad.min(axis=0), *quad.max(axis=0)]
    on_plate = [i for i, c in enumerate(cands) if c["key"] == f"cars/{three.name}.jpg"
                and min(c["box"][2], truth[2]) - max(c["box"][0], truth[0]) > 0.5 * (truth[2] - truth[0])]
    assert on_plate, cands
    two = np.asarray(drawn_photos()[1].plates[0])
    labelled = np.array([[*two.min(axis=0), *two.max(axis=0)]])
    assert not [c for c in cands if near_share(np.asarray(c["box"]), labelled) >= 0.1]
    sheet = cv2.imread(str(out / "sheet-00.png"))
    assert sheet is not None and sheet.shape[1] == 8 * 200

    assert main(["models", "review", "--out", str(out), "--labels-file", str(labels),
                 "--accept", ",".join(map(str, on_plate))]) == 0
    assert capsys.readouterr().out.startswith("1 plates added")   # regions on one plate are one plate
    reviewed = load_reviewed(labels)
    train, val = load_split(data_root, reviewed=False)
    after = {s.path.name: s for s in with_reviewed(train + val, reviewed)}
    assert len(after[f"{three.name}.jpg"].boxes) == 1 and len(after[f"{drawn_photos()[1].name}.jpg"].boxes) == 1

    # accepting again adds nothing; a number that is not on the sheets is refused
    assert main(["models", "review", "--out", str(out), "--labels-file", str(labels), "--accept", str(on_plate[0])]) == 0
    assert "0 plates added" in capsys.readouterr().out
    assert {k: v.tolist() for k, v in load_reviewed(labels).items()} == {k: v.tolist() for k, v in reviewed.items()}
    with pytest.raises(ValueError, match="no candidate numbered"):
        main(["models", "review", "--out", str(out), "--labels-file", str(labels), "--accept", str(len(cands))])
    # a second review proposes the accepted plate no more
    assert main(["models", "review", "--data", str(data_root), "--out", str(out), "--labels-file", str(labels)]) == 0
    again = json.loads((out / "candidates.json").read_text())
    assert len(again) == len(cands) - len(on_plate)
