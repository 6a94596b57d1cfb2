"""A directory as an object store: ``<root>/<bucket>/<key>`` plus ``<key>.meta.json`` holding the
content type and metadata. For development without S3; not safe across machines.

Writes and deletes of one bucket take an exclusive file lock (``<root>/.locks/<bucket>.lock``), so a
conditional write (:meth:`LocalStore.put_if`) checks and writes in one step for every process of the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from plateveil.errors import BucketMissingError, SourceMissingError, StorageError
from plateveil.storage.base import ObjectInfo, ObjectStore, StoredObject
from plateveil.storage.locks import file_lock

_META_SUFFIX = ".meta.json"
_TMP_PREFIX = ".tmp-"
_LOCKS = ".locks"


class LocalStore(ObjectStore):
    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if not path.is_relative_to((self.root / bucket).resolve()) or key.endswith(_META_SUFFIX):
            raise SourceMissingError(f"invalid key {key!r}")
        return path

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _locked(self, bucket: str) -> Iterator[None]:
        if not (self.root / bucket).is_dir():
            raise StorageError(f"bucket {bucket!r} does not exist under {self.root}", bucket_missing=True)
        with file_lock(self.root / _LOCKS / f"{bucket}.lock"):
            yield

    def put(self, bucket: str, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        path = self._path(bucket, key)
        with self._locked(bucket):
            return self._write(bucket, key, path, data, content_type, metadata)

    def _write(self, bucket: str, key: str, path: Path, data: bytes, content_type: str,
               metadata: dict[str, str] | None) -> ObjectInfo:
        info = ObjectInfo(bucket, key, len(data), content_type, hashlib.md5(data).hexdigest(), dict(metadata or {}))
        self._write_atomic(path, data)
        meta = {"content_type": content_type, "etag": info.etag, "metadata": info.metadata}
        self._write_atomic(path.with_name(path.name + _META_SUFFIX), json.dumps(meta).encode())
        return info

    def put_if(self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None,
               *, if_none_match: bool = False, if_match: str | None = None) -> ObjectInfo | None:
        self._one_condition(if_none_match, if_match)
        path = self._path(bucket, key)
        with self._locked(bucket):
            current = self.head(bucket, key)
            if (current is not None) if if_none_match else (current is None or current.etag != if_match):
                return None
            return self._write(bucket, key, path, data, content_type, metadata)

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        root = self.root / bucket
        if not root.is_dir():
            raise StorageError(f"bucket {bucket!r} does not exist under {self.root}", bucket_missing=True)
        start = root / prefix if prefix.endswith("/") or not prefix else (root / prefix).parent
        if not start.resolve().is_relative_to(root.resolve()) or not start.is_dir():
            return
        keys = (p.relative_to(root).as_posix() for p in start.rglob("*") if p.is_file()
                and not p.name.endswith(_META_SUFFIX) and not p.name.startswith(_TMP_PREFIX))
        yield from sorted(k for k in keys if k.startswith(prefix))

    def delete(self, bucket: str, key: str) -> None:
        path = self._path(bucket, key)
        with self._locked(bucket):
            path.unlink(missing_ok=True)
            path.with_name(path.name + _META_SUFFIX).unlink(missing_ok=True)

    def location(self, bucket: str, key: str = "") -> str:
        return f"{(self.root / bucket).resolve().as_uri()}/{key}"

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        path = self._path(bucket, key)
        if not path.is_file():
            return None
        meta_path = path.with_name(path.name + _META_SUFFIX)
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        return ObjectInfo(bucket, key, path.stat().st_size, meta.get("content_type", "application/octet-stream"),
                          meta.get("etag", ""), meta.get("metadata", {}))

    def get(self, bucket: str, key: str) -> StoredObject:
        info = self.head(bucket, key)
        if info is None:
            if not (self.root / bucket).is_dir():
                raise BucketMissingError(f"s3://{bucket}/{key} does not exist: no bucket {bucket} under {self.root}")
            raise SourceMissingError(f"s3://{bucket}/{key} does not exist")
        return StoredObject(info, self._path(bucket, key).read_bytes())

    def ensure_bucket(self, bucket: str) -> None:
        (self.root / bucket).mkdir(parents=True, exist_ok=True)

    def check(self, buckets: list[str]) -> None:
        missing = [b for b in buckets if not (self.root / b).is_dir()]
        if missing:
            raise StorageError(f"missing buckets under {self.root}: {', '.join(missing)}")
