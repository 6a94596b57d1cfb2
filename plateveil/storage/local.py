"""A directory as an object store: ``<root>/<bucket>/<key>`` plus ``<key>.meta.json`` holding the
content type and metadata. For development without S3; not safe across machines."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from plateveil.errors import SourceMissingError, StorageError
from plateveil.storage.base import ObjectInfo, ObjectStore, StoredObject

_META_SUFFIX = ".meta.json"


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
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def put(self, bucket: str, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        if not (self.root / bucket).is_dir():
            raise StorageError(f"bucket {bucket!r} does not exist under {self.root}")
        path = self._path(bucket, key)
        info = ObjectInfo(bucket, key, len(data), content_type, hashlib.md5(data).hexdigest(), dict(metadata or {}))
        self._write_atomic(path, data)
        meta = {"content_type": content_type, "etag": info.etag, "metadata": info.metadata}
        self._write_atomic(path.with_name(path.name + _META_SUFFIX), json.dumps(meta).encode())
        return info

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
            raise SourceMissingError(f"s3://{bucket}/{key} does not exist")
        return StoredObject(info, self._path(bucket, key).read_bytes())

    def ensure_bucket(self, bucket: str) -> None:
        (self.root / bucket).mkdir(parents=True, exist_ok=True)

    def check(self, buckets: list[str]) -> None:
        missing = [b for b in buckets if not (self.root / b).is_dir()]
        if missing:
            raise StorageError(f"missing buckets under {self.root}: {', '.join(missing)}")
