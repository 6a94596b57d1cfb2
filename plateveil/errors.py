"""The exception tree. Permanent errors end a job as ``failed`` with their message as the reason;
retryable ones are retried by the worker with backoff::

    PlateveilError
     +-- PermanentError            bad input: never retried
     |    +-- BadImageError        bytes that are not a decodable image, or one too large
     |    +-- UnknownStyleError    a concealment style that does not exist
     |    +-- SourceMissingError   the S3 object named by a job does not exist
     |         +-- BucketMissingError   ...because its bucket does not exist
     +-- RetryableError            infrastructure hiccups: retried
          +-- StorageError         S3 unreachable / 5xx
          +-- BrokerError          Redis unreachable

The model errors (``ModelError``: a bundle that does not load, fails its smoke check, or that the
registry refuses) are permanent errors too; their family is in :mod:`model_store.errors`.
"""

from __future__ import annotations


class PlateveilError(Exception):
    """Base of every error plateveil raises on purpose."""


class PermanentError(PlateveilError):
    """The job cannot succeed however often it is tried."""


class BadImageError(PermanentError):
    pass


class UnknownStyleError(PermanentError):
    pass


class SourceMissingError(PermanentError):
    pass


class BucketMissingError(SourceMissingError):
    """The object's whole bucket does not exist: for a job, a missing source like any other; for a
    service's own bucket (the model registry's), a configuration error."""


class RetryableError(PlateveilError):
    """A later try may succeed."""


class StorageError(RetryableError):
    """``bucket_missing``: the store answered that the bucket itself does not exist."""

    def __init__(self, *args: object, bucket_missing: bool = False) -> None:
        super().__init__(*args)
        self.bucket_missing = bucket_missing


class BrokerError(RetryableError):
    pass
