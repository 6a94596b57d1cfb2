"""The registry and the local cache against a real S3 server (moto_server)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from model_store.bundle import default_model_dir, read_config
from model_store.cache import ModelCache
from model_store.errors import AliasError, ModelIntegrityError, VersionConflictError, VersionNotFoundError
from model_store.registry import MANIFEST, Registry, _now, ensure_bootstrap, sha256_file
from model_store.runtime import load_model
from plateveil.storage.s3 import S3Store

pytestmark = pytest.mark.integration


def test_publish_list_show(registry: Registry, bundle_factory: Any) -> None:
    folder = bundle_factory("1.0.0", training={"photos": 900}, metrics={"recall_08": 0.91})
    manifest = registry.publish(folder)
    assert manifest.version == "1.0.0"
    assert registry.list_versions() == ["1.0.0"]
    shown = registry.show("1.0.0")
    assert shown == manifest
    assert {f.path for f in shown.files} == {"model.json", "detector.onnx", "landmarks.onnx"}
    for f in shown.files:
        assert f.sha256 == sha256_file(folder / f.path)
        assert f.size == (folder / f.path).stat().st_size
    assert shown.framework == "onnx"
    assert shown.detector_input == {"long_side": 640, "pad_to": 32}
    assert shown.landmark_input == {"width": 128, "height": 64}
    assert shown.training == {"photos": 900} and shown.metrics == {"recall_08": 0.91}
    assert shown.git_commit and shown.created_at

    registry.publish(bundle_factory("1.10.0"))
    registry.publish(bundle_factory("1.9.0"), version="1.9.0")
    assert registry.list_versions() == ["1.0.0", "1.9.0", "1.10.0"]
    with pytest.raises(VersionNotFoundError, match="1.0.0, 1.9.0, 1.10.0"):
        registry.show("2.0.0")


def test_full_bundle_records_both_frameworks(registry: Registry, bundle_factory: Any) -> None:
    manifest = registry.publish(bundle_factory("2.0.0", onnx_only=False))
    assert manifest.framework == "mxnet-1.9.1/gluoncv-0.10.5+onnx"
    assert len(manifest.files) == 7


def test_version_is_immutable(registry: Registry, bundle_factory: Any, s3: Any, bucket: str) -> None:
    folder = bundle_factory("1.0.0")
    first = registry.publish(folder)
    again = registry.publish(folder)  # same bytes: a no-op that returns the stored manifest
    assert again.created_at == first.created_at and again.digest == first.digest

    changed = bundle_factory("1.0.0-changed")
    (changed / "detector.onnx").write_bytes((folder / "detector.onnx").read_bytes() + b"\0")
    with pytest.raises(VersionConflictError, match="detector.onnx"):
        registry.publish(changed, version="1.0.0")
    stored = s3.get_object(Bucket=bucket, Key="models/plateveil-plates/1.0.0/detector.onnx")["Body"].read()
    assert stored == (folder / "detector.onnx").read_bytes()  # nothing was overwritten


def test_racing_publishers_of_the_same_version(registry: Registry, bundle_factory: Any, s3: Any,
                                               bucket: str) -> None:
    """Two publishers past the existence check at once: the conditional manifest write decides."""
    folder = bundle_factory("3.0.0")
    other = Registry(S3Store(s3), bucket, name="plateveil-plates")
    results: list[Any] = []

    def go(reg: Registry) -> None:
        results.append(reg.publish(folder))

    threads = [threading.Thread(target=go, args=(r,)) for r in (registry, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0].digest == results[1].digest
    assert registry.list_versions() == ["3.0.0"]


def test_unfinished_upload_is_not_a_version(registry: Registry, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="models/plateveil-plates/9.9.9/detector.onnx", Body=b"half")
    assert registry.list_versions() == []
    with pytest.raises(VersionNotFoundError):
        registry.promote("9.9.9")


def test_promote_resolve_rollback(registry: Registry, bundle_factory: Any) -> None:
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        registry.publish(bundle_factory(v))
    assert registry.resolve("production") is None
    registry.promote("1.0.0")
    registry.promote("1.1.0")
    alias = registry.promote("1.2.0")
    assert alias.version == "1.2.0" and alias.previous == ("1.1.0", "1.0.0")
    assert registry.promote("1.2.0").previous == ("1.1.0", "1.0.0")  # same version: no new history
    registry.promote("1.0.0", alias="canary")
    assert registry.resolve("canary") == "1.0.0"
    assert set(registry.aliases()) == {"production", "canary"}

    assert registry.rollback().version == "1.1.0"
    assert registry.resolve("production") == "1.1.0"
    assert registry.rollback().version == "1.0.0"
    with pytest.raises(AliasError, match="no earlier version"):
        registry.rollback()
    with pytest.raises(AliasError, match="not set"):
        registry.rollback("staging")
    assert registry.remove_alias("canary") and registry.resolve("canary") is None
    assert not registry.remove_alias("canary")


def test_promote_notifies(registry: Registry, bundle_factory: Any) -> None:
    seen: list[tuple[str, str, str | None]] = []
    registry.notify = lambda name, alias, version: seen.append((name, alias, version))
    registry.publish(bundle_factory("1.0.0"))
    registry.publish(bundle_factory("1.1.0"))
    registry.promote("1.0.0")
    registry.promote("1.0.0")  # unchanged: no nudge
    registry.promote("1.1.0")
    registry.rollback()
    assert seen == [("plateveil-plates", "production", "1.0.0"), ("plateveil-plates", "production", "1.1.0"),
                    ("plateveil-plates", "production", "1.0.0")]


def test_concurrent_promotions_lose_no_history(registry: Registry, bundle_factory: Any, s3: Any,
                                               bucket: str) -> None:
    versions = [f"1.{i}.0" for i in range(6)]
    for v in versions:
        registry.publish(bundle_factory(v))
    errors: list[BaseException] = []

    def go(v: str) -> None:
        try:
            Registry(S3Store(s3), bucket, name="plateveil-plates").promote(v)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    alias = registry.read_alias("production")[0]
    assert alias is not None
    assert sorted((alias.version,) + alias.previous) == sorted(versions)  # every write is in the history


def test_download_verifies_and_reuses(registry: Registry, bundle_factory: Any, tmp_path: Path) -> None:
    folder = bundle_factory("1.0.0")
    registry.publish(folder)
    cache = ModelCache(tmp_path / "cache")
    path = cache.fetch(registry, "1.0.0")
    assert path == tmp_path / "cache" / "plateveil-plates" / "1.0.0"
    for name in ("model.json", "detector.onnx", "landmarks.onnx"):
        assert sha256_file(path / name) == sha256_file(folder / name)
    assert json.loads((path / MANIFEST).read_text())["version"] == "1.0.0"
    assert load_model(path).tag == "plateveil-plates@1.0.0"
    mtime = (path / "detector.onnx").stat().st_mtime_ns
    assert cache.fetch(registry, "1.0.0") == path
    assert (path / "detector.onnx").stat().st_mtime_ns == mtime  # reused, not downloaded again
    assert cache.verify(path, full=True)

    (path / "landmarks.onnx").write_bytes(b"truncated")  # damage on disk: found by the size check
    assert cache.fetch(registry, "1.0.0") == path
    assert sha256_file(path / "landmarks.onnx") == sha256_file(folder / "landmarks.onnx")
    assert cache.cached_versions("plateveil-plates") == ["1.0.0"]
    assert cache.prune("plateveil-plates", keep=set(), min_idle_s=3600) == []  # just used
    assert cache.prune("plateveil-plates", keep={"1.0.0"}) == []
    assert cache.prune("plateveil-plates", keep=set()) == ["1.0.0"]
    assert cache.cached_versions("plateveil-plates") == [] and not path.exists()


def test_corrupt_upload_is_refused_and_leaves_nothing(registry: Registry, bundle_factory: Any, s3: Any,
                                                      bucket: str, tmp_path: Path) -> None:
    registry.publish(bundle_factory("1.0.0"))
    s3.put_object(Bucket=bucket, Key="models/plateveil-plates/1.0.0/detector.onnx", Body=b"bit rot")
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(ModelIntegrityError, match="detector.onnx"):
        cache.fetch(registry, "1.0.0")
    folder = tmp_path / "cache" / "plateveil-plates"
    assert not (folder / "1.0.0").exists()
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []


def test_parallel_fetches_download_once(registry: Registry, bundle_factory: Any, tmp_path: Path) -> None:
    registry.publish(bundle_factory("1.0.0"))
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda: paths.append(ModelCache(tmp_path / "c").fetch(registry, "1.0.0")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(paths) == 3 and len(set(paths)) == 1
    assert ModelCache(tmp_path / "c").verify(paths[0], full=True)


def test_bootstrap_publishes_the_shipped_bundle_once(registry: Registry, s3: Any, bucket: str) -> None:
    shipped = read_config(default_model_dir())["version"]
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(
        ensure_bootstrap(Registry(S3Store(s3), bucket, name="plateveil-plates")))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shipped in results
    assert registry.list_versions() == [shipped]
    assert registry.resolve("production") == shipped
    assert ensure_bootstrap(registry) is None  # not empty any more
    assert len(registry.show(shipped).files) == 7


def test_racing_publishers_with_different_bytes(registry: Registry, bundle_factory: Any, s3: Any, bucket: str,
                                                tmp_path: Path) -> None:
    """One wins, the other is refused, and the stored version is entirely the winner's."""
    a = bundle_factory("4.0.0")
    b = bundle_factory("4.0.0-b")
    (b / "detector.onnx").write_bytes((a / "detector.onnx").read_bytes() + b"\0")
    outcomes: list[Any] = []

    def go(folder: Path) -> None:
        try:
            outcomes.append(Registry(S3Store(s3), bucket, name="plateveil-plates").publish(folder, version="4.0.0"))
        except VersionConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=go, args=(f,)) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, VersionConflictError) for o in outcomes) == 1
    winner = next(o for o in outcomes if not isinstance(o, Exception))
    assert registry.show("4.0.0").digest == winner.digest
    path = ModelCache(tmp_path / "cache").fetch(registry, "4.0.0")
    assert ModelCache(tmp_path / "cache").verify(path, full=True)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="models/")["Contents"]]
    assert not any(k.endswith(".publishing.json") for k in keys)


def test_stale_claim_is_taken_over(registry: Registry, bundle_factory: Any, s3: Any, bucket: str) -> None:
    claim = "models/plateveil-plates/5.0.0/.publishing.json"
    s3.put_object(Bucket=bucket, Key=claim, Body=json.dumps({"digest": "other", "started_at": _now()}))
    with pytest.raises(VersionConflictError, match="being published right now"):
        registry.publish(bundle_factory("5.0.0"))
    s3.put_object(Bucket=bucket, Key=claim,
                  Body=json.dumps({"digest": "other", "started_at": "2020-01-01T00:00:00+00:00"}))
    assert registry.publish(bundle_factory("5.0.0")).version == "5.0.0"
    assert registry.list_versions() == ["5.0.0"]


def test_publish_under_another_version_rewrites_model_json(registry: Registry, bundle_factory: Any,
                                                          tmp_path: Path) -> None:
    folder = bundle_factory("1.0.0")
    manifest = registry.publish(folder, version="7.0.0")
    assert registry.publish(folder, version="7.0.0").digest == manifest.digest  # deterministic: a no-op
    path = ModelCache(tmp_path / "cache").fetch(registry, "7.0.0")
    assert read_config(path)["version"] == "7.0.0"
    assert read_config(folder)["version"] == "1.0.0"  # the source folder is untouched
    assert load_model(path).tag == "plateveil-plates@7.0.0"
