"""Real-format SNS and SQS notifications each make exactly one job per object version.

SNS: the upload service (built in-process on the stack's Redis and S3, with SNS intake on) takes
messages signed with a certificate served by a local HTTP server, as SNS's are; it confirms a
subscription by visiting the SubscribeURL (an allowed one only). SQS: ``plateveil events consume``
reads moto's SQS (moto_server serves SQS on the S3 endpoint), deletes what it handled and leaves
what it cannot for the queue's redrive policy."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from plateveil.jobs import JobStore
from plateveil.settings import load_settings
from plateveil_ops.stack import ORIGINALS_BUCKET, S3_KEY_ID, S3_REGION, S3_SECRET
from producer.app import create_app
from producer.intake.sns import string_to_sign
from producer.settings import ProducerSettings

pytestmark = pytest.mark.integration

TOPIC = "arn:aws:sns:us-east-1:123456789012:plateveil-uploads"
LOCAL_URL = r"^http://127\.0\.0\.1:\d+/"


class SnsFake:
    """What SNS provides around a delivery: a signing key, its certificate at a URL, a SubscribeURL."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=1)).sign(self.key, hashes.SHA256()))
        self.pem = cert.public_bytes(serialization.Encoding.PEM)
        self.confirmations: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.endswith(".pem"):
                    body = outer.pem
                else:
                    outer.confirmations.append(self.path)
                    body = b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, msg: dict[str, Any], version: str = "1") -> dict[str, Any]:
        msg = msg | {"SignatureVersion": version, "SigningCertURL": f"{self.base}/SimpleNotificationService-x.pem"}
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(string_to_sign(msg), padding.PKCS1v15(), algorithm)
        return msg | {"Signature": base64.b64encode(signature).decode()}

    def notification(self, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
        return self.sign({"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC,
                          "Subject": "Amazon S3 Notification", "Message": json.dumps(message),
                          "Timestamp": "2026-01-01T00:00:00.000Z"}, version)


def s3_event(bucket: str, key: str, etag: str, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                         "eventTime": "2026-01-01T00:00:00.000Z", "eventName": name,
                         "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
                                "object": {"key": key, "size": 1, "eTag": etag, "sequencer": "0A"}}}]}


@pytest.fixture(scope="module")
def sns_fake() -> Iterator[SnsFake]:
    fake = SnsFake()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def sns_api(stack) -> Iterator[TestClient]:
    settings = load_settings(ProducerSettings).model_copy(update={
        "sns_topic_arns": (TOPIC,), "sns_cert_url_pattern": LOCAL_URL, "sns_subscribe_url_pattern": LOCAL_URL})
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        with TestClient(create_app(settings)) as client:
            yield client
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def _put_photo(s3, key: str, car_jpeg: bytes) -> str:
    return s3.put_object(Bucket=ORIGINALS_BUCKET, Key=key, Body=car_jpeg, ContentType="image/jpeg")["ETag"].strip('"')


def _wait_done(stack, job_id: str) -> None:
    jobs = JobStore.from_url(stack.redis_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = jobs.get(job_id)
        if record is not None and record.status.finished:
            assert record.status.value == "done", record
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished")


def test_sns_subscription_is_confirmed_only_at_an_allowed_url(sns_api, sns_fake):
    confirm = {"Type": "SubscriptionConfirmation", "MessageId": "c1", "TopicArn": TOPIC, "Token": "tok",
               "Message": "You have chosen to subscribe", "Timestamp": "2026-01-01T00:00:00.000Z",
               "SubscribeURL": f"{sns_fake.base}/?Action=ConfirmSubscription&Token=tok"}
    resp = sns_api.post("/v1/events/sns", content=json.dumps(sns_fake.sign(confirm)),
                        headers={"Content-Type": "text/plain; charset=UTF-8",
                                 "x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert resp.status_code == 200, resp.text
    assert sns_fake.confirmations == ["/?Action=ConfirmSubscription&Token=tok"]
    elsewhere = sns_fake.sign(confirm | {"SubscribeURL": "http://169.254.169.254/latest/meta-data/"})
    assert sns_api.post("/v1/events/sns", content=json.dumps(elsewhere)).status_code == 403
    assert len(sns_fake.confirmations) == 1


def test_sns_notification_makes_one_job_however_often_delivered(stack, s3, sns_api, sns_fake, car_jpeg):
    etag = _put_photo(s3, "sns/car+1.jpg", car_jpeg)
    event = s3_event(ORIGINALS_BUCKET, "sns/car%2B1.jpg", etag)
    first = sns_api.post("/v1/events/sns", content=json.dumps(sns_fake.notification(event)))
    assert first.status_code == 200, first.text
    (accepted,) = first.json()["accepted"]
    assert accepted["source_key"] == "sns/car+1.jpg"
    again = sns_api.post("/v1/events/sns", content=json.dumps(sns_fake.notification(event, version="2")))
    assert again.status_code == 200 and again.json()["accepted"] == []
    assert again.json()["duplicates"][0]["reason"] == f"duplicate delivery of job {accepted['job_id']}"
    _wait_done(stack, accepted["job_id"])


def test_sns_refuses_bad_signatures_foreign_topics_and_cert_urls(sns_api, sns_fake):
    good = sns_fake.notification(s3_event(ORIGINALS_BUCKET, "sns/x.jpg", "e"))
    tampered = good | {"Message": good["Message"].replace("sns/x.jpg", "sns/y.jpg")}
    assert sns_api.post("/v1/events/sns", content=json.dumps(tampered)).status_code == 403
    foreign = sns_fake.sign({k: v for k, v in good.items() if k != "Signature"} | {"TopicArn": "arn:aws:sns:x:1:evil"})
    assert sns_api.post("/v1/events/sns", content=json.dumps(foreign)).status_code == 403
    elsewhere = good | {"SigningCertURL": "https://evil.example/cert.pem"}
    resp = sns_api.post("/v1/events/sns", content=json.dumps(elsewhere))
    assert resp.status_code == 403 and "not an allowed" in resp.json()["detail"]
    assert sns_api.post("/v1/events/sns", content=b"{not json").status_code == 400


def test_sns_intake_is_off_without_topics(stack, client):
    assert client.http.post("/v1/events/sns", content=b"{}").status_code == 404


def test_minio_notification_format_makes_one_job(stack, s3, client, car_jpeg):
    etag = _put_photo(s3, "minio/a car.jpg", car_jpeg)
    record = s3_event(ORIGINALS_BUCKET, "minio/a+car.jpg", f'"{etag}"', name="s3:ObjectCreated:Put")["Records"][0]
    doc = {"EventName": "s3:ObjectCreated:Put", "Key": f"{ORIGINALS_BUCKET}/minio/a car.jpg", "Records": [record]}
    first = client.http.post("/v1/events/minio", json=doc)
    assert first.status_code == 202, first.text
    (accepted,) = first.json()["accepted"]
    assert client.http.post("/v1/events/minio", json=doc).json()["accepted"] == []
    assert client.http.post("/v1/events/minio", json=doc, headers={"Authorization": "Bearer no"}).status_code == 401
    _wait_done(stack, accepted["job_id"])


def test_sqs_consumer_makes_one_job_per_object_version_and_leaves_garbage_for_redrive(stack, s3, car_jpeg):
    import boto3

    sqs = boto3.session.Session().client("sqs", endpoint_url=stack.s3_endpoint_url, region_name=S3_REGION,
                                         aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)
    dlq_url = sqs.create_queue(QueueName="plateveil-intake-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="plateveil-intake", Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})})["QueueUrl"]
    etag_a = _put_photo(s3, "sqs/a.jpg", car_jpeg)
    etag_b = _put_photo(s3, "sqs/b.jpg", car_jpeg)
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="sqs/notes.txt", Body=b"hello", ContentType="text/plain")
    bodies = [
        json.dumps(s3_event(ORIGINALS_BUCKET, "sqs/a.jpg", etag_a)),
        json.dumps(s3_event(ORIGINALS_BUCKET, "sqs/a.jpg", etag_a)),  # the same delivery twice
        json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": TOPIC,  # S3 -> SNS -> SQS
                    "Message": json.dumps(s3_event(ORIGINALS_BUCKET, "sqs/b.jpg", etag_b))}),
        json.dumps(s3_event(ORIGINALS_BUCKET, "sqs/notes.txt", "x")),  # filtered out by suffix
        "this is not a notification",
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    env = os.environ | {"PLATEVEIL_SQS_ENDPOINT_URL": stack.s3_endpoint_url, "PLATEVEIL_SQS_REGION": S3_REGION,
                        "AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                        "PLATEVEIL_SQS_WAIT_TIME_S": "1", "PLATEVEIL_EVENTS_SUFFIXES": ".jpg,.jpeg,.png"}
    jobs: list[str] = []
    received = 0
    for _ in range(5):  # one receive may not return every message
        out = subprocess.run([sys.executable, "-m", "plateveil_ops.cli", "events", "consume", "--sqs", url, "--once"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        summary = out.stdout.splitlines()[0]
        received += int(summary.split()[2])
        jobs += [w for w in summary.split(";")[1].split()[2:] if len(w) == 32]
        if received >= len(bodies):
            break
    assert received == len(bodies), out.stdout
    assert len(jobs) == 2, out.stdout  # a.jpg once (despite two deliveries), b.jpg once
    for job_id in jobs:
        _wait_done(stack, job_id)
    time.sleep(1.2)  # past the visibility timeout: only the garbage message is still in the queue
    sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)  # its 2nd receive > maxReceiveCount: redriven
    moved = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages", [])
    assert [m["Body"] for m in moved] == ["this is not a notification"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                   "ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_sns_jobs_belong_to_the_sns_identity(stack, s3, sns_fake, car_jpeg, client):
    """An SNS delivery's job is owned by PLATEVEIL_SNS_KEY_ID: by default nobody's API key can read
    it; naming an API key's id there gives that key its jobs (and applies its sources and share)."""
    from tests.conftest import LOCAL_KEY_ID

    for identity in ("sns", LOCAL_KEY_ID):
        settings = load_settings(ProducerSettings).model_copy(update={
            "sns_topic_arns": (TOPIC,), "sns_cert_url_pattern": LOCAL_URL, "sns_subscribe_url_pattern": LOCAL_URL,
            "sns_key_id": identity})
        key = f"sns/owned-{uuid.uuid4().hex[:8]}.jpg"
        etag = _put_photo(s3, key, car_jpeg)
        root = logging.getLogger()
        saved = list(root.handlers), root.level
        try:
            with TestClient(create_app(settings)) as api:
                resp = api.post("/v1/events/sns", content=json.dumps(sns_fake.notification(
                    s3_event(ORIGINALS_BUCKET, key, etag))))
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
        (accepted,) = resp.json()["accepted"]
        record = JobStore.from_url(stack.redis_url).get(accepted["job_id"])
        assert record is not None and record.key_id == identity
        seen = client.http.get(f"/v1/jobs/{accepted['job_id']}")
        assert seen.status_code == (200 if identity == LOCAL_KEY_ID else 404), seen.text
        _wait_done(stack, accepted["job_id"])
