from __future__ import annotations

import pytest

from plateveil.errors import SourceMissingError, StorageError
from plateveil.storage.local import LocalStore


def test_put_get_head(tmp_path):
    store = LocalStore(tmp_path)
    store.ensure_bucket("b")
    info = store.put("b", "x/y.jpg", b"data", "image/jpeg", {"model-version": "m@1"})
    assert store.head("b", "x/y.jpg") == info
    got = store.get("b", "x/y.jpg")
    assert got.data == b"data" and got.info.metadata == {"model-version": "m@1"}
    store.check(["b"])


def test_missing_objects_and_buckets(tmp_path):
    store = LocalStore(tmp_path)
    assert store.head("b", "nope") is None
    with pytest.raises(SourceMissingError):
        store.get("b", "nope")
    with pytest.raises(StorageError):
        store.put("b", "k", b"", "image/jpeg")
    with pytest.raises(StorageError):
        store.check(["b"])


def test_keys_cannot_escape_the_bucket(tmp_path):
    store = LocalStore(tmp_path)
    store.ensure_bucket("b")
    with pytest.raises(SourceMissingError):
        store.head("b", "../../etc/passwd")


def test_conditional_writes_list_and_delete(tmp_path):
    store = LocalStore(tmp_path)
    store.ensure_bucket("b")
    first = store.put_if("b", "a/x.json", b"1", "application/json", if_none_match=True)
    assert first is not None and store.get("b", "a/x.json").data == b"1"
    assert store.put_if("b", "a/x.json", b"2", "application/json", if_none_match=True) is None  # exists
    assert store.put_if("b", "a/x.json", b"2", "application/json", if_match="not-its-etag") is None
    second = store.put_if("b", "a/x.json", b"2", "application/json", if_match=first.etag)
    assert second is not None and store.get("b", "a/x.json").data == b"2"
    assert store.put_if("b", "a/x.json", b"3", "application/json", if_match=first.etag) is None  # stale etag
    assert store.put_if("b", "a/new.json", b"n", "application/json", if_match=first.etag) is None  # absent
    with pytest.raises(ValueError, match="exactly one condition"):
        store.put_if("b", "a/x.json", b"4", "application/json")
    store.put("b", "a/y/z.bin", b"z", "application/octet-stream")
    store.put("b", "ab.bin", b"q", "application/octet-stream")
    assert list(store.list_keys("b", "a/")) == ["a/x.json", "a/y/z.bin"]  # no .meta.json, sorted
    assert list(store.list_keys("b", "a")) == ["a/x.json", "a/y/z.bin", "ab.bin"]
    assert list(store.list_keys("b")) == ["a/x.json", "a/y/z.bin", "ab.bin"]
    assert list(store.list_keys("b", "nothing/")) == []
    store.delete("b", "a/x.json")
    store.delete("b", "a/x.json")  # absent: nothing happens
    assert store.head("b", "a/x.json") is None and list(store.list_keys("b", "a/")) == ["a/y/z.bin"]


def test_a_missing_bucket_is_named_as_such(tmp_path):
    from plateveil.errors import BucketMissingError

    store = LocalStore(tmp_path)
    with pytest.raises(BucketMissingError):
        store.get("nobucket", "k")
    with pytest.raises(StorageError) as info:
        store.put_if("nobucket", "k", b"", "image/jpeg", if_none_match=True)
    assert info.value.bucket_missing
    with pytest.raises(StorageError):
        list(store.list_keys("nobucket"))
