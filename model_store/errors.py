"""The model errors: one family under plateveil's error tree (:mod:`plateveil.errors`)::

    PlateveilError
     +-- PermanentError
          +-- ModelError                   a model that cannot be served (the job fails with this reason)
               +-- ModelLoadError          the bundle is missing, incomplete or does not load
               |    +-- ModelConfigError   model.json missing, not JSON, or not the schema (model_store.bundle)
               |    +-- SmokeCheckError    it loads but misbehaves on the golden photos (model_store.golden)
               +-- RegistryError           the S3 model registry refuses (model_store.registry)
                    +-- VersionNotFoundError   no manifest for that version
                    +-- VersionConflictError   the version exists with different bytes
                    +-- AliasError             unknown alias, nothing to roll back to, lost update race
                    +-- ModelIntegrityError    downloaded bytes differ from the manifest (model_store.cache)

A model error is permanent: trying the same job again with the same bundle cannot succeed, so a
job that meets one ends ``failed`` with the error as its reason (not "internal error"). S3 hiccups
while fetching a model are :class:`~plateveil.errors.StorageError` (retryable), as everywhere.
No deep-learning framework is imported here.
"""

from __future__ import annotations

from plateveil.errors import PermanentError


class ModelError(PermanentError):
    """Base of every model error."""


class ModelLoadError(ModelError):
    """The bundle is missing, incomplete or does not load."""


class ModelConfigError(ModelLoadError):
    """The bundle's model.json is missing, not JSON, or does not match the schema."""


class SmokeCheckError(ModelLoadError):
    """A model that loaded but misbehaves on the golden photos."""


class RegistryError(ModelError):
    """Base of the registry's errors."""


class VersionNotFoundError(RegistryError):
    pass


class VersionConflictError(RegistryError):
    pass


class AliasError(RegistryError):
    pass


class ModelIntegrityError(RegistryError):
    """The downloaded bytes of a version differ from its manifest."""


__all__ = ["AliasError", "ModelConfigError", "ModelError", "ModelIntegrityError", "ModelLoadError", "RegistryError",
           "SmokeCheckError", "VersionConflictError", "VersionNotFoundError"]
