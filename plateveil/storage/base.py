"""The object-store interface. Stores raise :class:`~plateveil.errors.SourceMissingError` for a
missing object (:class:`~plateveil.errors.BucketMissingError` when its bucket is missing too) and
:class:`~plateveil.errors.StorageError` (retryable) when the store cannot be reached or fails on its side;
nothing else escapes them.

Besides whole-object reads and writes, a store offers what the model registry builds on: a conditional
write (:meth:`ObjectStore.put_if`: create only if absent, or compare-and-swap on the etag), a listing by
key prefix and a delete.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    content_type: str
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)
    version_id: str = ""  # S3's VersionId on a versioned bucket ("" otherwise)


@dataclass(frozen=True)
class StoredObject:
    info: ObjectInfo
    data: bytes


class ObjectStore(ABC):
    name = "base"

    @abstractmethod
    def put(self, bucket: str, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Write an object (private); ``metadata`` becomes ``x-amz-meta-*`` on S3."""

    @abstractmethod
    def get(self, bucket: str, key: str) -> StoredObject:
        """Read a whole object; SourceMissingError if it does not exist."""

    @abstractmethod
    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """Object info, or None when it does not exist."""

    @abstractmethod
    def put_if(self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None,
               *, if_none_match: bool = False, if_match: str | None = None) -> ObjectInfo | None:
        """Write an object only if a condition holds, in one step: ``if_none_match`` - no object is at
        ``key``; ``if_match`` - the object at ``key`` has this etag (compare-and-swap). Exactly one
        condition. None when it does not hold (someone else wrote first)."""

    @abstractmethod
    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        """The keys under ``prefix``, in lexicographic order."""

    @abstractmethod
    def delete(self, bucket: str, key: str) -> None:
        """Remove an object (nothing happens when it does not exist)."""

    def location(self, bucket: str, key: str = "") -> str:
        """Where an object is, for messages (``s3://bucket/key``)."""
        return f"{self.name}://{bucket}/{key}"

    @staticmethod
    def _one_condition(if_none_match: bool, if_match: str | None) -> None:
        if if_none_match == (if_match is not None):
            raise ValueError("put_if needs exactly one condition: if_none_match or if_match")

    @abstractmethod
    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if it does not exist (development and tests)."""

    @abstractmethod
    def check(self, buckets: list[str]) -> None:
        """Raise StorageError unless the store answers and every bucket exists (health checks)."""
