"""Hot-swapping registry models into a running ModelSwapper (real moto_server and redis-server)."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store.bundle import default_model_dir, read_config
from model_store.cache import ModelCache
from model_store.registry import Registry, redis_notifier
from plateveil.storage.s3 import S3Store
from workers.hotswap import ModelSwapper, job_bucket

pytestmark = pytest.mark.integration

POLL = 0.2


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - t0


@pytest.fixture
def published(registry: Registry, bundle_factory: Any) -> Registry:
    """Versions 1.0.0 (production) and 1.1.0 published."""
    registry.publish(bundle_factory("1.0.0"))
    registry.publish(bundle_factory("1.1.0"))
    registry.promote("1.0.0")
    return registry


@pytest.fixture
def make_swapper(tmp_path: Path) -> Iterator[Callable[..., ModelSwapper]]:
    made: list[ModelSwapper] = []

    def make(registry: Registry, **kwargs: Any) -> ModelSwapper:
        kwargs.setdefault("poll_seconds", POLL)
        kwargs.setdefault("bootstrap", False)
        kwargs.setdefault("threads", 1)
        swapper = ModelSwapper(registry, ModelCache(tmp_path / "cache"), **kwargs)
        made.append(swapper)
        swapper.start()
        return swapper

    yield make
    for swapper in made:
        swapper.stop()


def test_job_bucket_is_stable_and_uniform() -> None:
    assert job_bucket("job-1") == job_bucket("job-1")
    values = [job_bucket(f"job-{i}") for i in range(2000)]
    assert all(0 <= v < 1 for v in values)
    assert abs(statistics.mean(values) - 0.5) < 0.03


def test_promotion_is_served_within_the_poll_interval(published: Registry,
                                                      make_swapper: Callable[..., ModelSwapper]) -> None:
    swapper = make_swapper(published)
    assert swapper.pick("a").tag == "plateveil-plates@1.0.0"
    assert swapper.state()["source"] == "registry"
    published.promote("1.1.0")
    took = wait_for(lambda: swapper.pick("a").version == "1.1.0")
    assert took < POLL + 5.0  # a poll, then download + load + smoke check
    state = swapper.state()
    assert state["production"] == "1.1.0" and state["last_error"] is None and not state["loading"]
    assert state["in_sync"]

    published.rollback()
    wait_for(lambda: swapper.pick("a").version == "1.0.0")


def test_cache_keeps_what_is_served_and_the_previous_version(published: Registry, bundle_factory: Any,
                                                             tmp_path: Path,
                                                             make_swapper: Callable[..., ModelSwapper]) -> None:
    published.publish(bundle_factory("1.2.0"))
    swapper = make_swapper(published, cache_idle_s=0)
    for version in ("1.1.0", "1.2.0"):
        published.promote(version)
        wait_for(lambda v=version: swapper.pick("a").version == v)  # type: ignore[misc]
    # pruning runs in the loader thread right after the swap: wait for it rather than race it
    wait_for(lambda: swapper.cache.cached_versions("plateveil-plates") == ["1.1.0", "1.2.0"])
    published.rollback()  # the previous version is still on disk
    wait_for(lambda: swapper.pick("a").version == "1.1.0")


def test_redis_nudge_beats_a_long_poll(published: Registry, redis_client: Any,
                                       make_swapper: Callable[..., ModelSwapper]) -> None:
    swapper = make_swapper(published, poll_seconds=60, redis_client=redis_client, hostname="worker-a")
    wait_for(lambda: redis_client.pubsub_numsub("plateveil:models")[0][1] >= 1)  # listener subscribed
    published.notify = redis_notifier(redis_client)
    published.promote("1.1.0")
    took = wait_for(lambda: swapper.pick("a").version == "1.1.0", timeout=10)
    assert took < 10
    wait_for(lambda: json.loads(redis_client.hget("plateveil:worker:worker-a", "models"))["production"] == "1.1.0")
    assert 0 < redis_client.ttl("plateveil:worker:worker-a") <= 180


def test_models_workers_command(published: Registry, redis_client: Any, registry_redis_url: str,
                                make_swapper: Callable[..., ModelSwapper], monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from plateveil_ops.cli import main

    make_swapper(published, redis_client=redis_client, hostname="worker-c:42")
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", registry_redis_url)
    assert main(["models", "workers", "--json"]) == 0
    states = json.loads(capsys.readouterr().out)
    assert states["worker-c:42"]["production"] == "1.0.0"
    assert main(["models", "workers"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("worker-c:42"))
    assert "1.0.0 [registry]" in line


def test_jobs_keep_flowing_during_a_swap(published: Registry, make_swapper: Callable[..., ModelSwapper]) -> None:
    swapper = make_swapper(published)
    image = np.full((120, 160, 3), 90, np.uint8)
    stop = threading.Event()
    records: list[tuple[float, float, str, float]] = []  # (start, pick seconds, tag, job seconds)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                t0 = time.perf_counter()
                model = swapper.pick(f"job-{n}-{i}")
                t1 = time.perf_counter()
                tag = model.tag
                model.find_plates(image)  # the job holds its model for its whole run
                assert model.tag == tag
                records.append((t0, t1 - t0, tag, time.perf_counter() - t1))
            except BaseException as exc:  # any failure fails the test below
                errors.append(exc)
            i += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    promoted_at = time.perf_counter()
    published.promote("1.1.0")
    wait_for(lambda: any(tag.endswith("@1.1.0") for _, _, tag, _ in records))
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()

    assert not errors
    before = [r for r in records if r[0] < promoted_at]
    during = [r for r in records if r[0] >= promoted_at]
    assert before and during
    assert max(r[1] for r in records) < 1.0  # pick never waits for a load
    assert max(r[3] for r in during) < max(r[3] for r in before) + 1.0
    tags = [tag for _, _, tag, _ in sorted(records)]
    first_new = tags.index("plateveil-plates@1.1.0")
    assert set(tags[:first_new]) == {"plateveil-plates@1.0.0"}


def test_corrupt_upload_is_refused_and_the_old_model_keeps_serving(
        published: Registry, s3: Any, bucket: str, redis_client: Any,
        make_swapper: Callable[..., ModelSwapper]) -> None:
    swapper = make_swapper(published, redis_client=redis_client, hostname="worker-b")
    s3.put_object(Bucket=bucket, Key="models/plateveil-plates/1.1.0/landmarks.onnx", Body=b"flipped bits")
    published.promote("1.1.0")
    wait_for(lambda: "1.1.0" in swapper.state()["rejected"])
    state = swapper.state()
    assert not state["in_sync"] and state["targets"]["production"] == "1.1.0"
    assert "ModelIntegrityError" in state["rejected"]["1.1.0"]
    assert "1.1.0" in state["last_error"]
    assert swapper.pick("x").version == "1.0.0"
    time.sleep(3 * POLL)  # a rejected version is not retried on every poll
    assert swapper.pick("x").version == "1.0.0" and swapper.state()["swaps"] == 1
    status = json.loads(redis_client.hget("plateveil:worker:worker-b", "models"))
    assert "1.1.0" in status["rejected"]


@pytest.mark.parametrize("breakage", ["garbage-onnx", "config-without-detector", "blind"])
def test_broken_model_is_refused(breakage: str, published: Registry, bundle_factory: Any,
                                 make_swapper: Callable[..., ModelSwapper]) -> None:
    folder = bundle_factory("2.0.0")
    if breakage == "garbage-onnx":
        (folder / "detector.onnx").write_bytes(b"this is not an onnx graph")
    else:
        config = json.loads((folder / "model.json").read_text())
        if breakage == "blind":  # loads and runs cleanly, but finds none of the golden plates
            config["detector"]["score_threshold"] = 1.01
        else:
            del config["detector"]
        (folder / "model.json").write_text(json.dumps(config))
    published.publish(folder)
    swapper = make_swapper(published)
    published.promote("2.0.0")
    wait_for(lambda: "2.0.0" in swapper.state()["rejected"])
    assert swapper.pick("x").version == "1.0.0"
    reason = swapper.state()["rejected"]["2.0.0"]
    assert ("ModelLoadError" if breakage == "garbage-onnx" else "SmokeCheckError") in reason
    if breakage == "blind":
        assert "finds 0 of the 18 golden plates (needs 12)" in reason

    published.promote("1.1.0")  # the next good version is taken as usual
    wait_for(lambda: swapper.pick("x").version == "1.1.0")


def test_canary_share(published: Registry, make_swapper: Callable[..., ModelSwapper]) -> None:
    published.promote("1.1.0", alias="canary")
    swapper = make_swapper(published, canary_share=0.2)
    assert swapper.state()["canary"] == "1.1.0"
    jobs = [f"job-{i}" for i in range(500)]
    first = {j: swapper.pick(j).version for j in jobs}
    share = sum(v == "1.1.0" for v in first.values()) / len(jobs)
    assert 0.15 <= share <= 0.25
    assert all(swapper.pick(j).version == first[j] for j in jobs)  # retries stay on one model

    published.remove_alias("canary")
    wait_for(lambda: swapper.state()["canary"] is None)
    assert {swapper.pick(j).version for j in jobs} == {"1.0.0"}


def test_canary_is_ignored_at_share_zero(published: Registry, make_swapper: Callable[..., ModelSwapper]) -> None:
    published.promote("1.1.0", alias="canary")
    swapper = make_swapper(published)
    assert {swapper.pick(f"j{i}").version for i in range(100)} == {"1.0.0"}
    assert swapper.state()["canary"] is None


def test_fresh_registry_is_bootstrapped(registry: Registry, make_swapper: Callable[..., ModelSwapper]) -> None:
    shipped = read_config(default_model_dir())["version"]
    swapper = make_swapper(registry, bootstrap=True)
    assert swapper.pick("a").version == shipped
    assert swapper.state()["source"] == "registry"
    assert registry.resolve("production") == shipped


def test_unreachable_registry_falls_back_to_the_shipped_bundle(
        s3: Any, make_swapper: Callable[..., ModelSwapper]) -> None:
    missing = Registry(S3Store(s3), "no-such-bucket-here", name="plateveil-plates")
    swapper = make_swapper(missing, bootstrap=True)
    assert swapper.pick("a").version == read_config(default_model_dir())["version"]
    state = swapper.state()
    assert state["source"] == "shipped" and "no-such-bucket-here" in state["last_error"]
