"""The registry on the local-directory store (``PLATEVEIL_REGISTRY_STORAGE=local``): the same guarantees
as on S3 (immutable versions, conditional alias writes, rollback), through the same ObjectStore interface."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from model_store.backends import backend_files
from model_store.bundle import CONFIG_FILE, default_model_dir
from model_store.cache import ModelCache
from model_store.errors import AliasError, VersionConflictError, VersionNotFoundError
from model_store.registry import Registry, ensure_bootstrap, registry_from_settings
from model_store.registry_settings import RegistrySettings
from plateveil.errors import StorageError
from plateveil.storage.local import LocalStore


def _bundle(dest: Path, version: str) -> Path:
    dest.mkdir(parents=True)
    for files in backend_files("onnx").values():
        for name in files.values():
            shutil.copyfile(default_model_dir() / name, dest / name)
    config = json.loads((default_model_dir() / CONFIG_FILE).read_text()) | {"version": version}
    (dest / CONFIG_FILE).write_text(json.dumps(config))
    return dest


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "objects")
    store.ensure_bucket("models")
    return store


@pytest.fixture
def registry(store: LocalStore) -> Registry:
    return Registry(store, "models", name="plateveil-plates")


def test_the_factory_builds_a_local_registry(tmp_path: Path) -> None:
    (tmp_path / "objects" / "reg").mkdir(parents=True)
    settings = RegistrySettings(registry_bucket="reg", registry_storage="local", redis_url=None,
                                local_storage_dir=str(tmp_path / "objects"), registry_prefix="m")
    registry = registry_from_settings(settings)
    assert isinstance(registry.store, LocalStore) and registry.notify is None
    assert repr(registry) == f"Registry({(tmp_path / 'objects' / 'reg').resolve().as_uri()}/m/plateveil-plates)"
    assert registry.list_versions() == []


def test_publish_promote_rollback_and_cache(registry: Registry, tmp_path: Path) -> None:
    for version in ("1.0.0", "1.1.0", "1.10.0"):
        registry.publish(_bundle(tmp_path / version, version))
        registry.promote(version)
    assert registry.list_versions() == ["1.0.0", "1.1.0", "1.10.0"]
    assert registry.resolve("production") == "1.10.0"
    assert registry.read_alias("production")[0].previous == ("1.1.0", "1.0.0")
    assert registry.publish(tmp_path / "1.0.0").version == "1.0.0"  # same bytes: the stored manifest
    changed = _bundle(tmp_path / "changed", "1.0.0")
    (changed / "detector.onnx").write_bytes(b"other bytes")
    with pytest.raises(VersionConflictError, match="detector.onnx"):
        registry.publish(changed)
    assert registry.rollback().version == "1.1.0"
    assert registry.record_served("production", "1.1.0") and registry.served() == ["1.1.0"]
    with pytest.raises(VersionNotFoundError):
        registry.promote("9.9.9")
    folder = ModelCache(tmp_path / "cache").fetch(registry, "1.1.0")
    assert json.loads((folder / CONFIG_FILE).read_text())["version"] == "1.1.0"
    assert registry.remove_alias("production") and not registry.remove_alias("production")
    with pytest.raises(AliasError):
        registry.rollback()


def test_concurrent_promotions_lose_no_write(store: LocalStore, tmp_path: Path) -> None:
    first = Registry(store, "models", name="plateveil-plates")
    versions = [f"2.{i}.0" for i in range(6)]
    for version in versions:
        first.publish(_bundle(tmp_path / version, version))
    with ThreadPoolExecutor(len(versions)) as pool:  # a lost write would drop a version from the history
        list(pool.map(lambda v: Registry(store, "models", name="plateveil-plates").promote(v, "canary"), versions))
    alias = first.read_alias("canary")[0]
    assert alias is not None and sorted((alias.version, *alias.previous)) == versions  # every write is there


def test_bootstrap_once_and_a_missing_bucket_is_a_clear_error(registry: Registry, store: LocalStore) -> None:
    shipped = ensure_bootstrap(registry)
    assert shipped is not None and registry.resolve("production") == shipped
    assert ensure_bootstrap(registry) is None
    missing = Registry(store, "no-such-bucket", name="plateveil-plates")
    with pytest.raises(StorageError, match="the registry bucket no-such-bucket does not exist"):
        missing.resolve("production")
    with pytest.raises(StorageError, match="the registry bucket no-such-bucket does not exist"):
        missing.list_versions()
