"""The threshold sweep picks the setting the objective prefers, on hand-made candidates."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from model_training.data import Sample
from model_training.tune import Candidate, objective, overrides_for, score_setting, sweep


def _quad(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)


def _collected(tmp_path: Path) -> list:
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.zeros((200, 300, 3), np.uint8))
    plate = np.array([[100, 100, 160, 115]], np.float32)
    s = Sample(path, plate, np.full((1, 4, 2), np.nan, np.float32))
    cands = [Candidate(0.6, 0.95, _quad(100, 100, 160, 115)),   # the plate: confident both ways
             Candidate(0.35, 0.2, _quad(10, 10, 50, 20)),        # a grille: detector unsure, landmarks reject
             Candidate(0.12, 0.99, _quad(200, 150, 260, 165))]   # a sticker: detector barely fires
    return [(s, cands)]


def test_score_setting_counts_what_survives(tmp_path: Path) -> None:
    c = _collected(tmp_path)
    everything = score_setting(c, 0.1, 0.0, 1.01, 0.0, 0.0)
    assert everything["recall_08"] == 1.0 and everything["spurious_per_image"] == 2.0
    filtered = score_setting(c, 0.3, 0.5, 1.01, 0.0, 0.0)
    assert filtered["recall_08"] == 1.0 and filtered["spurious_per_image"] == 0.0 and filtered["excess"] < 0.05
    nothing = score_setting(c, 0.7, 0.5, 1.01, 0.0, 0.0)
    assert nothing["recall_08"] == 0.0 and nothing["spurious_per_image"] == 0.0


def test_sweep_prefers_full_recall_without_spurious_regions(tmp_path: Path) -> None:
    best, rows = sweep(_collected(tmp_path))
    assert best["recall_08"] == 1.0 and best["spurious_per_image"] == 0.0
    assert best["score_threshold"] > 0.12 or best["lm_threshold"] > 0.99
    assert objective(best, 0.05, 0.3) == max(objective(r, 0.05, 0.3) for r in rows)
    o = overrides_for(best)
    assert o["detector"]["score_threshold"] == best["score_threshold"]
    assert o["landmarks"]["score_threshold"] == best["lm_threshold"]


def test_objective_never_rewards_hiding_nothing() -> None:
    quiet = {"recall_08": 0.0, "recall_05": 0.0, "spurious_per_image": 0.0, "excess": 0.0}
    noisy = {"recall_08": 0.9, "recall_05": 0.9, "spurious_per_image": 1.0, "excess": 1.0}
    assert objective(noisy, 0.05, 0.3) > objective(quiet, 0.05, 0.3)


def test_objective_breaks_a_recall_tie_towards_more_hidden_plates() -> None:
    tight = {"recall_08": 0.8, "recall_05": 0.8, "spurious_per_image": 0.2, "excess": 0.1}
    wide = {"recall_08": 0.8, "recall_05": 0.82, "spurious_per_image": 0.2, "excess": 0.25}   # within the excess limit
    quieter = {"recall_08": 0.8, "recall_05": 0.8, "spurious_per_image": 0.15, "excess": 0.1}
    assert objective(wide, 0.05, 0.3) > objective(tight, 0.05, 0.3)
    assert objective(quieter, 0.05, 0.3) > objective(tight, 0.05, 0.3)


def test_objective_breaks_a_full_tie_towards_the_wider_margin() -> None:
    same = {"recall_08": 0.8, "recall_05": 0.8, "spurious_per_image": 0.2, "excess": 0.1}
    tight = {**same, "margin_x": 0.02, "margin_y": 0.15}
    wide = {**same, "excess": 0.15, "margin_x": 0.1, "margin_y": 0.3}
    assert objective(wide, 0.05, 0.3) > objective(tight, 0.05, 0.3)
    # but not past the excess limit
    assert objective({**wide, "excess": 1.3}, 0.05, 0.3) < objective(tight, 0.05, 0.3)


def test_score_setting_drops_enclosing_regions_as_the_runtime_does(tmp_path: Path) -> None:
    """A worse-scored region around the plate (the bumper) adds excess; with the bundle's drop_enclosing rule it
    is gone, and a region elsewhere is untouched."""
    (s, cands), = _collected(tmp_path)
    bumper = Candidate(0.4, 0.97, _quad(60, 60, 220, 170))
    plain = score_setting([(s, cands)], 0.3, 0.5, 1.01, 0.0, 0.0)
    with_bumper = score_setting([(s, [*cands, bumper])], 0.3, 0.5, 1.01, 0.0, 0.0)
    dropped = score_setting([(s, [*cands, bumper])], 0.3, 0.5, 1.01, 0.0, 0.0, enclosing=(0.7, 1.5))
    assert with_bumper["excess"] > plain["excess"] + 5
    assert dropped == plain


def _two_photos(tmp_path: Path) -> list:
    """Two photos: on the second, a plate the landmark model doubts (0.6) beside a badge it likes (0.8): hiding
    that plate costs one spurious region per two photos."""
    (s, cands), = _collected(tmp_path)
    path = tmp_path / "second.png"
    cv2.imwrite(str(path), np.zeros((200, 300, 3), np.uint8))
    s2 = Sample(path, np.array([[20, 150, 80, 165]], np.float32), np.full((1, 4, 2), np.nan, np.float32))
    return [(s, cands), (s2, [Candidate(0.5, 0.6, _quad(20, 150, 80, 165)),
                              Candidate(0.5, 0.8, _quad(200, 20, 224, 28))])]


def test_a_spurious_cap_picks_the_most_plates_at_no_more_false_concealments(tmp_path: Path) -> None:
    collected = _two_photos(tmp_path)
    strict, _ = sweep(collected, spurious_cap=0.0)
    assert strict["spurious_per_image"] == 0.0 and strict["recall_08"] == 0.5
    loose, rows = sweep(collected, spurious_cap=0.5)
    assert loose["recall_08"] == 1.0 and loose["spurious_per_image"] == 0.5
    assert loose["recall_08"] == max(r["recall_08"] for r in rows if r["spurious_per_image"] <= 0.5)
    # the objective trades 0.1 of recall per spurious region beyond 0.05: it takes that plate with the badge,
    # which the cap of the model in production (0.0 here) refuses
    traded, _ = sweep(collected)
    assert traded["recall_08"] == 1.0 and traded["spurious_per_image"] == 0.5


def test_the_fine_grid_reaches_a_box_the_detector_is_sure_of(tmp_path: Path) -> None:
    """``keep_above``: a plate the landmark model rejects (0.3) stays when the detector is surer than the cut."""
    (s, _), = _collected(tmp_path)
    collected = [(s, [Candidate(0.7, 0.3, _quad(100, 100, 160, 115)), Candidate(0.4, 0.95, _quad(10, 10, 50, 20))])]
    best, _ = sweep(collected, spurious_cap=0.0, lm_thresholds=[0.5, 0.97], keep_above=[0.6, 1.01])
    assert best["recall_08"] == 1.0 and best["spurious_per_image"] == 0.0 and best["keep_detector_above"] == 0.6


def test_the_sweep_tries_the_detector_weights_and_writes_the_chosen_one(tmp_path: Path) -> None:
    """A plate the landmark model doubts (0.6) but the detector is sure of (0.9), and a badge the landmark model
    likes (0.8) that the detector barely fires on (0.2): no landmark threshold alone keeps the one and drops
    the other; with the detector's score in the plate score one does."""
    (s, _), = _collected(tmp_path)
    collected = [(s, [Candidate(0.9, 0.6, _quad(100, 100, 160, 115)), Candidate(0.2, 0.8, _quad(10, 10, 50, 20))])]
    alone, _ = sweep(collected, spurious_cap=0.0, det_thresholds=[0.1], lm_thresholds=[0.5, 0.7, 0.9],
                     keep_above=[1.01])
    assert alone["recall_08"] == 0.0 and "det_weight" not in alone
    best, rows = sweep(collected, spurious_cap=0.0, det_thresholds=[0.1], lm_thresholds=[0.5, 0.7, 0.9],
                       keep_above=[1.01], det_weights=(0.0, 1.0))
    assert best["recall_08"] == 1.0 and best["spurious_per_image"] == 0.0 and best["det_weight"] == 1.0
    assert {r["det_weight"] for r in rows} == {0.0, 1.0}
    assert overrides_for(best)["landmarks"]["det_weight"] == 1.0
    assert score_setting(collected, 0.1, 0.9, 1.01, 0.0, 0.0, det_weight=1.0)["recall_08"] == 1.0


def test_the_sweep_cache_gives_each_setting_the_metrics_it_has_alone(tmp_path: Path) -> None:
    collected = _two_photos(tmp_path) + _collected(tmp_path)
    _, rows = sweep(collected, det_weights=(0.0, 0.5))
    assert len(rows) > 20
    for r in rows:
        alone = score_setting(collected, r["score_threshold"], r["lm_threshold"], r["keep_detector_above"],
                              r["margin_x"], r["margin_y"], det_weight=r["det_weight"])
        assert alone == {k: r[k] for k in alone}


def test_the_sweep_tries_the_bounded_region_rule_and_writes_the_chosen_one(tmp_path: Path) -> None:
    """A region over most of the photo that the landmark model likes (0.95, a bus side) and a plate: the
    thresholds cannot drop the one and keep the other; the rule does, and the sweep writes it; a close-up plate
    scored 0.995 would stay under the (0.3, 0.99) rule."""
    (s, _), = _collected(tmp_path)
    bus = Candidate(0.5, 0.95, _quad(10, 10, 290, 190), 280 * 180 / (200 * 300))
    collected = [(s, [Candidate(0.6, 0.9, _quad(100, 100, 160, 115), 60 * 15 / (200 * 300)), bus])]
    plain, _ = sweep(collected, spurious_cap=0.0, det_thresholds=[0.1], lm_thresholds=[0.5, 0.8], keep_above=[1.01])
    assert plain["spurious_per_image"] == 1.0 and "large_region_fraction" not in plain   # the bus stays
    best, rows = sweep(collected, spurious_cap=0.0, det_thresholds=[0.1], lm_thresholds=[0.5, 0.8],
                       keep_above=[1.01], large_regions=((0.3, 0.99), (0.9, 1.01)))
    assert best["recall_08"] == 1.0 and best["spurious_per_image"] == 0.0
    assert (best["large_region_fraction"], best["large_region_threshold"]) == (0.3, 0.99)
    assert {r["large_region_fraction"] for r in rows} == {None, 0.3, 0.9}
    o = overrides_for(best)["landmarks"]
    assert (o["large_region_fraction"], o["large_region_threshold"]) == (0.3, 0.99)
    assert "large_region_fraction" not in overrides_for(plain)["landmarks"]
    bus.lm_score = 0.995
    assert score_setting(collected, 0.1, 0.5, 1.01, 0.0, 0.0, large_region=(0.3, 0.99))["spurious_per_image"] == 1.0
