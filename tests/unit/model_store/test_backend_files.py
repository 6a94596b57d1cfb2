"""A backend declares the files it loads. A toy backend registered with one line (its own file names)
gets exactly its files published by the registry, copied by the cache and handed to its ``load``; the
registry of backends fails loudly on an unknown name. The registry here is a local-directory one (no S3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store import backends
from model_store.backends import Backend, Graph, backend_files, check_backend, get_backend
from model_store.bundle import CONFIG_FILE, default_model_dir
from model_store.cache import ModelCache
from model_store.errors import ModelLoadError, RegistryError
from model_store.registry import MANIFEST, Manifest, Registry, bundle_files
from model_store.runtime import load_model
from plateveil.storage.local import LocalStore


class ToyGraph(Graph):
    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.scale = float(np.load(files["weights"])[0])

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return [x * self.scale]


class ToyBackend(Backend):
    name = "toy"
    files = {"weights": "{part}.toy.npy", "notes": "{part}-toy.txt"}
    framework = "toy-1"
    requires = ("numpy",)

    def load(self, files: dict[str, Path]) -> Graph:
        return ToyGraph(files)


TOY_FILES = ["detector.toy.npy", "detector-toy.txt", "landmarks.toy.npy", "landmarks-toy.txt"]


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one registry line a new backend adds."""
    monkeypatch.setitem(backends._BACKENDS, "toy", (__name__, "ToyBackend"))


def _toy_bundle(dest: Path, version: str = "7.0.0") -> Path:
    dest.mkdir(parents=True)
    config = json.loads((default_model_dir() / CONFIG_FILE).read_text()) | {"version": version}
    (dest / CONFIG_FILE).write_text(json.dumps(config))
    for i, part in enumerate(("detector", "landmarks")):
        np.save(dest / f"{part}.toy.npy", np.array([2.0 + i]))
        (dest / f"{part}-toy.txt").write_text(f"{part} notes")
    (dest / "detector.onnx").write_bytes(b"half of the onnx backend's files: published, loaded by nobody")
    (dest / "training-log.txt").write_text("no backend declares this file: never published")
    return dest


def test_an_unknown_backend_is_a_value_error_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown model backend 'toy'; valid backends: mxnet, onnx, onnx-cpu"):
        get_backend("toy")


def test_a_registered_backend_names_its_files(toy: None) -> None:
    assert check_backend("toy") == "toy"
    assert backend_files("toy") == {"detector": {"weights": "detector.toy.npy", "notes": "detector-toy.txt"},
                                    "landmarks": {"weights": "landmarks.toy.npy", "notes": "landmarks-toy.txt"}}
    assert backend_files("onnx") == {"detector": {"onnx": "detector.onnx"}, "landmarks": {"onnx": "landmarks.onnx"}}
    with pytest.raises(ValueError, match="valid backends: mxnet, onnx, onnx-cpu, toy"):
        check_backend("nope")


def test_the_registry_and_the_cache_copy_exactly_the_declared_files(toy: None, tmp_path: Path) -> None:
    bundle = _toy_bundle(tmp_path / "bundle")
    assert bundle_files(bundle) == [CONFIG_FILE, "detector.onnx", *TOY_FILES]
    store = LocalStore(tmp_path / "objects")
    store.ensure_bucket("models")
    registry = Registry(store, "models", name="plateveil-plates")
    manifest = registry.publish(bundle)
    assert manifest.framework == "toy-1"  # the onnx files are incomplete: not an onnx bundle
    assert sorted(f.path for f in manifest.files) == sorted([CONFIG_FILE, "detector.onnx", *TOY_FILES])
    stored = {k.rsplit("/", 1)[1] for k in store.list_keys("models", "models/plateveil-plates/7.0.0/")}
    assert stored == {CONFIG_FILE, "detector.onnx", MANIFEST, *TOY_FILES}

    folder = ModelCache(tmp_path / "cache").fetch(registry, "7.0.0")
    assert sorted(p.name for p in folder.iterdir()) == sorted([CONFIG_FILE, "detector.onnx", MANIFEST, *TOY_FILES])
    for name in TOY_FILES:
        assert (folder / name).read_bytes() == (bundle / name).read_bytes()

    model = load_model(folder, backend="toy")
    assert model.backend == "toy" and model.version == "7.0.0"
    graph: Any = model.detector
    assert graph.files == {"weights": folder / "detector.toy.npy", "notes": folder / "detector-toy.txt"}
    assert model.landmarks.run(np.ones((1, 3, 2, 2), np.float32))[0].max() == 3.0


def test_without_its_registry_line_the_bundle_has_no_backend(tmp_path: Path) -> None:
    bundle = _toy_bundle(tmp_path / "bundle")
    with pytest.raises(RegistryError, match="holds the files of no backend: neither the onnx files .* nor the "
                                            "mxnet files"):
        bundle_files(bundle)
    with pytest.raises(RegistryError):
        Manifest.for_bundle(bundle, "plateveil-plates", "7.0.0")


def test_a_bundle_missing_a_declared_file_does_not_load(toy: None, tmp_path: Path) -> None:
    bundle = _toy_bundle(tmp_path / "bundle")
    (bundle / "landmarks-toy.txt").unlink()
    with pytest.raises(ModelLoadError, match="landmarks-toy.txt"):
        load_model(bundle, backend="toy")
    shutil.copyfile(default_model_dir() / "landmarks.onnx", bundle / "landmarks.onnx")
    assert bundle_files(bundle)[-2:] == ["landmarks.onnx", "landmarks.toy.npy"]  # complete for onnx now
