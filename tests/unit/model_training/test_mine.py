"""Hard-negative mining keeps the detector's mistakes and only those; the sampler crops them from their own photo."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from model_store.runtime import Detection
from model_training import mine
from model_training.augment import LandmarkSampler, Photo
from model_training.train import default_config


class FixedDetector:
    """Stands in for the detector: returns the same detections for every photo (filtered by score)."""

    def __init__(self, detections: list[Detection]) -> None:
        self.detections = detections

    def detect(self, image: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        return [d for d in self.detections if d.score >= (score_threshold or 0.0)]


def _photo(boxes: list[list[float]], value: int = 90) -> Photo:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Photo(np.full((300, 400, 3), value, np.uint8), b, np.full((len(b), 4, 2), np.nan, np.float32), "t")


def test_mining_keeps_only_detections_away_from_plates() -> None:
    plate = [100, 100, 180, 120]
    dets = [Detection((102, 101, 178, 121), 0.9),   # the plate itself
            Detection((175, 95, 215, 125), 0.5),    # mostly inside the plate's "near" region (x pad 20, y pad 10)
            Detection((300, 200, 360, 215), 0.4),   # far away: a false positive
            Detection((10, 10, 50, 20), 0.1)]       # far away but under the score floor
    rows = mine.mine_hard_negatives(FixedDetector(dets), [_photo([plate]), _photo([])], min_score=0.15,
                                    progress=False)
    assert [(r["photo"], r["box"]) for r in rows] == [
        (0, [300.0, 200.0, 360.0, 215.0]),
        (1, [102.0, 101.0, 178.0, 121.0]), (1, [175.0, 95.0, 215.0, 125.0]), (1, [300.0, 200.0, 360.0, 215.0]),
    ]


def test_mining_caps_per_photo_and_round_trips(tmp_path: Path) -> None:
    dets = [Detection((10.0 * i, 5, 10.0 * i + 30, 15), 0.2 + 0.01 * i) for i in range(20)]
    rows = mine.mine_hard_negatives(FixedDetector(dets), [_photo([])], max_per_photo=5, progress=False)
    assert len(rows) == 5
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)  # the strongest first
    loaded = mine.load(mine.save(rows, tmp_path / "hn.json"))
    assert [i for i, _ in loaded] == [0] * 5
    np.testing.assert_allclose(loaded[0][1], rows[0]["box"])
    assert mine.load(tmp_path / "missing.json") == []


def test_sampler_crops_a_hard_negative_from_its_own_photo() -> None:
    # photo 0 is dark and holds the false positive; photo 1 is bright. Every negative is a hard one,
    # so every negative crop must be dark: the box is cut from the photo it was mined on.
    photos = [_photo([[20, 20, 80, 40]], value=20), _photo([[20, 20, 80, 40]], value=235)]
    sampler = LandmarkSampler(photos, default_config()["landmarks"], synth_p=0.0, neg_p=1.0, seed=3, hard_p=1.0)
    sampler.hard_negatives = [(0, np.array([200, 150, 260, 165], np.float32))]
    for _ in range(12):
        x, corners, label, weight = sampler.sample()
        assert label == 0.0 and weight == 0.0
        std = np.asarray(sampler.cfg["std"], np.float32)[:, None, None]
        mean = np.asarray(sampler.cfg["mean"], np.float32)[:, None, None]
        pixels = (x[::-1] * std[::-1] + mean[::-1]) * 255  # back to BGR 0-255 (approximately, photometric jitter)
        assert pixels.mean() < 90  # dark photo: at most 20 * 1.4 + 30; the bright one: at least 235 * 0.6 - 30


@pytest.mark.parametrize("stage", ["detector-ft", "landmarks-ft"])
def test_recipe_stage_refuses_without_its_inputs(tmp_path: Path, stage: str) -> None:
    from model_training.recipe import train

    with pytest.raises(FileNotFoundError, match="train that stage first|hard_negatives"):
        train(stage, tmp_path / "no-data", tmp_path / stage)


def test_low_resolution_keeps_the_crop_shape_and_removes_fine_detail() -> None:
    from model_training.augment import low_resolution

    cfg = default_config()["landmarks"]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:cfg["input_h"], 0:cfg["input_w"]]
    sharp = np.repeat((((yy // 2 + xx // 2) % 2) * 255).astype(np.uint8)[:, :, None], 3, axis=2)  # 2-px checks
    for _ in range(10):
        out = low_resolution(rng, sharp, cfg)
        assert out.shape == sharp.shape and out.dtype == np.uint8
        # a plate of at most 40 px cannot hold 2-px checks: they average out to mid grey
        assert cv2.Laplacian(out, cv2.CV_64F).var() < 0.1 * cv2.Laplacian(sharp, cv2.CV_64F).var()


def test_sampler_degrades_both_classes_alike() -> None:
    photos = [_photo([[150, 120, 250, 150]], value=60)]
    photos[0].image[125:145, 160:240] = 230   # a bright "plate" so positives differ from the background
    for neg_p, label in [(0.0, 1.0), (1.0, 0.0)]:
        sampler = LandmarkSampler(photos, default_config()["landmarks"], synth_p=0.0, neg_p=neg_p, seed=1,
                                  lowres_p=1.0)
        for _ in range(5):
            assert sampler.sample()[2] == label


def test_run_all_goes_in_order_and_keeps_what_is_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe driver: every step once, in PIPELINE order; a rerun repeats nothing that finished."""

    from model_store import runtime
    from model_training import build, recipe, runner, tune

    calls: list[str] = []

    def fake_train(part: str, data_root: Path, out_dir: Path, **_: object) -> Path:
        calls.append(part)
        out_dir.mkdir(parents=True)
        (out_dir / "final.params").write_text(part)
        return out_dir

    archs: dict[str, str] = {}

    def fake_build(det: Path, lm: Path, out: Path, version: str, overrides: dict | None = None,
                   detector_arch: str = "ssd_mnet025_fpn") -> Path:
        calls.append(f"build {det.parent.name}+{lm.parent.name} {version}" + (" tuned" if overrides else ""))
        archs[det.parent.name] = detector_arch
        return out

    def fake_mine(model: object, photos: object, **_: object) -> list[dict]:
        return [{"photo": 0, "box": [1.0, 2.0, 3.0, 4.0], "score": 0.5}]

    mined_with: list[tuple[bool, int | None]] = []

    def fake_split(root: Path, reviewed: bool = True, rounds: int | None = None) -> tuple[list, list]:
        mined_with.append((reviewed, rounds))
        return [], []

    monkeypatch.setattr(runner, "train_stage", lambda table, part, data_root, out_dir, **k: fake_train(
        part, data_root, out_dir))
    monkeypatch.setattr(build, "build_bundle", fake_build)
    monkeypatch.setattr(runtime, "load_model", lambda path, **_: SimpleNamespace(tag=str(path), config={"landmarks": {}}))
    monkeypatch.setattr(mine, "mine_hard_negatives", fake_mine)
    monkeypatch.setattr("model_training.augment.load_photos", lambda samples: [])
    monkeypatch.setattr("model_training.data.load_split", fake_split)
    monkeypatch.setattr(tune, "collect", lambda model, samples, **_: [])
    best = {"score_threshold": 0.3, "lm_threshold": 0.9, "keep_detector_above": 1.01, "margin_x": 0.05,
            "margin_y": 0.1, "recall_08": 1.0}
    monkeypatch.setattr(tune, "sweep", lambda collected, *limits, **_: (best, [best]))

    recipe.run_all(tmp_path / "data", tmp_path / "run", "9.9.9")
    trained = [c for c in calls if not c.startswith("build")]
    assert trained == [s[1] for s in recipe.PIPELINE if s[0] == "train"] == list(recipe.RECIPE)
    # each mining bundle is built after both of its stages and before the stage that learns from it
    assert calls.index("landmarks-ft2") < calls.index("build detector-ft2+landmarks-ft2 9.9.9-landmarks-ft2") \
        < calls.index("landmarks-ft3")
    assert calls.index("landmarks-ft3") < calls.index("build detector-ft3+landmarks-ft3 9.9.9-landmarks-ft3") \
        < calls.index("landmarks-ft4")
    assert calls.index("landmarks-ft4") < calls.index("build detector-ft4+landmarks-ft4 9.9.9-landmarks-ft4") \
        < calls.index("landmarks-ft5")
    assert calls.index("landmarks-ft5") < calls.index("build detector-sq+landmarks-ft5 9.9.9-landmarks-ft5") \
        < calls.index("landmarks-ft6")
    assert calls.index("detector-sq2") < calls.index("landmarks-ft6") \
        < calls.index("build detector-sq2+landmarks-ft6 9.9.9-landmarks-ft6") < calls.index("landmarks-ft7")
    assert calls.index("landmarks-ft7") < calls.index("build detector-sq2+landmarks-ft7 9.9.9-landmarks-ft7") \
        < calls.index("landmarks-ft8")
    # the averaging stages come after the stages they average; the shipped bundle is built of them
    assert calls.index("detector-sq3") < calls.index("detector-avg") < calls.index("detector-sq4") \
        < calls.index("detector-avg2")
    assert recipe.RECIPE["detector-avg2"]["average"] == ["detector-sq2", "detector-sq3", "detector-sq4"]
    assert recipe.SHIPPED == ("detector-avg2", "landmarks-avg10")
    assert calls.index("landmarks-ft8b") < calls.index("landmarks-avg") < calls.index("landmarks-ft9") \
        < calls.index("landmarks-ft9b") < calls.index("landmarks-avg9") < calls.index("landmarks-avg10")
    assert recipe.RECIPE["landmarks-avg10"]["average"] == ["landmarks-ft8", "landmarks-ft8b", "landmarks-ft9",
                                                           "landmarks-ft9b"]
    # each bundle's detector is built as the architecture its stage was trained as
    assert archs == {s: recipe.RECIPE[s]["arch"] for s in archs} and archs["detector-sq"] == "ssd_mnet025_fpn_sq"
    for name in recipe.MINED:
        assert mine.load(tmp_path / "run" / name)[0][0] == 0
    # the mining steps use the labels their detector was trained on: the data's own, then those with the first
    # review round, then with both; the sweep (the last load_split) every round
    assert mined_with == [(False, 0)] * 4 + [(True, 1), (True, 1), (True, 2), (True, 2), (True, None)]
    assert json.loads((tmp_path / "run" / "tune" / "overrides.json").read_text()) == tune.overrides_for(best)
    shipped = "build {}+{} 9.9.9 tuned".format(*recipe.SHIPPED)
    assert calls[-1] == shipped

    calls.clear()
    recipe.run_all(tmp_path / "data", tmp_path / "run", "9.9.9")
    assert calls == [shipped]   # only the final bundle is rebuilt


@pytest.mark.parametrize("flag", [["--iterations", "5"], ["--seed", "1"], ["--synth-p", "0.1"]])
def test_train_all_refuses_one_stage_flags(flag: list[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from model_training import recipe
    from plateveil_ops.cli import main

    monkeypatch.setattr(recipe, "run_all", lambda *a, **k: pytest.fail("must not start training"))
    with pytest.raises(SystemExit, match=f"{flag[0]} apply to one stage"):
        main(["models", "train", "all", "--out", str(tmp_path), *flag])


def test_a_fine_tune_drops_mined_negatives_on_plates_its_labels_have(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows mined before a plate was added to the labels (a reviewed one) must not teach "not a plate"."""
    from model_training import recipe

    stage = next(s for s, r in recipe.RECIPE.items() if r["model"] == "landmarks" and r["review_rounds"])
    r = recipe.RECIPE[stage]
    (tmp_path / r["init_from"]).mkdir()
    (tmp_path / r["init_from"] / "final.params").write_text("x")
    plate = [100.0, 50.0, 160.0, 70.0]
    for name in r["hard_negatives"]:   # one row on the (reviewed) plate, one on a headlight, per file
        mine.save([{"photo": 0, "box": [102.0, 51.0, 158.0, 69.0], "score": 0.4},
                   {"photo": 0, "box": [300.0, 50.0, 340.0, 70.0], "score": 0.3}], tmp_path / name)
    photo = SimpleNamespace(image=np.zeros((200, 400, 3), np.uint8), boxes=np.array([plate], np.float32),
                            corners=np.full((1, 4, 2), np.nan, np.float32), source="dash")
    seen: dict[str, object] = {}
    monkeypatch.setattr("model_training.data.load_split", lambda root, reviewed=True, rounds=None: (
        seen.update(reviewed=reviewed, rounds=rounds) or ([photo], [])))
    monkeypatch.setattr("model_training.augment.load_photos", lambda samples: samples)
    monkeypatch.setattr("model_training.train.train_landmarks",
                        lambda photos, config, opts, hard_negatives, **_: seen.update(hard=hard_negatives))
    recipe.train(stage, tmp_path / "data", tmp_path / stage)
    assert seen["reviewed"] is True and seen["rounds"] == r["review_rounds"]
    assert [box.tolist() for _, box in seen["hard"]] == [[300.0, 50.0, 340.0, 70.0]] * len(r["hard_negatives"])
    summary = json.loads((tmp_path / stage / "summary.json").read_text())
    assert summary["hard_negatives_on_plates_dropped"] == len(r["hard_negatives"])


def _stage_on_one_photo(stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Set up recipe stage ``stage`` to run in ``tmp_path`` on one blank training photo: the stage it starts
    from has weights, each mined file it names holds one row; returns the stage's recipe entry."""
    from model_training import recipe

    r = recipe.RECIPE[stage]
    (tmp_path / r["init_from"]).mkdir()
    (tmp_path / r["init_from"] / "final.params").write_text("x")
    for name in r.get("hard_negatives", []):
        mine.save([{"photo": 0, "box": [300.0, 50.0, 340.0, 70.0], "score": 0.3}], tmp_path / name)
    photo = SimpleNamespace(image=np.zeros((200, 400, 3), np.uint8), boxes=np.zeros((0, 4), np.float32),
                            corners=np.zeros((0, 4, 2), np.float32), source="dash")
    monkeypatch.setattr("model_training.data.load_split", lambda root, reviewed=True, rounds=None: ([photo], []))
    monkeypatch.setattr("model_training.augment.load_photos", lambda samples: samples)
    return r


@pytest.mark.parametrize("stage", ["landmarks-ft7", "landmarks-ft8", "landmarks-ft9"])
def test_a_stage_draws_the_synthetic_layouts_and_negatives_its_recipe_names(stage: str, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The stages trained before the "dark" layout existed keep the six they drew; a stage with
    ``layouts: None`` (the later landmark stages) draws every layout. Only the stages that name them draw
    the generator's non-plates and the boxes beside a plate as negatives."""
    from model_training import recipe
    from model_training.synth import LAYOUTS

    r = _stage_on_one_photo(stage, tmp_path, monkeypatch)
    seen: dict[str, object] = {}
    monkeypatch.setattr("model_training.train.train_landmarks",
                        lambda *a, layouts, context_p, synth_neg_p, synth_neg_kinds, **_: seen.update(
                            layouts=layouts, context_p=context_p, synth_neg_p=synth_neg_p, kinds=synth_neg_kinds))
    recipe.train(stage, tmp_path / "data", tmp_path / stage)
    every = stage != "landmarks-ft7"
    want = list(LAYOUTS) if every else [lay for lay in LAYOUTS if lay != "dark"]
    assert seen["layouts"] == want
    assert json.loads((tmp_path / stage / "summary.json").read_text())["layouts"] == want
    assert r["layouts"] is (None if every else recipe._SIX_LAYOUTS)
    assert [s for s, v in recipe.RECIPE.items() if v.get("layouts", ()) is None] == [
        "detector-sq4", "landmarks-ft8", "landmarks-ft8b", "landmarks-ft9", "landmarks-ft9b"]
    assert (seen["context_p"], seen["synth_neg_p"]) == ((0.5, 0.4) if stage == "landmarks-ft9" else (0.0, 0.0))
    if stage == "landmarks-ft9":   # no characters on a light rectangle: those look like plates to the score
        assert seen["kinds"] and not {"sign", "sticker", "price_tag", "phone"} & set(seen["kinds"])


@pytest.mark.parametrize("stage", ["detector-sq3", "detector-sq4"])
def test_a_detector_stage_draws_the_layouts_its_recipe_names(stage: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``detector-sq4`` is the first detector stage to draw the "dark" layout; it starts from the averaged
    ``detector-avg`` (same anchors, so its weights are used as they are)."""
    from model_training import recipe
    from model_training.synth import LAYOUTS

    r = _stage_on_one_photo(stage, tmp_path, monkeypatch)
    seen: dict[str, object] = {}
    monkeypatch.setattr("model_training.train.train_detector",
                        lambda photos, config, opts, *, layouts, **_: seen.update(layouts=layouts, opts=opts))
    recipe.train(stage, tmp_path / "data", tmp_path / stage)
    dark = stage == "detector-sq4"
    assert ("dark" in seen["layouts"]) is dark
    assert seen["layouts"] == (list(LAYOUTS) if dark else list(recipe._SIX_LAYOUTS))
    assert seen["opts"].init_from == tmp_path / r["init_from"] / "final.params"


@pytest.mark.parametrize("stage", ["landmarks-avg", "detector-avg2"])
def test_an_averaging_stage_writes_the_mean_of_its_stages(stage: str, tmp_path: Path) -> None:
    """``landmarks-avg`` (two stages) / ``detector-avg2`` (three) train nothing: final.params is the mean of the
    stages they name, which must have finished; one-stage training flags do not apply to them."""
    mx = pytest.importorskip("mxnet")
    from model_training import recipe

    r = recipe.RECIPE[stage]
    with pytest.raises(FileNotFoundError, match="train them first"):
        recipe.train(stage, tmp_path / "data", tmp_path / stage)
    for i, name in enumerate(r["average"]):
        (tmp_path / name).mkdir()
        mx.nd.save(str(tmp_path / name / "final.params"), {"w": mx.nd.full((2, 3), float(i + 1))})
    with pytest.raises(ValueError, match="do not apply"):
        recipe.train(stage, tmp_path / "data", tmp_path / stage, iterations=5)
    out = recipe.train(stage, tmp_path / "data", tmp_path / stage)
    n = len(r["average"])
    np.testing.assert_allclose(mx.nd.load(str(out / "final.params"))["w"].asnumpy(), np.full((2, 3), (n + 1) / 2))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stage"] == stage and len(summary["sources"]) == n == (3 if stage == "detector-avg2" else 2)


def test_the_mined_sample_sheet_numbers_each_drawn_row_with_its_folder(tmp_path: Path) -> None:
    photos = [Photo(np.full((300, 400, 3), v, np.uint8), np.array([[20, 20, 80, 40]], np.float32),
                    np.full((1, 4, 2), np.nan, np.float32), src) for v, src in ((40, "open-lpr"), (200, "oi-streets"))]
    rows = [{"photo": i % 2, "box": [100.0 + i, 50.0, 140.0 + i, 65.0], "score": 0.1 + i / 100} for i in range(30)]
    png, drawn = mine.sample_sheet(rows, photos, tmp_path / "sheet.png", n=10, seed=1, cols=5)
    assert [d["n"] for d in drawn] == list(range(1, 11))
    assert len({(d["photo"], tuple(d["box"])) for d in drawn}) == 10   # ten different rows
    assert {d["source"] for d in drawn} == {"open-lpr", "oi-streets"}
    assert cv2.imread(str(png)).shape[:2] == (2 * 120, 5 * 200)
