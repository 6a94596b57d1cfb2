"""Object notifications in the formats real deployments send, parsed into plain records.

* AWS S3 event notifications: ``{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket":
  {"name"}, "object": {"key" (URL-encoded), "eTag", "versionId", "size", "sequencer"}}}]}``;
  ``{"Event": "s3:TestEvent"}`` when a notification is set up.
* MinIO webhook / queue targets: ``{"EventName": "s3:ObjectCreated:Put", "Key": "bucket/key",
  "Records": [...]}``, whose records are S3-like but name events ``s3:ObjectCreated:Put``.
* SNS: an envelope whose ``Message`` is one of the above as a JSON string
  (:mod:`producer.intake.sns` verifies it first).
* SQS: a message body that is one of the above, or an SNS envelope (S3 -> SNS -> SQS without
  raw message delivery).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


class NotificationError(ValueError):
    """A body that is not an object notification in any known format (permanent)."""


class TooManyRecords(NotificationError):
    """More records in one delivery than ``PLATEVEIL_MAX_EVENT_RECORDS`` (permanent: 413)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} records in one notification; at most {limit}")
        self.count = count
        self.limit = limit


@dataclass(frozen=True)
class ObjectRecord:
    event_name: str  # normalised: "ObjectCreated:Put", never "s3:ObjectCreated:Put"
    bucket: str
    key: str  # decoded
    etag: str = ""
    version_id: str = ""
    size: int | None = None

    @property
    def created(self) -> bool:
        return self.event_name.startswith("ObjectCreated")


def normalise_event_name(name: str) -> str:
    return name[3:] if name.startswith("s3:") else name


def parse_record(record: Any) -> ObjectRecord:
    try:
        obj = record["s3"]["object"]
        bucket = record["s3"]["bucket"]["name"]
        key = obj["key"]
        if not isinstance(bucket, str) or not isinstance(key, str) or not isinstance(obj, dict):
            raise TypeError
        key = unquote_plus(key)
    except (KeyError, TypeError, IndexError):
        raise NotificationError("each record needs s3.bucket.name and s3.object.key") from None
    size = obj.get("size")
    return ObjectRecord(event_name=normalise_event_name(str(record.get("eventName", ""))), bucket=bucket, key=key,
                        etag=str(obj.get("eTag") or obj.get("etag") or "").strip('"'),
                        version_id=str(obj.get("versionId") or ""),
                        size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None)


def is_test_event(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("Event") == "s3:TestEvent"


def parse_notification(doc: Any, max_records: int | None = None) -> list[ObjectRecord]:
    """Records of an S3 or MinIO notification document ([] for a test event). More than
    ``max_records`` records: :class:`TooManyRecords`, before any record is parsed."""
    if is_test_event(doc):
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("Records"), list):
        raise NotificationError("expected an S3 event notification with Records")
    records = doc["Records"]
    if max_records is not None and len(records) > max_records:
        raise TooManyRecords(len(records), max_records)
    parsed = []
    for n, record in enumerate(records):
        try:
            parsed.append(parse_record(record))
        except NotificationError as exc:
            raise NotificationError(f"record {n}: {exc}") from None
    return parsed


def parse_body(body: str | bytes, max_records: int | None = None, _depth: int = 0) -> list[ObjectRecord]:
    """An SQS message body / any delivery: S3 or MinIO notification, or an SNS envelope of one."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise NotificationError(f"not JSON: {str(exc)[:200]}") from None
    if (isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str)
            and _depth == 0):
        return parse_body(doc["Message"], max_records, _depth + 1)
    return parse_notification(doc, max_records)
