"""The one recipe runner: recipes as stage tables, run in order, resumed, and the 3.0 table's choices."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from model_training import recipe, recipe2, recipe3, runner
from model_training.recipes import RECIPES, stage_names
from model_training.runner import Recipe, Stage


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_reads_only_what_an_earlier_row_makes(name: str) -> None:
    table = RECIPES[name]
    table.check()
    bundles = [s for s in table.stages if s.kind == "bundle"]
    assert len(bundles) == 1 and bundles[0] is table.stages[-1]


def test_a_row_that_reads_a_later_row_is_refused() -> None:
    bad = Recipe("x", "0.0.1", (Stage("lm", "landmarks", ("scratch", "mined.json")),
                                Stage("mined.json", "mine", ("det", "lm"))))
    with pytest.raises(ValueError, match="'lm' reads 'mined.json', which no earlier row makes"):
        bad.check()
    with pytest.raises(ValueError, match="unknown kind 'cook'"):
        Stage("x", "cook")


def test_the_old_recipes_keep_their_stages_seeds_and_order() -> None:
    """1.10 and 2.0 as tables: the same training stages with the same settings, in pipeline order; the
    rows tried and not shipped (2.0's lm-p, lm-e, det-a5) run by name only."""
    trained = [s for s in recipe.TABLE.stages if s.kind in runner.TRAINED]
    assert [s.name for s in trained] == [p[1] for p in recipe.PIPELINE if p[0] == "train"]
    for s in trained:
        r = recipe.RECIPE[s.name]
        assert all(s.params[k] == v for k, v in r.items() if k not in ("model", "init_from", "hard_negatives",
                                                                         "average"))
        assert s.inputs[:1] == tuple(r.get("average", [r["init_from"]] if r.get("init_from") else []))[:1]
    in_2 = [s.name for s in recipe2.TABLE.stages if s.kind in runner.TRAINED and s.pipeline]
    assert in_2 == [p[1] for p in recipe2.PIPELINE_V2 if p[0] == "train"]
    assert {s.name for s in recipe2.TABLE.stages if not s.pipeline} == {"lm-p", "lm-e", "det-a5",
                                                                       recipe2.MINED2D}
    assert recipe2.TABLE["lm-b"].inputs[0] == "bundle:plateveil-plates-1.10.0"
    assert recipe2.TABLE["det-a"].inputs == ("imagenet",) and recipe2.TABLE["det-a4"].params["seed"] == 8
    assert recipe2.TABLE["hard_negatives-2c.json"].params == {"min_score": 0.08}


def test_the_3_0_recipe_starts_from_2_0_0_and_draws_every_layout() -> None:
    from model_training.synth.plates import ALL_LAYOUTS, NEW_LAYOUTS

    t = recipe3.TABLE
    det = t["det-b2"]
    assert det.pipeline and not t["det-b"].pipeline and not t["lm-f"].pipeline
    assert det.inputs == ("bundle:plateveil-plates-2.0.0",) and det.params["arch"] == recipe2.DETECTOR_ARCH
    assert set(NEW_LAYOUTS) <= set(det.params["layouts"]) == set(ALL_LAYOUTS)
    assert "review_rounds" not in det.params   # every round of reviewed labels
    tune = next(s for s in t.stages if s.kind == "tune" and s.pipeline)
    assert tune.params["reference"] == "plateveil-plates-2.0.0" and 0.0 in tune.params["combine"]
    # latency parity with 2.0.0: no detector threshold under its 0.15
    assert t.stages[-1].params == {"record": True, "flush_below": 1e-10} and tune.params["min_det"] == 0.15
    assert t.stages[-1].inputs == ("det-b2", "lm-g", tune.name) and (0.3, 1.01) in tune.params["large_regions"]
    assert {"det-b", "lm-f", "detector-avg2", "det-a4"} <= set(stage_names())


def test_a_bundle_start_is_converted_once_into_the_stage_folder(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple] = []
    monkeypatch.setattr("model_training.starts.params_from_bundle",
                        lambda bundle, part, arch, out, shape: made.append((bundle.name, part, arch)) or
                        out.write_text("w") or out)
    out = tmp_path / "det-b" / "init.params"
    out.parent.mkdir()
    for _ in range(2):
        assert runner.stage_weights_in(recipe3.TABLE, "bundle:plateveil-plates-2.0.0", tmp_path, out,
                                       "detector") == out
    assert made == [("plateveil-plates-2.0.0", "detector", "ssd_mnet025_fpn_pt")]


def test_run_walks_the_3_0_table_in_order_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row once in table order, the bundle last with the sweep's thresholds and the training record; a
    rerun repeats only the bundle (seconds), and a row whose output is gone is redone."""
    from model_training import build, mine, tune

    calls: list[str] = []

    def fake_train(table: Recipe, name: str, data_root: Path, out_dir: Path, **_: object) -> Path:
        calls.append(name)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "final.params").write_text(name)
        (out_dir / "summary.json").write_text(json.dumps({"stage": name, "train_photos": 7, "iterations": 3}))
        return out_dir

    def fake_build(det: Path, lm: Path, out: Path, version: str, overrides: dict | None = None,
                   extra: dict | None = None, detector_arch: str = "", flush_below: float = 1e-30) -> Path:
        calls.append(f"build {det.parent.name}+{lm.name} {version}" + (f" flush {flush_below}" if flush_below > 1e-30
                                                                       else ""))
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.json").write_text(json.dumps({"overrides": overrides, **(extra or {})}))
        return out

    def fake_mine(bundle: Path, data_root: Path, out: Path, **kw: object) -> tuple:
        calls.append(f"mine {out.name} {kw['min_score']}")
        mine.save([{"photo": 0, "box": [1, 2, 3, 4], "score": 0.5}], out)
        return "tag", 1, []

    def fake_tune(bundle: Path, data_root: Path, out_dir: Path, **kw: object) -> tuple:
        calls.append(f"tune {kw.get('reference').name} {kw.get('det_weights')} from {kw.get('min_det')}"
                     f" regions {len(kw.get('large_regions', ()))}")
        out_dir.mkdir(parents=True)
        best = {"score_threshold": 0.1, "lm_threshold": 0.9, "keep_detector_above": 1.01, "margin_x": 0.1,
                "margin_y": 0.3, "det_weight": 0.5}
        (out_dir / "sweep.json").write_text(json.dumps({"best": best, "reference": {"model": "r"}}))
        (out_dir / "overrides.json").write_text(json.dumps(tune.overrides_for(best)))
        return "tag", best

    monkeypatch.setattr(runner, "train_stage", fake_train)
    monkeypatch.setattr(build, "build_bundle", fake_build)
    monkeypatch.setattr("model_training.mine.mine_bundle", fake_mine)
    monkeypatch.setattr("model_training.tune.tune_bundle", fake_tune)
    monkeypatch.setattr(runner, "stage_weights_in", lambda table, ref, root, out, part: (
        root / ref / "final.params") if not ref.startswith("bundle:") else out)

    bundle = runner.run(recipe3.TABLE, tmp_path / "data", tmp_path / "run")
    assert bundle == tmp_path / "run" / "bundle"
    assert calls == [
        "det-b2", "build det-b2+landmarks-plateveil-plates-2.0.0.params 3.0.0-det-b2",
        "mine hard_negatives-3b2.json 0.08", "lm-g",
        "build det-b2+final.params 3.0.0-untuned flush 1e-10",
        f"tune plateveil-plates-2.0.0 (0.0, 0.5, 1.0) from 0.15 regions {len(recipe3.LARGE_REGIONS)}",
        "build det-b2+final.params 3.0.0 flush 1e-10"]
    record = json.loads((bundle / "model.json").read_text())
    assert record["overrides"]["landmarks"]["det_weight"] == 0.5
    assert record["overrides"]["detector"]["mean"] != [0.485, 0.456, 0.406]   # the ImageNet backbone's scaling
    assert list(record["training"]["stages"]) == ["det-b2", "mine hard_negatives-3b2.json", "lm-g"]
    assert record["training"]["stages"]["det-b2"]["init"] == "bundle:plateveil-plates-2.0.0"
    assert record["tuning"]["chosen"]["det_weight"] == 0.5

    calls.clear()
    runner.run(recipe3.TABLE, tmp_path / "data", tmp_path / "run")
    assert calls == ["build det-b2+final.params 3.0.0 flush 1e-10"]
    (tmp_path / "run" / "hard_negatives-3b2.json").unlink()
    calls.clear()
    runner.run(recipe3.TABLE, tmp_path / "data", tmp_path / "run")
    assert [c for c in calls if not c.startswith("build")] == ["mine hard_negatives-3b2.json 0.08"]


def test_a_training_row_passes_its_params_to_the_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-g: 2.0.0's landmark weights, the mined rows away from the plates its labels have, every layout."""
    from model_training import mine
    from model_training.synth.plates import ALL_LAYOUTS

    init = tmp_path / "lm-g" / "init.params"
    monkeypatch.setattr(runner, "stage_weights_in", lambda table, ref, root, out, part: out)
    mine.save([{"photo": 0, "box": [102.0, 51.0, 158.0, 69.0], "score": 0.4},
               {"photo": 0, "box": [300.0, 50.0, 340.0, 70.0], "score": 0.3}], tmp_path / recipe3.MINED3B2)
    photo = SimpleNamespace(image=np.zeros((200, 400, 3), np.uint8), boxes=np.array([[100, 50, 160, 70]], np.float32),
                            corners=np.full((1, 4, 2), np.nan, np.float32), source="open-lpr")
    monkeypatch.setattr("model_training.data.load_split", lambda root, reviewed=True, rounds=None: ([photo], []))
    monkeypatch.setattr("model_training.augment.load_photos", lambda samples: samples)
    seen: dict[str, object] = {}
    monkeypatch.setattr("model_training.train.train_landmarks",
                        lambda photos, config, opts, **kw: seen.update(opts=opts, config=config, **kw))
    runner.train_stage(recipe3.TABLE, "lm-g", tmp_path / "data", tmp_path / "lm-g")
    assert seen["opts"].init_from == init and seen["opts"].seed == 23 and seen["opts"].iterations == 600
    assert [b.tolist() for _, b in seen["hard_negatives"]] == [[300.0, 50.0, 340.0, 70.0]]
    assert seen["layouts"] == list(ALL_LAYOUTS) and seen["synth_neg_p"] == 0.4
    assert seen["config"]["landmarks"]["arch"] == "landmark_cnn"
    summary = json.loads((tmp_path / "lm-g" / "summary.json").read_text())
    assert summary["hard_negatives"] == 1 and summary["hard_negatives_on_plates_dropped"] == 1


def test_a_bundle_flushes_the_weights_below_its_row_s_cut(tmp_path: Path) -> None:
    """Weights under the cut are zeroed in the exported nets (3.0: 1e-10; 1.10 and 2.0: build.FLUSH_BELOW)."""
    mx = pytest.importorskip("mxnet")
    from model_training.build import FLUSH_BELOW, load_trained
    from model_training.nets import get_net, init_net

    net = init_net(get_net("landmark_cnn"), seed=0)
    net(mx.nd.zeros((1, 3, 64, 128)))
    p = next(iter(net.collect_params().values()))
    w = p.data().asnumpy()
    w.flat[:3] = [1e-12, 1e-35, 0.5]
    p.set_data(mx.nd.array(w))
    net.save_parameters(str(tmp_path / "w.params"))
    for cut, want in ((FLUSH_BELOW, [1e-12, 0.0, 0.5]), (1e-10, [0.0, 0.0, 0.5])):
        out = next(iter(load_trained("landmark_cnn", tmp_path / "w.params", cut).collect_params().values()))
        np.testing.assert_allclose(out.data().asnumpy().flat[:3], want, rtol=1e-6)


def test_a_bundle_detector_goes_into_a_bundle_row_as_it_was_shipped(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``tune-2.0.0-lm-g``: 2.0.0's detector (converted once from the bundle, with its architecture) + lm-g."""
    from model_training import build

    assert runner.detector_arch(recipe3.TABLE, "bundle:plateveil-plates-2.0.0") == recipe2.DETECTOR_ARCH
    converted: list[tuple[str, str]] = []
    monkeypatch.setattr(runner, "stage_weights_in", lambda table, ref, root, out, part: converted.append(
        (ref, part)) or (out if ref.startswith("bundle:") else root / ref / "final.params"))
    seen: dict[str, object] = {}
    monkeypatch.setattr(build, "build_bundle", lambda det, lm, out, version, **kw: seen.update(det=det, lm=lm, **kw))
    runner.build(recipe3.TABLE, tmp_path, "bundle:plateveil-plates-2.0.0", "lm-g", tmp_path / "b", "3.0.0-x")
    assert converted == [("lm-g", "landmarks"), ("bundle:plateveil-plates-2.0.0", "detector")]
    assert seen["det"] == tmp_path / "detector-plateveil-plates-2.0.0.params"
    assert seen["lm"] == tmp_path / "lm-g" / "final.params" and seen["detector_arch"] == recipe2.DETECTOR_ARCH
