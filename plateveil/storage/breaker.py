"""A circuit breaker around an object store, for callers that must fail fast (the upload service).

After ``failures`` consecutive :class:`~plateveil.errors.StorageError` (the store did not answer or
failed on its side; a missing object is an answer) the breaker *opens*: every call raises
:class:`StoreUnavailable` at once, without touching the network, for ``open_s`` seconds. Then one
trial call goes through (*half-open*) while the others keep failing fast; its success closes the
breaker, its failure opens it again. So during an S3 outage a request waits at most one short S3
timeout (the API's client: ``PLATEVEIL_API_S3_*_TIMEOUT_S``, one attempt) and only until the breaker
opens; afterwards it gets its 503 + ``Retry-After`` in microseconds, and the thread pool stays free
for the requests that need only Redis (``GET /v1/jobs/{id}``).

One breaker per process (threads share it; a lock guards its three fields). Hand-written rather than
``pybreaker``: ~40 lines, no new dependency, and it wraps the store interface directly.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from plateveil.errors import StorageError
from plateveil.storage.base import ObjectInfo, ObjectStore, StoredObject

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StoreUnavailable(StorageError):
    """The breaker is open: the store failed repeatedly just now; retry after ``retry_after_s``."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"{name} is failing; not tried (circuit breaker open for {retry_after_s:.1f} s more)")
        self.retry_after_s = retry_after_s


class BreakerStore(ObjectStore):
    def __init__(self, inner: ObjectStore, failures: int = 3, open_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.name = inner.name
        self.failures = failures
        self.open_s = open_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failed = 0             # consecutive failures
        self._open_until = 0.0       # > now: open
        self._trial = False          # a half-open trial call is running

    @property
    def state(self) -> str:
        with self._lock:
            if self._failed < self.failures:
                return "closed"
            return "open" if self._clock() < self._open_until or self._trial else "half-open"

    def retry_after_s(self) -> int:
        """Seconds until the breaker lets a call through again (at least 1)."""
        with self._lock:
            return max(1, math.ceil(self._open_until - self._clock()))

    def _enter(self) -> bool:
        """True when this call is the half-open trial; StoreUnavailable when open."""
        with self._lock:
            if self._failed < self.failures:
                return False
            now = self._clock()
            if now < self._open_until or self._trial:
                raise StoreUnavailable(self.name, max(self._open_until - now, 1.0))
            self._trial = True
            return True

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        trial = self._enter()
        try:
            result = fn(*args)
        except StorageError:
            with self._lock:
                self._failed += 1
                self._trial = False
                if self._failed >= self.failures:
                    self._open_until = self._clock() + self.open_s
                    if self._failed == self.failures or trial:
                        logger.warning("%s circuit breaker open for %.1f s after %d failures", self.name,
                                       self.open_s, self._failed)
            raise
        except BaseException:   # an answer (SourceMissingError) or not the store's fault
            if trial:
                with self._lock:
                    self._trial = False
            raise
        with self._lock:
            if self._failed >= self.failures:
                logger.info("%s circuit breaker closed (the store answers again)", self.name)
            self._failed = 0
            self._trial = False
        return result

    def put(self, bucket: str, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        return self._call(self.inner.put, bucket, key, data, content_type, metadata)

    def get(self, bucket: str, key: str) -> StoredObject:
        return self._call(self.inner.get, bucket, key)

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        return self._call(self.inner.head, bucket, key)

    def put_if(self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None,
               *, if_none_match: bool = False, if_match: str | None = None) -> ObjectInfo | None:
        return self._call(lambda: self.inner.put_if(bucket, key, data, content_type, metadata,
                                                    if_none_match=if_none_match, if_match=if_match))

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        return iter(self._call(lambda: list(self.inner.list_keys(bucket, prefix))))

    def delete(self, bucket: str, key: str) -> None:
        self._call(self.inner.delete, bucket, key)

    def location(self, bucket: str, key: str = "") -> str:
        return self.inner.location(bucket, key)

    def ensure_bucket(self, bucket: str) -> None:
        self._call(self.inner.ensure_bucket, bucket)

    def check(self, buckets: list[str]) -> None:
        self._call(self.inner.check, buckets)

    def __getattr__(self, name: str) -> Any:   # e.g. ``client`` of an S3Store
        return getattr(self.__dict__["inner"], name) if "inner" in self.__dict__ else super().__getattribute__(name)
