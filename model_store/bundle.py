"""The model bundle format, owned here: its nets, the ``model.json`` schema, version order.

A bundle is a folder::

    model.json              name, version, pre/post-processing config (the schema below), metrics, training summary
    detector.onnx           the files of each net (:data:`PARTS`) for each backend it can run on: each backend
    landmarks.onnx          declares its own (``model_store.backends``: ``{part}.onnx`` for onnx,
    detector-symbol.json... ``{part}-symbol.json`` + ``{part}-0000.params`` for mxnet)

``model.json`` is read with :func:`read_config` (the dict as stored, so a bundle round-trips byte for
byte) and checked with :func:`parse_config` / :class:`ModelConfig` (typed, validated: a missing
section, a threshold that is not a number or out of range fails with
:class:`~model_store.errors.ModelConfigError` naming the key). Versions compare as :class:`Version`
does (``1.10.0`` after ``1.9.0``), here, in the registry and in the CLI. No deep-learning framework
(and no numpy) is imported here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from model_store.errors import ModelConfigError, ModelLoadError

CONFIG_FILE = "model.json"
PARTS = ("detector", "landmarks")
"""The nets of a bundle; a backend names the files of each (``model_store.backends``)."""

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
"""Where the shipped bundles live, one folder per version (``<name>-<version>/``)."""


# -- versions ----------------------------------------------------------------------------------


def version_sort_key(version: str) -> tuple[Any, ...]:
    """``1.10.0`` after ``1.9.0``: digit runs compare as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", version) if p)


@dataclass(frozen=True, order=True)
class Version:
    """A model version as a value: ``Version("1.10.0") > Version("1.9.0")``; ``str()`` gives the text back."""

    key: tuple[Any, ...] = field(init=False, repr=False)
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", version_sort_key(self.text))

    def __str__(self) -> str:
        return self.text


# -- the model.json schema -----------------------------------------------------------------------


class _Section(BaseModel):
    # extra keys (arch notes, future fields) are kept, not refused: older workers read newer bundles
    model_config = ConfigDict(frozen=True, extra="allow", strict=True)


class DetectorConfig(_Section):
    """``model.json`` ``detector``: input size and normalisation, anchors, post-processing thresholds."""

    arch: str = ""
    long_side: int = Field(gt=0)
    pad_to: int = Field(gt=0)
    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)
    levels: list[dict[str, Any]] = Field(min_length=1)
    box_stds: list[float] = Field(min_length=4, max_length=4)
    score_threshold: float = Field(ge=0)   # above 1: finds nothing (the smoke check then refuses it)
    nms_iou: float = Field(gt=0, le=1)
    max_detections: int = Field(ge=1)
    pre_nms_top_k: int = Field(400, ge=1)


class LandmarkConfig(_Section):
    """``model.json`` ``landmarks``: the crop around each detection, normalisation, post-processing thresholds."""

    arch: str = ""
    input_w: int = Field(gt=0)
    input_h: int = Field(gt=0)
    expand_x: float = Field(ge=0)
    expand_y: float = Field(ge=0)
    min_aspect: float = Field(1.0, gt=0)
    max_aspect: float = Field(4.0, gt=0)
    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)
    score_threshold: float = Field(ge=0)
    keep_detector_above: float = Field(1.01, ge=0)   # above 1: the landmark score alone decides
    # the plate score compared with score_threshold: sigmoid(logit(landmark score) + det_weight * logit(detector
    # score)); 0 (bundles before 3.0.0): the landmark score alone (runtime.plate_score)
    det_weight: float = Field(0.0, ge=0)
    margin_x: float = Field(ge=0)
    margin_y: float = Field(ge=0)
    enclosing_cover: float | None = Field(None, ge=0, le=1)
    enclosing_ratio: float | None = Field(None, ge=0)   # unset or 0: no enclosing rule (runtime.enclosing_rule)
    # the bounded-region rule (runtime.large_region_rule): a region (its unpadded quad) covering more than
    # large_region_fraction of the photo stays only with a plate score of at least large_region_threshold (above 1:
    # never); unset (every shipped bundle): no such rule
    large_region_fraction: float | None = Field(None, gt=0, le=1)
    large_region_threshold: float = Field(1.01, ge=0)

    @model_validator(mode="after")
    def _enclosing_pair(self) -> LandmarkConfig:
        if self.enclosing_ratio and self.enclosing_cover is None:
            raise ValueError("enclosing_ratio needs enclosing_cover")
        return self


class ModelConfig(_Section):
    """The whole ``model.json``: identity, the two parts' configs, and free-form metrics/training notes."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    detector: DetectorConfig
    landmarks: LandmarkConfig
    metrics: dict[str, Any] | None = None
    training: dict[str, Any] | None = None

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"


def _check(cls: type[_Section], data: Any, where: str) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
                             for err in exc.errors())
        raise ModelConfigError(f"{where} does not match the model.json schema: {problems}") from None


def parse_config(config: dict[str, Any], where: str = CONFIG_FILE) -> ModelConfig:
    """The typed, validated form of a ``model.json`` dict (raises ModelConfigError naming the bad keys)."""
    return _check(ModelConfig, config, where)


def detector_config(config: dict[str, Any], where: str = CONFIG_FILE) -> DetectorConfig:
    """The validated ``detector`` section alone."""
    return _check(DetectorConfig, config.get("detector"), f"{where} detector")


def landmark_config(config: dict[str, Any], where: str = CONFIG_FILE) -> LandmarkConfig:
    """The validated ``landmarks`` section alone."""
    return _check(LandmarkConfig, config.get("landmarks"), f"{where} landmarks")


# -- reading bundles ----------------------------------------------------------------------------


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """``model.json`` of a bundle folder as stored (raises ModelConfigError when absent or not JSON)."""
    path = Path(model_dir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelConfigError(f"{path} not found") from None
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelConfigError(f"{path} holds {type(config).__name__}, not a JSON object")
    return config


def load_config(model_dir: str | Path) -> ModelConfig:
    """``model.json`` of a bundle folder, typed and validated."""
    return parse_config(read_config(model_dir), str(Path(model_dir) / CONFIG_FILE))


def bundle_version(model_dir: str | Path) -> Version:
    return Version(str(read_config(model_dir).get("version", "")))


def default_model_dir() -> Path:
    """The shipped bundle: the folder under ``model_store/weights`` whose ``model.json`` has the highest
    version (compared as :class:`Version` does: ``1.10.0`` after ``1.9.0``)."""
    candidates = [p.parent for p in SHIPPED_DIR.glob(f"*/{CONFIG_FILE}")]
    if not candidates:
        raise ModelLoadError(f"no shipped model under {SHIPPED_DIR}")
    return max(candidates, key=bundle_version)


__all__ = ["CONFIG_FILE", "PARTS", "SHIPPED_DIR", "DetectorConfig", "LandmarkConfig", "ModelConfig", "Version",
           "bundle_version", "default_model_dir", "detector_config", "landmark_config", "load_config",
           "parse_config", "read_config", "version_sort_key"]
