"""``plateveil models corrections export DIR`` over the real stack: a corrected job's photo and plates come
out in the corners format that ``model_training.data.load_folder`` reads, its removed false positive as a
negative, and uncorrected jobs stay out; the training reader takes the export as one more folder, so the next
training set differs from the last in exactly the corrected photo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from model_training.corrections import load_negatives, negatives_as_rows
from model_training.data import load_folder, load_split
from plateveil_ops.samples import render_scene
from tests.integration.test_review_api import login

pytestmark = pytest.mark.integration


def test_export_writes_what_the_training_reader_reads(stack, client, tmp_path):
    scene = render_scene(seed=21, size=(480, 360))
    corrected = client.wait(client.submit_photo(scene.jpeg())["job_id"], timeout=60)
    untouched = client.wait(client.submit_photo(render_scene(seed=22, size=(480, 360)).jpeg())["job_id"], timeout=60)
    assert corrected["status"] == untouched["status"] == "done" and corrected["plate_count"] >= 1
    http, token = login(stack)
    drawn = [[300.0, 40.0], [380.0, 40.0], [380.0, 70.0], [300.0, 70.0]]
    resp = http.post(f"/review/api/jobs/{corrected['job_id']}/corrections", headers={"X-CSRF-Token": token},
                     json={"revision": 0, "remove": [0], "add": [drawn]})
    assert resp.status_code == 200, resp.text
    http.close()
    removed = corrected["plates"][0]["polygon"]

    out = tmp_path / "corrections"
    run = subprocess.run([sys.executable, "-m", "plateveil_ops.cli", "models", "corrections", "export", str(out),
                          "--since", corrected["completed_at"][:10]],
                         capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert run.returncode == 0, run.stderr
    assert "corrected photos" in run.stdout

    samples = {s.path.stem: s for s in load_folder(out)}
    assert corrected["job_id"] in samples and untouched["job_id"] not in samples
    sample = samples[corrected["job_id"]]
    expected = [p["polygon"] for p in corrected["plates"][1:]] + [drawn]
    assert np.allclose(sample.corners, np.asarray(expected, np.float32).reshape(-1, 4, 2), atol=0.05)
    assert sample.image.shape == (360, 480, 3)
    assert sample.path.read_bytes() == scene.jpeg()          # the original itself (no EXIF rotation)

    negatives = load_negatives(out)
    box = [min(x for x, _ in removed), min(y for _, y in removed), max(x for x, _ in removed),
           max(y for _, y in removed)]
    assert np.allclose(negatives[sample.path.name], [box], atol=0.1)
    rows = negatives_as_rows(list(samples.values()), negatives)
    index = list(samples).index(corrected["job_id"])
    assert [(i, b.round(1).tolist()) for i, b in rows if i == index] == [(index, np.float32(box).round(1).tolist())]

    manifest = json.loads((out / "manifest.json").read_text())
    mine = next(j for j in manifest["jobs"] if j["job_id"] == corrected["job_id"])
    assert mine["drawn"] == 1 and mine["negatives"] == 1 and mine["by"] == ["reviewer"]
    assert manifest["sidecars_read"] >= 2

    # the recipe's reader (--corrections / $PLATEVEIL_CORRECTIONS_DIR): one more folder, split by the same rule
    data_root = tmp_path / "data"
    (data_root / "cars" / "images").mkdir(parents=True)
    (data_root / "cars" / "images" / "a.jpg").write_bytes(render_scene(seed=23, size=(320, 240)).jpeg())
    (data_root / "cars" / "annotations").mkdir()
    (data_root / "cars" / "annotations" / "a.xml").write_text(
        "<annotation><object><name>plate</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>60</xmax>"
        "<ymax>40</ymax></bndbox></object></annotation>")

    def items(samples):
        return {(s.source, s.path.name): (s.boxes.round(1).tolist(), s.negatives.round(1).tolist()) for s in samples}

    before = items(load_split(data_root, val_fraction=0.0, repairs=False)[0])
    after = items(load_split(data_root, val_fraction=0.0, repairs=False, corrections=out)[0])
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    assert set(before) <= set(after)
    assert set(changed) == {(s.source, s.path.name) for s in samples.values()}    # every corrected photo, no other
    boxes, negs = changed[(sample.source, sample.path.name)]
    assert np.allclose(boxes, sample.boxes.round(1), atol=0.1) and np.allclose(negs, [box], atol=0.1)


def test_export_refuses_a_bad_day(stack, tmp_path):
    run = subprocess.run([sys.executable, "-m", "plateveil_ops.cli", "models", "corrections", "export",
                          str(tmp_path / "x"), "--since", "last week"], capture_output=True, text=True,
                         env=os.environ.copy(), timeout=120)
    assert run.returncode != 0 and "YYYY-MM-DD" in run.stderr

