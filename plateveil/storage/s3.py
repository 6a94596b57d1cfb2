"""S3 (and anything speaking it: MinIO, moto_server) through boto3.

Timeouts are short and explicit; botocore's own retries (standard mode) absorb
single hiccups (``PLATEVEIL_S3_MAX_ATTEMPTS``), and whatever still fails is raised as a retryable StorageError.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from plateveil.errors import BucketMissingError, SourceMissingError, StorageError
from plateveil.storage.base import ObjectInfo, ObjectStore, StoredObject

if TYPE_CHECKING:
    from plateveil.settings import CommonSettings

logger = logging.getLogger(__name__)

_MISSING_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_UNSUPPORTED_CODES = {"NotImplemented", "InvalidArgument"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class S3Store(ObjectStore):
    name = "s3"

    def __init__(self, client: Any) -> None:
        self.client = client
        self._conditional = True  # False once the server (or boto3) refused a conditional write

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> S3Store:
        config = Config(connect_timeout=settings.s3_connect_timeout_s, read_timeout=settings.s3_read_timeout_s,
                        # total_max_attempts counts the first call; botocore's "max_attempts" would count
                        # retries only (PLATEVEIL_S3_MAX_ATTEMPTS=1 made 2 calls: measured in issue 36)
                        retries={"mode": "standard", "total_max_attempts": settings.s3_max_attempts},
                        s3={"addressing_style": "path"} if settings.s3_endpoint_url else None)
        client = boto3.session.Session().client(
            "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id, aws_secret_access_key=settings.s3_secret_access_key,
            config=config)
        return cls(client)

    def _fail(self, action: str, bucket: str, key: str, exc: Exception) -> StorageError:
        missing = isinstance(exc, ClientError) and _code(exc) == "NoSuchBucket"
        return StorageError(f"S3 {action} s3://{bucket}/{key} failed: {exc}", bucket_missing=missing)

    def put(self, bucket: str, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        try:
            resp = self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type,
                                          Metadata=dict(metadata or {}))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("put", bucket, key, exc) from exc
        return ObjectInfo(bucket, key, len(data), content_type, str(resp.get("ETag", "")).strip('"'),
                          dict(metadata or {}))

    def put_if(self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None,
               *, if_none_match: bool = False, if_match: str | None = None) -> ObjectInfo | None:
        """``If-None-Match: *`` / ``If-Match: <etag>`` on the PUT. On a server that rejects conditional
        writes, check-then-write (a concurrent writer can race it), with one warning."""
        self._one_condition(if_none_match, if_match)
        if self._conditional:
            condition = {"IfNoneMatch": "*"} if if_none_match else {"IfMatch": f'"{if_match}"'}
            try:
                resp = self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type,
                                              Metadata=dict(metadata or {}), **condition)
            except ClientError as exc:
                if _code(exc) in _PRECONDITION_CODES or _status(exc) in {409, 412}:
                    return None
                if not (_code(exc) in _UNSUPPORTED_CODES or _status(exc) == 501):
                    raise self._fail("put", bucket, key, exc) from exc
                self._no_conditional_writes(exc)
            except ParamValidationError as exc:  # a boto3 too old for IfNoneMatch / IfMatch
                self._no_conditional_writes(exc)
            except BotoCoreError as exc:
                raise self._fail("put", bucket, key, exc) from exc
            else:
                return ObjectInfo(bucket, key, len(data), content_type, str(resp.get("ETag", "")).strip('"'),
                                  dict(metadata or {}))
        current = self.head(bucket, key)
        if (current is not None) if if_none_match else (current is None or current.etag != if_match):
            return None
        return self.put(bucket, key, data, content_type, metadata)

    def _no_conditional_writes(self, exc: Exception) -> None:
        logger.warning("the S3 server (or boto3) rejects conditional writes (%s); falling back to "
                       "check-then-write, which a concurrent writer can race", exc)
        self._conditional = False

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield str(item["Key"])
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("list", bucket, prefix, exc) from exc

    def delete(self, bucket: str, key: str) -> None:
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", bucket, key, exc) from exc

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES or _status(exc) == 404:
                return None
            raise self._fail("head", bucket, key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head", bucket, key, exc) from exc
        return ObjectInfo(bucket, key, int(resp.get("ContentLength", 0)),
                          str(resp.get("ContentType", "application/octet-stream")),
                          str(resp.get("ETag", "")).strip('"'), dict(resp.get("Metadata", {})),
                          version_id=_version(resp))

    def get(self, bucket: str, key: str) -> StoredObject:
        try:
            resp = self.client.get_object(Bucket=bucket, Key=key)
            data = resp["Body"].read()
        except ClientError as exc:
            if _code(exc) == "NoSuchBucket":
                raise BucketMissingError(f"s3://{bucket}/{key} does not exist: no bucket {bucket}") from None
            if _code(exc) in _MISSING_CODES or _status(exc) == 404:
                raise SourceMissingError(f"s3://{bucket}/{key} does not exist") from None
            raise self._fail("get", bucket, key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("get", bucket, key, exc) from exc
        info = ObjectInfo(bucket, key, len(data), str(resp.get("ContentType", "application/octet-stream")),
                          str(resp.get("ETag", "")).strip('"'), dict(resp.get("Metadata", {})))
        return StoredObject(info, data)

    def ensure_bucket(self, bucket: str) -> None:
        try:
            self.client.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if _status(exc) != 404 and _code(exc) not in _MISSING_CODES:
                raise self._fail("head-bucket", bucket, "", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head-bucket", bucket, "", exc) from exc
        try:
            region = self.client.meta.region_name
            if region and region != "us-east-1":
                self.client.create_bucket(Bucket=bucket,
                                          CreateBucketConfiguration={"LocationConstraint": region})
            else:
                self.client.create_bucket(Bucket=bucket)
            self.client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("create-bucket", bucket, "", exc) from exc
        logger.info("created bucket %s", bucket)

    def check(self, buckets: list[str]) -> None:
        for bucket in buckets:
            try:
                self.client.head_bucket(Bucket=bucket)
            except (BotoCoreError, ClientError) as exc:
                raise self._fail("head-bucket", bucket, "", exc) from exc


def _version(resp: dict[str, Any]) -> str:
    """The object's VersionId; "" when the bucket is not versioned (S3 then says nothing, or "null")."""
    version = str(resp.get("VersionId") or "")
    return "" if version == "null" else version
