"""The evaluation report's readable-plate recall and the side-by-side table of two models."""

from pathlib import Path

import numpy as np
import pytest

from model_training.data import Sample
from model_training.evaluate import (
    READABLE_WIDTH,
    EvalReport,
    ImageResult,
    format_comparison,
    format_table,
    summarise,
)


def _result(widths: list[float], coverage: list[float], spurious: int = 0, source: str = "a") -> ImageResult:
    boxes = np.array([[10.0, 10.0, 10.0 + w, 10.0 + w / 4] for w in widths]).reshape(-1, 4)
    sample = Sample(Path(f"/nowhere/{source}.jpg"), boxes, np.full((len(widths), 4, 2), np.nan), source)
    return ImageResult(sample, [], np.array(coverage, dtype=np.float64), spurious, 0.0, 0.0, 0.0, 100.0, 5.0)


def test_readable_recall_counts_only_plates_at_least_40px_wide():
    m = summarise([_result([READABLE_WIDTH, 120.0, 20.0, 39.0], [0.9, 0.5, 0.95, 0.0])])
    assert m["n_plates"] == 4 and m["n_plates_40px"] == 2
    assert m["recall_08_40px"] == pytest.approx(0.5)     # 40 px covered, 120 px half hidden
    assert m["recall_08"] == pytest.approx(0.5)          # 40 px and 20 px of four
    assert m["recall_05"] == pytest.approx(0.75)


def test_readable_recall_without_readable_plates_is_one_not_nan():
    m = summarise([_result([12.0], [0.0])])
    assert m["n_plates_40px"] == 0 and m["recall_08_40px"] == 1.0 and m["recall_08"] == 0.0


def _report(cov: float, spurious: int) -> dict:
    results = {"a": [_result([80.0], [cov], spurious, "a")], "b": [_result([30.0, 60.0], [1.0, 1.0], 0, "b")]}
    everything = results["a"] + results["b"]
    return EvalReport(summarise(everything), {k: summarise(v) for k, v in results.items()}, everything).to_dict()


def test_comparison_puts_each_folder_and_overall_of_both_models_side_by_side():
    table = format_comparison({"old@1": _report(0.2, 3), "new@2": _report(0.9, 0)})
    rows = [line for line in table.splitlines()[2:]]
    assert [r.split("|")[1:3] for r in rows] == [[" a ", " old@1 "], [" a ", " new@2 "], [" b ", " old@1 "],
                                                 [" b ", " new@2 "], [" OVERALL ", " old@1 "],
                                                 [" OVERALL ", " new@2 "]]
    head = [c.strip() for c in table.splitlines()[0].split("|")]
    col = head.index("r@0.8>=40")
    assert [r.split("|")[col].strip() for r in rows] == ["0.000", "1.000", "1.000", "1.000", "0.500", "1.000"]
    assert rows[4].split("|")[head.index("spur/img")].strip() == "1.500"


def test_comparison_refuses_reports_of_different_folders():
    other = _report(0.9, 0)
    other["per_folder"].pop("b")
    with pytest.raises(ValueError, match="different folders"):
        format_comparison({"old@1": _report(0.2, 3), "new@2": other})
    with pytest.raises(ValueError, match="no reports"):
        format_comparison({})


def test_text_table_has_the_readable_columns():
    results = [_result([80.0], [0.9])]
    text = format_table(EvalReport(summarise(results), {"a": summarise(results)}, results))
    assert "r@0.8>=40" in text.splitlines()[0] and "plates>=40" in text.splitlines()[0]


def test_the_production_like_folders_are_reported_first() -> None:
    from model_training.evaluate import folder_order

    assert folder_order(["kaggle-cars", "openimages-plates/test", "oi-streets", "open-lpr", "ccpd-corners"]) == [
        "open-lpr", "oi-streets", "ccpd-corners", "kaggle-cars", "openimages-plates/test"]


def test_detector_recall_counts_plates_found_at_each_score_per_folder() -> None:
    from types import SimpleNamespace

    from model_store.runtime import Detection
    from model_training.evaluate import detector_recall

    def sample(src: str, boxes: list[list[float]]) -> SimpleNamespace:
        return SimpleNamespace(source=src, image=np.zeros((10, 10, 3), np.uint8), boxes=np.array(boxes, np.float32))

    photos = [sample("oi-streets", [[0, 0, 60, 20], [100, 0, 130, 10]]), sample("open-lpr", [[0, 0, 80, 20]])]
    found = {"oi-streets": [Detection((1, 0, 60, 20), 0.5), Detection((100, 0, 130, 10), 0.1),
                            Detection((300, 300, 340, 310), 0.2)],
             "open-lpr": [Detection((40, 0, 120, 20), 0.9)]}   # IoU 1/3 with its plate: not found
    model = SimpleNamespace(i=0)

    def detect_in_order(img: np.ndarray, score_threshold: float) -> list:
        model.src = photos[model.i].source
        model.i += 1
        return [d for d in found[model.src] if d.score >= score_threshold]

    model.detect = detect_in_order
    r = detector_recall(model, photos, thresholds=(0.08, 0.3), progress=False)
    assert list(r) == ["open-lpr", "oi-streets", "OVERALL"]
    assert r["oi-streets"]["recall@0.08"] == 1.0 and r["oi-streets"]["recall@0.3"] == 0.5
    assert r["oi-streets"]["recall>=40@0.3"] == 1.0 and r["oi-streets"]["plates>=40"] == 1
    assert r["oi-streets"]["other/photo@0.08"] == 1.0 and r["oi-streets"]["other/photo@0.3"] == 0.0
    assert r["open-lpr"]["recall@0.08"] == 0.0 and r["OVERALL"]["recall@0.08"] == round(2 / 3, 3)
