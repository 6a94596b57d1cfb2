"""The store circuit breaker (plateveil/storage/breaker.py) over a local store that can be made to fail:
it opens after N consecutive failures, answers at once while open, lets one trial through after its open
time, and a missing object is an answer, not a failure."""

from __future__ import annotations

import pytest

from plateveil.errors import SourceMissingError, StorageError
from plateveil.storage.breaker import BreakerStore, StoreUnavailable
from plateveil.storage.local import LocalStore


class Flaky(LocalStore):
    def __init__(self, root) -> None:
        super().__init__(str(root))
        self.down = False
        self.calls = 0

    def get(self, bucket, key):
        self.calls += 1
        if self.down:
            raise StorageError("S3 get failed: read timeout")
        return super().get(bucket, key)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_closes_after_a_good_trial(tmp_path):
    inner, clock = Flaky(tmp_path), Clock()
    store = BreakerStore(inner, failures=3, open_s=5.0, clock=clock)
    store.ensure_bucket("b")
    store.put("b", "k", b"data", "application/octet-stream")
    assert store.get("b", "k").data == b"data" and store.state == "closed"
    inner.down = True
    for _ in range(3):
        with pytest.raises(StorageError) as err:
            store.get("b", "k")
        assert not isinstance(err.value, StoreUnavailable)
    assert store.state == "open" and inner.calls == 4
    with pytest.raises(StoreUnavailable) as err:   # at once, the store is not called
        store.get("b", "k")
    assert inner.calls == 4 and 1 <= err.value.retry_after_s <= 5 and store.retry_after_s() == 5
    clock.now += 5.1
    assert store.state == "half-open"
    with pytest.raises(StorageError):   # the trial fails: open again for another 5 s
        store.get("b", "k")
    assert inner.calls == 5 and store.state == "open"
    clock.now += 5.1
    inner.down = False
    assert store.get("b", "k").data == b"data" and store.state == "closed"   # the trial succeeds: closed
    assert inner.calls == 6


def test_a_missing_object_is_an_answer_not_a_failure(tmp_path):
    store = BreakerStore(LocalStore(str(tmp_path)), failures=1, open_s=5.0, clock=Clock())
    store.ensure_bucket("b")
    for _ in range(3):
        with pytest.raises(SourceMissingError):
            store.get("b", "nope")
        assert store.head("b", "nope") is None
    assert store.state == "closed"


def test_a_success_resets_the_count(tmp_path):
    inner = Flaky(tmp_path)
    store = BreakerStore(inner, failures=2, open_s=5.0, clock=Clock())
    store.ensure_bucket("b")
    store.put("b", "k", b"x", "text/plain")
    for _ in range(3):
        inner.down = True
        with pytest.raises(StorageError):
            store.get("b", "k")
        inner.down = False
        store.get("b", "k")
    assert store.state == "closed"
