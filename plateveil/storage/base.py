"""The object-store interface. Stores raise :class:`~plateveil.errors.SourceMissingError` for a
missing object and :class:`~plateveil.errors.StorageError` (retryable) when the store cannot be
reached or fails on its side; nothing else escapes them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    content_type: str
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)


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
    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if it does not exist (development and tests)."""

    @abstractmethod
    def check(self, buckets: list[str]) -> None:
        """Raise StorageError unless the store answers and every bucket exists (health checks)."""
