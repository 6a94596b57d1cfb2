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
