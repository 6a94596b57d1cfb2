"""Who owns a job, and whose photos a key may read (issue 36).

* A job belongs to the key id that made it (``key_id`` of its record): the API key of the upload,
  ``POST /v1/jobs``, ``/v1/s3-events`` or ``/v1/events/minio`` request, or the configured intake
  identity of SNS deliveries and the SQS consumer (``PLATEVEIL_SNS_KEY_ID`` / ``PLATEVEIL_SQS_KEY_ID``,
  default ``sns`` / ``sqs``). Status and flag answer 404 to every other key, exactly as for an unknown
  job, so a job id (they are in every S3 key name) tells another key nothing. A record without a
  ``key_id`` (made before jobs had owners) belongs to nobody: 404 to every key.
* An upload is readable only by the key that uploaded it: objects of the originals bucket under the
  uploads prefix (``PLATEVEIL_ORIGINALS_PREFIX``) carry the uploader's key id in their
  ``api-key-id`` metadata (set at upload); ``POST /v1/jobs`` and object notifications naming another
  key's upload answer "not found", whatever ``PLATEVEIL_SOURCE_ALLOW`` says. The default sources are
  exactly that: every key may read its own uploads and nothing else.
* Concealed photos (the output bucket) are never a source.
* Reviewers are staff: the review pages show every job (one moderation team; see docs/operations.md).
"""

from __future__ import annotations

from plateveil.schema import JobRecord
from plateveil.storage.base import ObjectInfo
from producer.settings import ProducerSettings

UPLOADER_META = "api-key-id"  # x-amz-meta-api-key-id of an uploaded original (producer.routes.upload_photo)


def owns(record: JobRecord | None, key_id: str) -> bool:
    """Whether ``key_id`` owns the job of ``record`` (False for a missing record or one without owner)."""
    return record is not None and bool(record.key_id) and record.key_id == key_id


def is_upload(settings: ProducerSettings, bucket: str, key: str) -> bool:
    """An object where uploads are stored: the originals bucket, under the uploads prefix."""
    return bucket == settings.originals_bucket and key.startswith(settings.originals_prefix.rstrip("/") + "/")


def may_read_object(settings: ProducerSettings, key_id: str, info: ObjectInfo) -> bool:
    """After the HEAD: never the output bucket; an upload only for the key that uploaded it."""
    if info.bucket == settings.output_bucket:
        return False
    if is_upload(settings, info.bucket, info.key):
        return info.metadata.get(UPLOADER_META, "") == key_id != ""
    return True
