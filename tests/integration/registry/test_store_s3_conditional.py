"""What the registry needs from the S3 store, against a real S3-speaking server (moto_server): conditional
writes (create only if absent, compare-and-swap on the etag), listing by prefix, delete, a missing bucket
told apart from a missing key."""

from __future__ import annotations

from typing import Any

import pytest

from plateveil.errors import BucketMissingError, SourceMissingError, StorageError
from plateveil.storage.s3 import S3Store


def test_conditional_writes_list_and_delete(s3: Any, bucket: str) -> None:
    store = S3Store(s3)
    first = store.put_if(bucket, "a/x.json", b"1", "application/json", {"sha256": "x"}, if_none_match=True)
    assert first is not None and store.get(bucket, "a/x.json").info.etag == first.etag
    assert store.put_if(bucket, "a/x.json", b"2", "application/json", if_none_match=True) is None
    assert store.put_if(bucket, "a/x.json", b"2", "application/json", if_match="0" * 32) is None
    second = store.put_if(bucket, "a/x.json", b"2", "application/json", if_match=first.etag)
    assert second is not None and store.get(bucket, "a/x.json").data == b"2"
    assert store.put_if(bucket, "a/x.json", b"3", "application/json", if_match=first.etag) is None
    assert store._conditional  # the server took the conditions: no check-then-write fallback
    store.put(bucket, "a/y/z.bin", b"z", "application/octet-stream")
    store.put(bucket, "ab.bin", b"q", "application/octet-stream")
    assert list(store.list_keys(bucket, "a/")) == ["a/x.json", "a/y/z.bin"]
    assert list(store.list_keys(bucket, "a")) == ["a/x.json", "a/y/z.bin", "ab.bin"]
    store.delete(bucket, "a/x.json")
    store.delete(bucket, "a/x.json")
    assert store.head(bucket, "a/x.json") is None


def test_a_missing_bucket_is_told_apart(s3: Any, bucket: str) -> None:
    store = S3Store(s3)
    with pytest.raises(SourceMissingError) as missing_key:
        store.get(bucket, "nope")
    assert not isinstance(missing_key.value, BucketMissingError)
    with pytest.raises(BucketMissingError):
        store.get("no-such-bucket-here", "nope")
    with pytest.raises(StorageError) as listing:
        list(store.list_keys("no-such-bucket-here", "x/"))
    assert listing.value.bucket_missing
