"""Fixtures of the registry and hot-swap tests: a real moto_server and a real redis-server on free
loopback ports (one each per test session, started by ``plateveil_ops.stack``), a fresh bucket per test, and
model bundles made from the shipped one with another version in model.json. ``s3`` and ``redis_client``
here override the whole-stack ones of ``tests/conftest.py`` for the tests in this folder."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from model_store.backends import backend_files
from model_store.bundle import default_model_dir
from model_store.registry import Registry
from plateveil.storage.s3 import S3Store
from plateveil_ops.stack import Stack


@pytest.fixture(scope="session")
def registry_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis and moto_server only (no worker, no API): the registry talks to them directly."""
    with Stack(state_dir=tmp_path_factory.mktemp("registry-stack"), with_worker=False, with_api=False,
               with_registry=False) as running:
        yield running


@pytest.fixture(scope="session")
def registry_moto_url(registry_stack: Stack) -> str:
    return registry_stack.s3_endpoint_url


@pytest.fixture(scope="session")
def registry_redis_url(registry_stack: Stack) -> str:
    return registry_stack.redis_url


@pytest.fixture
def registry_env(registry_moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for boto3 that never reach a real AWS account."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3(registry_env: None, registry_moto_url: str) -> Any:
    return boto3.client("s3", endpoint_url=registry_moto_url, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def redis_client(registry_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(registry_redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def registry(s3: Any, bucket: str) -> Registry:
    return Registry(S3Store(s3), bucket, name="plateveil-plates")


def make_bundle(dest: Path, version: str, onnx_only: bool = True, **config_changes: Any) -> Path:
    """A copy of the shipped bundle with ``version`` (and any other top-level keys) in model.json.
    ``onnx_only`` leaves the mxnet files out: half the bytes, and all the onnx backend needs."""
    src = default_model_dir()
    dest.mkdir(parents=True, exist_ok=True)
    names = [n for name in (["onnx"] if onnx_only else ["onnx", "mxnet"])
             for files in backend_files(name).values() for n in files.values()]
    for name in names:
        shutil.copyfile(src / name, dest / name)
    config = json.loads((src / "model.json").read_text())
    config.update(version=version, **config_changes)
    (dest / "model.json").write_text(json.dumps(config, indent=2))
    return dest


@pytest.fixture
def bundle_factory(tmp_path: Path) -> Any:
    def make(version: str, **kwargs: Any) -> Path:
        return make_bundle(tmp_path / "bundles" / version, version, **kwargs)

    return make
