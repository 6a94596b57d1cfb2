"""A rollout with workers watching (real moto_server and redis-server, model swappers in this process):
``promote`` waits for the workers and names those that refuse, ``rollback`` goes to the last version
the workers served, a restarted worker starts from its last good cached version, and
``plateveil models workers`` shows state with timestamps and clears errors once in sync."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from model_store.cache import ModelCache
from model_store.registry import Registry
from model_training.registry_cli import (
    EXIT_OK,
    EXIT_UNLOADABLE,
    EXIT_WORKERS_REFUSED,
    EXIT_WORKERS_TIMEOUT,
)
from plateveil_ops.cli import main
from workers.hotswap import ModelSwapper

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(bucket: str, registry_moto_url: str, registry_redis_url: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PLATEVEIL_REGISTRY_BUCKET": bucket, "PLATEVEIL_S3_ENDPOINT_URL": registry_moto_url,
        "PLATEVEIL_S3_REGION": "us-east-1", "PLATEVEIL_S3_ACCESS_KEY_ID": "testing",
        "PLATEVEIL_S3_SECRET_ACCESS_KEY": "testing", "PLATEVEIL_REDIS_URL": registry_redis_url,
        "PLATEVEIL_MODEL_CACHE_DIR": str(tmp_path / "cli-cache"), "PLATEVEIL_PROMOTE_WAIT_S": "30",
        "PLATEVEIL_GATE_MAX_LATENCY_RISE": "100",  # real timings never decide a test (the machine is shared)
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PLATEVEIL_GATE_GOLDEN_DIR", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["models", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def worker_block(out: str, name: str) -> str:
    """The lines ``plateveil models workers`` prints about one worker (Redis is shared with other tests)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(name + "  "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return "\n".join(lines[start:end])


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def workers(registry: Registry, redis_client: Any, tmp_path: Path) -> Iterator[Callable[..., ModelSwapper]]:
    """Start model swappers as a worker process does (polling, listening for the Redis nudge)."""
    made: list[ModelSwapper] = []

    def start(name: str, cache: str = "worker-cache", **kwargs: Any) -> ModelSwapper:
        kwargs.setdefault("poll_seconds", 1.0)
        swapper = ModelSwapper(registry, ModelCache(tmp_path / cache), hostname=name, bootstrap=False, threads=1,
                               redis_client=redis_client, **kwargs)
        made.append(swapper)
        swapper.start()
        live = sum(1 for m in made if m._threads)  # stopped ones have unsubscribed
        wait_for(lambda: redis_client.pubsub_numsub("plateveil:models")[0][1] >= live)
        return swapper

    yield start
    for swapper in made:
        swapper.stop()


def garbage(bundle: Path) -> Path:
    (bundle / "detector.onnx").write_bytes(b"not an onnx graph")
    return bundle


def blind(bundle: Path) -> Path:
    config = json.loads((bundle / "model.json").read_text())
    config["detector"]["score_threshold"] = 1.01
    (bundle / "model.json").write_text(json.dumps(config))
    return bundle


def test_promote_waits_for_the_workers_and_names_those_that_refuse(
        cli_env: None, registry: Registry, bundle_factory: Any, workers: Callable[..., ModelSwapper],
        capsys: pytest.CaptureFixture[str]) -> None:
    for version in ("1.0.0", "1.1.0"):
        assert run(capsys, "publish", str(bundle_factory(version)))[0] == EXIT_OK
    assert run(capsys, "publish", str(garbage(bundle_factory("1.2.0"))))[0] == EXIT_UNLOADABLE
    assert run(capsys, "publish", str(garbage(bundle_factory("1.2.0"))), "--skip-checks")[0] == EXIT_OK
    registry.promote("1.0.0")
    a, b = workers("worker-a"), workers("worker-b")

    code, out = run(capsys, "promote", "1.1.0", "--wait", "30s")
    assert code == EXIT_OK, out
    assert "waiting up to 30 s for 2 worker(s)" in out and "worker-a: serves 1.1.0" in out
    assert "all 2 worker(s) serve plateveil-plates@1.1.0" in out
    assert a.pick("j").version == b.pick("j").version == "1.1.0"

    code, out = run(capsys, "promote", "1.2.0", "--force")
    assert code == EXIT_WORKERS_REFUSED, out
    assert "worker-a: REFUSED 1.2.0, keeps serving 1.1.0: ModelLoadError" in out and "worker-b: REFUSED" in out
    assert "2 of 2 worker(s) refused plateveil-plates@1.2.0 (worker-a, worker-b)" in out
    assert a.pick("j").version == "1.1.0"

    # the workers' view: out of sync with the refusal and when it happened...
    code, out = run(capsys, "workers")
    block = worker_block(out, "worker-a")
    assert "1.1.0 [registry] since 20" in block and "checked 20" in block
    assert "OUT OF SYNC (aliases: production -> 1.2.0)" in block and "\n    refused 1.2.0: ModelLoadError" in block

    # ...until the rollback, which waits too and clears the error
    code, out = run(capsys, "rollback")
    assert code == EXIT_OK and "production -> 1.1.0 (rolled back from 1.2.0: the last version workers served" in out
    assert "all 2 worker(s) serve plateveil-plates@1.1.0" in out
    wait_for(lambda: a.state()["last_error"] is None)
    code, out = run(capsys, "workers")
    for name in ("worker-a", "worker-b"):
        block = worker_block(out, name)
        assert "  1.1.0 [registry] since 20" in block and block.endswith("in sync")
        assert "\n" not in block and "OUT OF SYNC" not in block and "refused" not in block


def test_promote_gives_up_after_the_wait_naming_the_slow_workers(
        cli_env: None, registry: Registry, bundle_factory: Any, workers: Callable[..., ModelSwapper],
        capsys: pytest.CaptureFixture[str]) -> None:
    from model_store.runtime import load_model

    def slow_loader(*args: Any, **kwargs: Any) -> Any:
        if not started.is_set():
            return load_model(*args, **kwargs)
        time.sleep(4)  # a worker busy loading far longer than the promote waits
        return load_model(*args, **kwargs)

    import threading

    started = threading.Event()
    for version in ("1.0.0", "1.1.0"):
        registry.publish(bundle_factory(version))
    registry.promote("1.0.0")
    workers("worker-slow", loader=slow_loader)
    started.set()
    code, out = run(capsys, "promote", "1.1.0", "--wait", "1")
    assert code == EXIT_WORKERS_TIMEOUT, out
    assert "worker-slow: still serves 1.0.0" in out
    assert "1 of 1 worker(s) did not report serving 1.1.0 within 1 s: worker-slow" in out


def test_rollback_goes_to_the_last_version_the_workers_served(
        cli_env: None, registry: Registry, bundle_factory: Any, workers: Callable[..., ModelSwapper],
        capsys: pytest.CaptureFixture[str]) -> None:
    for version in ("1.0.0", "1.1.0"):
        registry.publish(bundle_factory(version))
    registry.publish(garbage(bundle_factory("1.2.0")))
    registry.publish(blind(bundle_factory("1.3.0")))
    registry.promote("1.0.0")
    worker = workers("worker-r")
    assert run(capsys, "promote", "1.1.0")[0] == EXIT_OK
    assert registry.served("production") == ["1.1.0", "1.0.0"]  # recorded by the worker
    for bad in ("1.2.0", "1.3.0"):  # two bad promotions in a row
        code, out = run(capsys, "promote", bad, "--force")
        assert code == EXIT_WORKERS_REFUSED, out
    assert registry.served("production") == ["1.1.0", "1.0.0"]
    code, out = run(capsys, "list")
    assert next(x for x in out.splitlines() if x.startswith("1.1.0")).rstrip().endswith("yes (last)")
    assert next(x for x in out.splitlines() if x.startswith("1.3.0")).rstrip().endswith("-")

    code, out = run(capsys, "rollback")  # not to 1.2.0 (the alias's previous version): to 1.1.0
    assert code == EXIT_OK, out
    assert "production -> 1.1.0 (rolled back from 1.3.0: the last version workers served; skipped 1.2.0" in out
    assert registry.resolve("production") == "1.1.0" and worker.pick("j").version == "1.1.0"
    code, out = run(capsys, "rollback")  # and once more: the version served before that
    assert code == EXIT_OK and "production -> 1.0.0" in out and worker.pick("j").version == "1.0.0"


def test_a_restarted_worker_starts_from_its_last_good_version(
        registry: Registry, bundle_factory: Any, redis_client: Any, workers: Callable[..., ModelSwapper]) -> None:
    for version in ("1.0.0", "1.1.0"):
        registry.publish(bundle_factory(version))
    registry.publish(garbage(bundle_factory("1.2.0")))
    registry.promote("1.0.0")
    first = workers("worker-1")
    registry.promote("1.1.0")
    wait_for(lambda: first.pick("j").version == "1.1.0")
    registry.promote("1.2.0")
    wait_for(lambda: "1.2.0" in first.state()["rejected"])
    first.stop()

    # a new process on the same disk: the alias names a version it refuses; it serves 1.1.0, not the shipped 1.10.0
    second = workers("worker-2")
    state = second.state()
    assert second.pick("j").version == "1.1.0"
    assert state["source"] == "last-good" and not state["in_sync"] and "1.2.0" in state["rejected"]
    assert "1.2.0" in state["last_error"] and state["production_since"]
    status = json.loads(redis_client.hget("plateveil:worker:worker-2", "models"))
    assert status["source"] == "last-good" and status["production"] == "1.1.0"

    # a worker on another disk (no last good version) falls back to the shipped bundle
    third = workers("worker-3", cache="other-cache")
    assert third.state()["source"] == "shipped"

    # once the alias comes back to it, the last good version is the registry's again (no reload), errors clear
    swaps = second.state()["swaps"]
    registry.rollback()
    wait_for(lambda: second.state()["source"] == "registry")
    state = second.state()
    assert state["in_sync"] and state["last_error"] is None and state["swaps"] == swaps
    assert second.pick("j").version == "1.1.0"


def test_the_last_good_copy_is_checked_before_it_is_served(
        registry: Registry, bundle_factory: Any, tmp_path: Path, workers: Callable[..., ModelSwapper]) -> None:
    registry.publish(bundle_factory("1.1.0"))
    registry.publish(garbage(bundle_factory("1.2.0")))
    registry.promote("1.1.0")
    first = workers("worker-x")
    first.stop()
    # the cached copy is damaged on disk meanwhile: not served, the shipped bundle is
    cached = ModelCache(tmp_path / "worker-cache").path("plateveil-plates", "1.1.0")
    data = bytearray((cached / "landmarks.onnx").read_bytes())
    data[500] ^= 0xFF
    (cached / "landmarks.onnx").write_bytes(bytes(data))
    registry.promote("1.2.0")
    second = workers("worker-y")
    assert second.state()["source"] == "shipped"


def test_stale_worker_states_are_not_waited_for(
        cli_env: None, registry: Registry, bucket: str, bundle_factory: Any, redis_client: Any,
        workers: Callable[..., ModelSwapper], capsys: pytest.CaptureFixture[str]) -> None:
    for version in ("1.0.0", "1.1.0"):
        registry.publish(bundle_factory(version))
    registry.promote("1.0.0")
    live = workers("worker-live")
    gone = dict(live.state(), last_check="2020-01-01T00:00:00.000+00:00")  # a worker that stopped long ago
    redis_client.hset("plateveil:worker:worker-gone", "models", json.dumps(gone))
    redis_client.expire("plateveil:worker:worker-gone", 60)
    code, out = run(capsys, "workers")
    assert "worker-gone" in out and "NO REPORT FOR" in out
    code, out = run(capsys, "promote", "1.1.0")
    assert code == EXIT_OK and "for 1 worker(s)" in out and "worker-gone" not in out, out
