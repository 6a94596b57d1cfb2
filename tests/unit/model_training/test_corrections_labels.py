"""The corrections export's plain parts (model_training/corrections.py): which plates and negatives a
corrected sidecar gives, the day prefixes it lists, and reading it back with the training data reader."""

from __future__ import annotations

import json
from datetime import date

import cv2
import numpy as np
import pytest

from model_training.corrections import (
    day_prefixes,
    export_corrections,
    labels_of,
    load_negatives,
    negatives_as_rows,
)
from model_training.data import load_folder
from plateveil.storage.local import LocalStore

Q1 = [[10.0, 10.0], [50.0, 10.0], [50.0, 30.0], [10.0, 30.0]]
Q2 = [[100.0, 40.0], [160.0, 40.0], [160.0, 60.0], [100.0, 60.0]]
Q3 = [[200.0, 100.0], [260.0, 100.0], [260.0, 120.0], [200.0, 120.0]]


def sidecar(plates, corrections, job_id="j1") -> dict:
    return {"job_id": job_id, "model": "m@1", "plates": plates, "corrections": corrections,
            "image": {"width": 320, "height": 240, "format": "jpeg"},
            "source": {"bucket": "orig", "key": f"originals/2026/12/01/{job_id}.jpg"},
            "output": {"bucket": "out", "key": f"concealed/2026/12/01/{job_id}.jpg"}}


def test_labels_of_keeps_final_plates_and_removed_non_plates():
    side = sidecar([{"polygon": Q1, "score": 0.99}, {"polygon": Q3, "score": None, "origin": "reviewer"}], [
        {"removed": [{"index": 1, "polygon": Q2}]},
        {"removed": [{"index": 0, "polygon": Q3}]},      # removed, then drawn again: a plate, no negative
        {"removed": [{"index": 2, "polygon": Q2}]},      # the same region twice: one negative
    ])
    plates, negatives, drawn = labels_of(side)
    assert plates == [Q1, Q3] and drawn == 1
    assert negatives == [[100.0, 40.0, 160.0, 60.0]]


def test_day_prefixes():
    assert day_prefixes("concealed", None) == ["concealed/"]
    assert day_prefixes("concealed/", date(2026, 11, 30), date(2026, 12, 1)) == \
        ["concealed/2026/11/30/", "concealed/2026/12/01/"]
    with pytest.raises(ValueError, match="future"):
        day_prefixes("concealed", date(2026, 12, 2), date(2026, 12, 1))


def test_export_from_a_local_store_reads_back(tmp_path):
    store = LocalStore(tmp_path / "objects")
    for bucket in ("orig", "out"):
        store.ensure_bucket(bucket)
    img = np.full((240, 320, 3), 90, np.uint8)
    for job_id, corrections in (("j1", [{"by": "alice", "removed": [{"index": 1, "polygon": Q2}]}]), ("j2", [])):
        side = sidecar([{"polygon": Q1, "score": 0.99}], corrections, job_id)
        store.put("orig", side["source"]["key"], cv2.imencode(".jpg", img)[1].tobytes(), "image/jpeg")
        store.put("out", side["output"]["key"] + ".json", json.dumps(side).encode(), "application/json")
    store.put("out", "concealed/2026/12/01/broken.jpg.json", b"{not json", "application/json")
    summary = export_corrections(store, "out", "concealed", tmp_path / "export")
    assert (summary.jobs, summary.plates, summary.negatives, summary.sidecars_read) == (1, 1, 1, 3)
    samples = load_folder(tmp_path / "export")
    assert [s.path.name for s in samples] == ["j1.jpg"]
    assert np.allclose(samples[0].corners, [Q1]) and np.allclose(samples[0].boxes, [[10, 10, 50, 30]])
    rows = negatives_as_rows(samples, load_negatives(tmp_path / "export"), max_side=160)
    assert len(rows) == 1 and rows[0][0] == 0 and np.allclose(rows[0][1], [50, 20, 80, 30])   # scaled by 0.5
    assert load_negatives(tmp_path / "nothing") == {}
