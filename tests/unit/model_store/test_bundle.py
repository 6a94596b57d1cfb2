"""model_store.bundle owns the bundle format: the typed model.json schema, reading it, version order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_store.bundle import (
    CONFIG_FILE,
    Version,
    default_model_dir,
    detector_config,
    landmark_config,
    load_config,
    parse_config,
    read_config,
    version_sort_key,
)
from model_store.errors import ModelConfigError, ModelLoadError


def test_the_shipped_model_json_matches_the_schema() -> None:
    config = load_config(default_model_dir())
    assert config.tag == f"{config.name}@{config.version}"
    assert 0 < config.detector.score_threshold < 1 and 0 < config.landmarks.score_threshold < 1
    assert config.detector.levels and config.landmarks.input_w > config.landmarks.input_h
    raw = read_config(default_model_dir())
    assert config.detector.nms_iou == raw["detector"]["nms_iou"]   # typed, not reinterpreted
    assert config.metrics == raw["metrics"]


@pytest.mark.parametrize(("change", "named"), [
    (lambda c: c.pop("detector"), "detector"),
    (lambda c: c["detector"].update(score_threshold="0.2"), "detector.score_threshold"),
    (lambda c: c["detector"].update(nms_iou=1.5), "detector.nms_iou"),
    (lambda c: c["landmarks"].pop("margin_x"), "landmarks.margin_x"),
    (lambda c: c["landmarks"].update(mean=[0.5, 0.5]), "landmarks.mean"),
])
def test_a_bad_model_json_is_refused_naming_the_key(change, named: str) -> None:
    config = json.loads(json.dumps(read_config(default_model_dir())))
    change(config)
    with pytest.raises(ModelConfigError, match=named.replace(".", r"\.")):
        parse_config(config)


def test_sections_are_checked_alone() -> None:
    config = read_config(default_model_dir())
    assert detector_config(config).pre_nms_top_k == config["detector"]["pre_nms_top_k"]
    assert landmark_config({"landmarks": {**config["landmarks"], "enclosing_ratio": 0}}).enclosing_ratio == 0
    with pytest.raises(ModelConfigError, match="detector"):
        detector_config({"landmarks": config["landmarks"]})


def test_read_config_errors_are_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        read_config(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{broken")
    with pytest.raises(ModelConfigError, match="not valid JSON"):
        read_config(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(ModelConfigError, match="not a JSON object"):
        read_config(tmp_path)


def test_versions_compare_as_numbers() -> None:
    texts = ["1.10.0", "1.9.0", "1.2.0", "1.10.0-rc1", "0.0.0-dev"]
    ordered = sorted(texts, key=version_sort_key)
    assert [str(v) for v in sorted(Version(t) for t in texts)] == ordered
    assert ordered[0] == "0.0.0-dev" and ordered.index("1.9.0") < ordered.index("1.10.0")
    assert Version("1.10.0") > Version("1.9.0") and Version("2") == Version("2")
