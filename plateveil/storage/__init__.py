"""Object stores: the base interface (:mod:`.base`), S3 (:mod:`.s3`, also MinIO and moto) and a
local directory (:mod:`.local`, for development). ``get_store(settings)`` picks one by name and
fails loudly with the valid names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plateveil.storage.base import ObjectInfo, ObjectStore, StoredObject

if TYPE_CHECKING:
    from plateveil.settings import CommonSettings

STORES = ("s3", "local")


def get_store(settings: CommonSettings, storage: str | None = None) -> ObjectStore:
    """The store named ``storage`` (default: ``settings.storage``), connected as ``settings`` say."""
    storage = storage or settings.storage
    if storage == "s3":
        from plateveil.storage.s3 import S3Store

        return S3Store.from_settings(settings)
    if storage == "local":
        from plateveil.storage.local import LocalStore

        return LocalStore(settings.local_storage_dir)
    raise ValueError(f"unknown storage {storage!r}; valid stores: {', '.join(STORES)}")


__all__ = ["STORES", "ObjectInfo", "ObjectStore", "StoredObject", "get_store"]
