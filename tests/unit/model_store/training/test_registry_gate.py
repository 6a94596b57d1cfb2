"""The promotion quality gate's thresholds and comparison table."""

from __future__ import annotations

from model_store.training.registry_cli import GateThresholds, comparison_table

GOOD = {"recall_08": 0.91, "recall_05": 0.97, "spurious_per_image": 0.05, "excess": 0.3, "p50_ms": 40.0,
        "p95_ms": 61.5, "n_images": 120, "n_plates": 131}


def test_defaults_match_the_documented_thresholds() -> None:
    t = GateThresholds()
    assert (t.min_recall_08, t.max_spurious, t.max_excess) == (0.85, 0.1, 0.5)


def test_failures_name_each_missed_threshold() -> None:
    t = GateThresholds()
    assert t.failures(GOOD) == []
    bad = dict(GOOD, recall_08=0.5, spurious_per_image=0.4, excess=0.9)
    failures = t.failures(bad)
    assert len(failures) == 3
    assert failures[0].startswith("recall@0.8 0.500 < 0.85")
    assert t.failures(dict(GOOD, recall_08=0.85, spurious_per_image=0.1, excess=0.5)) == []  # limits are inclusive


def test_comparison_table() -> None:
    table = comparison_table(("1.1.0", GOOD), ("1.0.0", dict(GOOD, recall_08=0.88)), GateThresholds())
    lines = table.splitlines()
    assert "candidate 1.1.0" in lines[0] and "production 1.0.0" in lines[0] and "threshold" in lines[0]
    assert set(lines[1]) <= {"-", " "}
    row = next(line for line in lines if line.startswith("recall@0.8"))
    assert row.split()[1:] == ["0.910", "0.880", ">=", "0.85"]
    assert any(line.startswith("p95 ms") and "61.5" in line for line in lines)
    assert lines[-1] == "(120 images, 131 plates)"
    alone = comparison_table(("1.1.0", GOOD), None, GateThresholds())
    assert "production" not in alone
