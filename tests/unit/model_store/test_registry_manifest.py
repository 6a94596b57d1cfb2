"""Manifest, alias and naming rules of the model registry (no S3 needed)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from model_store.bundle import default_model_dir, version_sort_key
from model_store.errors import RegistryError
from model_store.registry import Alias, FileEntry, Manifest, bundle_files, sha256_file


def _onnx_bundle(dest: Path) -> Path:
    src = default_model_dir()
    dest.mkdir()
    for name in ("model.json", "detector.onnx", "landmarks.onnx"):
        shutil.copyfile(src / name, dest / name)
    return dest


def test_manifest_of_a_bundle_round_trips(tmp_path: Path) -> None:
    folder = _onnx_bundle(tmp_path / "b")
    manifest = Manifest.for_bundle(folder, "plateveil-plates", "1.0.0")
    assert [f.path for f in manifest.files] == ["model.json", "detector.onnx", "landmarks.onnx"]
    assert manifest.file("detector.onnx").sha256 == sha256_file(folder / "detector.onnx")
    assert manifest.size == sum((folder / f.path).stat().st_size for f in manifest.files)
    data = json.loads(manifest.to_json())
    assert data["digest"] == manifest.digest and data["framework"] == "onnx"
    assert Manifest.from_dict(data) == manifest


def test_digest_depends_on_bytes_not_on_time_or_order() -> None:
    a = Manifest("m", "1", (FileEntry("a", "11", 1), FileEntry("b", "22", 2)), "onnx", {}, {}, "t1", "c1")
    b = Manifest("m", "1", (FileEntry("b", "22", 2), FileEntry("a", "11", 1)), "onnx", {}, {}, "t2", "c2")
    c = Manifest("m", "1", (FileEntry("a", "11", 1), FileEntry("b", "23", 2)), "onnx", {}, {}, "t1", "c1")
    assert a.digest == b.digest != c.digest


def test_full_bundle_names_both_frameworks() -> None:
    manifest = Manifest.for_bundle(default_model_dir(), "plateveil-plates", "x")
    assert manifest.framework == "mxnet-1.9.1/gluoncv-0.10.5+onnx"
    assert manifest.detector_input == {"long_side": 640, "pad_to": 32}
    assert manifest.landmark_input == {"width": 128, "height": 64}


def test_bundle_files_refuses_incomplete_folders(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="model.json missing"):
        bundle_files(tmp_path)
    folder = _onnx_bundle(tmp_path / "b")
    (folder / "landmarks.onnx").unlink()
    with pytest.raises(RegistryError, match="neither the onnx files"):
        bundle_files(folder)


def test_version_sort_is_numeric() -> None:
    versions = ["1.10.0", "1.9.0", "0.0.0-random", "1.9.0-rc1", "2.0.0"]
    assert sorted(versions, key=version_sort_key) == ["0.0.0-random", "1.9.0", "1.9.0-rc1", "1.10.0", "2.0.0"]


def test_alias_round_trips() -> None:
    alias = Alias("1.2.0", "2024-01-01T00:00:00+00:00", ("1.1.0", "1.0.0"))
    assert Alias.from_dict(json.loads(json.dumps(alias.to_dict()))) == alias


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "aliases", "-x", "x y"])
def test_bad_names_are_refused(bad: str, tmp_path: Path) -> None:
    from model_store.registry import Registry

    with pytest.raises(RegistryError, match="invalid"):
        Registry(None, "bucket", name="m").exists(bad)  # names are checked before any S3 call
    with pytest.raises(RegistryError, match="invalid"):
        Registry(None, "bucket", name=bad)


def test_importing_the_registry_loads_no_framework() -> None:
    import subprocess

    code = ("import sys, model_store.registry, model_training.registry_cli; "
            "print(','.join(m for m in ('mxnet', 'cv2', 'onnxruntime', 'boto3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == ""
