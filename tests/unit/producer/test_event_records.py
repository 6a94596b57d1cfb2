"""Object notifications in the formats S3, MinIO, SNS and SQS deliver, parsed into records."""

from __future__ import annotations

import json

import pytest

from producer.intake.intake import claim_key, key_matches
from producer.intake.records import (
    NotificationError,
    ObjectRecord,
    TooManyRecords,
    parse_body,
    parse_notification,
)
from producer.intake.sns import SnsError, string_to_sign

S3_EVENT = {"Records": [{
    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1", "eventName": "ObjectCreated:Put",
    "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
           "object": {"key": "cars/my+car%2B1.jpg", "size": 1024, "eTag": "0123abcd", "versionId": "v7",
                      "sequencer": "0055AED6DCD90281E5"}}}]}

MINIO_EVENT = {"EventName": "s3:ObjectCreated:Put", "Key": "uploads/cars/a b.png", "Records": [{
    "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventName": "s3:ObjectCreated:Put",
    "userIdentity": {"principalId": "minio"},
    "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config", "bucket": {"name": "uploads"},
           "object": {"key": "cars%2Fa+b.png", "size": 2048, "eTag": "\"9f1e\"", "contentType": "image/png",
                      "sequencer": "17A1B"}}}]}


def test_aws_s3_record():
    (rec,) = parse_notification(S3_EVENT)
    assert rec == ObjectRecord("ObjectCreated:Put", "uploads", "cars/my car+1.jpg", "0123abcd", "v7", 1024)
    assert rec.created


def test_minio_record_has_its_s3_prefix_removed_and_key_decoded():
    (rec,) = parse_notification(MINIO_EVENT)
    assert rec.event_name == "ObjectCreated:Put" and rec.created
    assert (rec.bucket, rec.key, rec.etag, rec.size) == ("uploads", "cars/a b.png", "9f1e", 2048)


def test_sqs_bodies_raw_or_in_an_sns_envelope():
    raw = parse_body(json.dumps(S3_EVENT))
    enveloped = parse_body(json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:x",
                                       "Message": json.dumps(S3_EVENT)}))
    assert raw == enveloped and len(raw) == 1


def test_test_events_and_removals():
    assert parse_body(json.dumps({"Event": "s3:TestEvent", "Bucket": "uploads"})) == []
    removed = json.loads(json.dumps(S3_EVENT))
    removed["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert not parse_notification(removed)[0].created


@pytest.mark.parametrize("body", ["not json", "[]", json.dumps({"Records": "x"}),
                                  json.dumps({"Records": [{"s3": {"bucket": {}}}]})])
def test_bodies_that_are_no_notification(body):
    with pytest.raises(NotificationError):
        parse_body(body)


def test_filters():
    assert key_matches("cars/a.jpg", (), ())
    assert key_matches("cars/a.JPG", ("cars/",), (".jpg", ".png"))
    assert not key_matches("trucks/a.jpg", ("cars/",), ())
    assert not key_matches("cars/a.gif", (), (".jpg",))


def test_claims_differ_by_version():
    assert claim_key("b", "k", "v1") != claim_key("b", "k", "v2") != claim_key("b", "k2", "v1")
    assert claim_key("b", "k", "v1") == claim_key("b", "k", "v1")


def test_sns_string_to_sign_follows_the_field_order():
    msg = {"Type": "Notification", "MessageId": "id", "TopicArn": "arn", "Message": "m",
           "Timestamp": "2024-01-01T00:00:00.000Z", "SignatureVersion": "1"}
    assert string_to_sign(msg) == b"Message\nm\nMessageId\nid\nTimestamp\n2024-01-01T00:00:00.000Z\nTopicArn\narn\nType\nNotification\n"
    assert b"Subject\ns\n" in string_to_sign(msg | {"Subject": "s"})
    confirm = {"Type": "SubscriptionConfirmation", "MessageId": "id", "TopicArn": "arn", "Message": "m",
               "Timestamp": "t", "Token": "tok", "SubscribeURL": "https://x"}
    assert string_to_sign(confirm).startswith(b"Message\nm\nMessageId\nid\nSubscribeURL\nhttps://x\nTimestamp")
    with pytest.raises(SnsError):
        string_to_sign({k: v for k, v in confirm.items() if k != "Token"})


def test_the_record_cap_is_checked_before_any_record_is_parsed():
    doc = {"Records": ["not a record"] * 101}
    with pytest.raises(TooManyRecords, match="101 records in one notification; at most 100"):
        parse_notification(doc, max_records=100)
    with pytest.raises(TooManyRecords):  # in an SNS envelope too (SQS without raw delivery)
        parse_body(json.dumps({"Type": "Notification", "Message": json.dumps(doc)}), max_records=100)
    assert len(parse_notification({"Records": S3_EVENT["Records"] * 100}, max_records=100)) == 100


@pytest.mark.parametrize("bad", ["not a record", {"s3": {}}, {"s3": {"bucket": {"name": 7}, "object": {"key": "k"}}},
                                 {"s3": {"bucket": {"name": "b"}, "object": {"key": ["k"]}}},
                                 {"s3": {"bucket": {"name": "b"}, "object": "k"}}])
def test_a_malformed_record_is_named_by_its_index(bad):
    with pytest.raises(NotificationError, match=r"^record 1: each record needs"):
        parse_notification({"Records": [S3_EVENT["Records"][0], bad]})


def test_an_envelope_is_opened_once():
    inner = json.dumps({"Type": "Notification", "Message": json.dumps(S3_EVENT)})
    with pytest.raises(NotificationError):
        parse_body(json.dumps({"Type": "Notification", "Message": inner}))
