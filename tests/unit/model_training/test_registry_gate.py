"""The promotion quality gate's thresholds (absolute floors and margins against production) and its
comparison table."""

from __future__ import annotations

from model_training.registry_cli import GateSettings, GateThresholds, comparison_table

GOOD = {"recall_08": 0.91, "recall_05": 0.97, "spurious_per_image": 0.05, "excess": 0.03, "p50_ms": 40.0,
        "p95_ms": 61.5, "n_images": 120, "n_plates": 131}
# the shipped model 1.10.0 on the shipped golden set (model_store/golden_set/README.md)
SHIPPED = {"recall_08": 0.889, "recall_05": 0.889, "spurious_per_image": 0.176, "excess": 0.024, "p95_ms": 71.5,
           "n_images": 17, "n_plates": 18}


def test_defaults_match_the_documented_thresholds_and_settings() -> None:
    t = GateThresholds()
    assert (t.min_recall_08, t.max_spurious, t.max_excess) == (0.75, 0.35, 0.25)
    assert (t.max_recall_drop, t.max_spurious_rise, t.max_excess_rise) == (0.06, 0.06, 0.05)
    assert GateThresholds.from_settings(GateSettings()) == t


def test_the_shipped_model_passes_its_own_gate() -> None:
    assert GateThresholds().failures(SHIPPED) == []
    assert GateThresholds().failures(SHIPPED, SHIPPED) == []


def test_failures_name_each_missed_floor() -> None:
    t = GateThresholds()
    assert t.failures(GOOD) == []
    bad = dict(GOOD, recall_08=0.5, spurious_per_image=0.4, excess=0.9)
    failures = t.failures(bad)
    assert len(failures) == 3
    assert failures[0].startswith("recall@0.8 0.500 < 0.75")
    assert t.failures(dict(GOOD, recall_08=0.75, spurious_per_image=0.35, excess=0.25)) == []  # inclusive


def test_margins_against_production() -> None:
    t = GateThresholds()
    one_plate_less = dict(SHIPPED, recall_08=0.833)  # 15 of 18 instead of 16: within the margin
    assert t.failures(one_plate_less, SHIPPED) == []
    two_plates_less = dict(SHIPPED, recall_08=0.778)  # above the floor, but 0.111 below production
    failures = t.failures(two_plates_less, SHIPPED)
    assert failures == ["recall@0.8 0.778 is 0.111 below production's 0.889 (margin 0.06)"]
    noisier = dict(SHIPPED, spurious_per_image=0.294, excess=0.1)
    failures = t.failures(noisier, SHIPPED)
    assert len(failures) == 2 and "spurious/img 0.294 is 0.118 above production's 0.176" in failures[0]
    assert "excess 0.100 is 0.076 above production's 0.024" in failures[1]
    assert t.failures(noisier) == []  # without production only the floors count


def test_comparison_table() -> None:
    table = comparison_table(("1.1.0", GOOD), ("1.0.0", dict(GOOD, recall_08=0.98)), GateThresholds())
    lines = table.splitlines()
    for header in ("candidate 1.1.0", "production 1.0.0", "change", "threshold", "result"):
        assert header in lines[0]
    assert set(lines[1]) <= {"-", " "}
    row = next(line for line in lines if line.startswith("recall@0.8"))
    assert row.split() == ["recall@0.8", "0.910", "0.980", "-0.070", ">=", "0.75,", ">=", "prod", "-", "0.06", "FAIL"]
    row = next(line for line in lines if line.startswith("spurious/img"))
    assert row.split()[-1] == "ok"
    assert any(line.startswith("p95 ms") and "61.5" in line for line in lines)
    assert lines[-1] == "(120 images, 131 plates)"
    alone = comparison_table(("1.1.0", GOOD), None, GateThresholds())
    assert "production" not in alone and "prod" not in alone
    assert next(line for line in alone.splitlines() if line.startswith("recall@0.8")).split()[-3:] == [">=", "0.75", "ok"]
