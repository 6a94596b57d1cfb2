"""Webhooks end to end: a worker configured with PLATEVEIL_WEBHOOKS signs and retries its calls to
a local receiver, and records a delivery that never gets through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from plateveil.jobs import JobStore
from plateveil.schema import ConcealJob, JobRecord, iso_ms, new_job_id, utc_now
from plateveil.settings import load_settings
from plateveil_ops.stack import ORIGINALS_BUCKET, OUTPUT_BUCKET, free_port, stop_group, wait_until
from producer.services import make_sender
from producer.settings import ProducerSettings
from workers.webhook_contract import FAILED_KEY, SignatureError, read_failures, verify_signature

pytestmark = pytest.mark.integration

QUEUE = "plateveil.webhook-test"
SECRET_OK = "receiver-secret-0123456789"
SECRET_DEAD = "nobody-listens-0123456789"


class Receiver:
    """A local webhook receiver: answers 500 to the first call of each delivery, 200 after."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                delivery = self.headers["X-Plateveil-Delivery"]
                first = not any(c["delivery"] == delivery for c in outer.calls)
                outer.calls.append({"headers": dict(self.headers), "body": body, "delivery": delivery})
                self.send_response(500 if first else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def hook_worker(stack, receiver, tmp_path_factory) -> Iterator[Path]:
    """A second worker (solo pool) on its own queue, with webhooks for two key ids."""
    hooks = {"k-hookok000000": {"url": receiver.url, "secret": SECRET_OK},
             "k-hookdead0000": {"url": f"http://127.0.0.1:{free_port()}/gone", "secret": SECRET_DEAD}}
    env = os.environ | {"PLATEVEIL_QUEUE": QUEUE, "PLATEVEIL_WEBHOOKS": json.dumps(hooks),
                        "PLATEVEIL_WEBHOOK_BACKOFF_S": "0.1", "PLATEVEIL_WEBHOOK_MAX_ATTEMPTS": "3",
                        "PLATEVEIL_WEBHOOK_TIMEOUT_S": "2", "PLATEVEIL_METRICS_PORT": "0", "PYTHONUNBUFFERED": "1",
                        "PLATEVEIL_WEBHOOK_ALLOW_PRIVATE_URLS": "true",  # the receiver is on loopback
                        "PLATEVEIL_LOG_FORMAT": "json"}  # this worker also shows the JSON log lines
    log = tmp_path_factory.mktemp("hooks") / "worker.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "solo",
                                 "--without-gossip", "--without-mingle", "--without-heartbeat",
                                 "-n", f"hooks-{stack.ports['api']}@%h", "-Q", QUEUE],
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    try:
        wait_until(lambda: " ready." in log.read_text(errors="replace"), 90, "webhook worker", proc, log)
        yield log
    finally:
        stop_group(proc.pid, "workers.celery_app")
        proc.wait(timeout=10)


def _submit(stack, s3, key_id: str, car_jpeg: bytes) -> ConcealJob:
    settings = load_settings(ProducerSettings).model_copy(update={"queue": QUEUE})
    job_id, now = new_job_id(), utc_now()
    job = ConcealJob(job_id=job_id, source_bucket=ORIGINALS_BUCKET, source_key=f"hooks/{job_id}.jpg",
                     output_bucket=OUTPUT_BUCKET, output_key=f"concealed/hooks/{job_id}.jpg", style="blur",
                     accepted_at=iso_ms(now), key_id=key_id)
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key=job.source_key, Body=car_jpeg, ContentType="image/jpeg")
    JobStore.from_url(stack.redis_url).create(JobRecord.queued(job))
    sender = make_sender(settings)
    try:
        sender.send_task("plateveil.conceal_photo", args=[job.to_dict()], task_id=job.job_id, queue=QUEUE)
    finally:
        sender.close()
    return job


def test_signed_webhook_is_retried_until_the_receiver_takes_it(stack, s3, redis_client, receiver, hook_worker,
                                                               car_jpeg):
    job = _submit(stack, s3, "k-hookok000000", car_jpeg)
    wait_until(lambda: sum(c["body"] and json.loads(c["body"])["job_id"] == job.job_id for c in receiver.calls) >= 2,
               60, "two webhook calls")
    calls = [c for c in receiver.calls if json.loads(c["body"])["job_id"] == job.job_id]
    assert len(calls) == 2 and calls[0]["delivery"] == calls[1]["delivery"]  # a retry, same delivery id
    record = JobStore.from_url(stack.redis_url).get(job.job_id)
    assert record is not None and record.status.value == "done"
    for call in calls:
        headers = call["headers"]
        assert headers["X-Plateveil-Event"] == "job.done" and headers["X-Plateveil-Key-Id"] == "k-hookok000000"
        assert verify_signature(SECRET_OK, headers["X-Plateveil-Signature"], call["body"]) > 0
        with pytest.raises(SignatureError):
            verify_signature("another-secret-0123456789", headers["X-Plateveil-Signature"], call["body"])
        with pytest.raises(SignatureError):
            verify_signature(SECRET_OK, headers["X-Plateveil-Signature"], call["body"] + b" ")
    event = json.loads(calls[1]["body"])
    assert event["status"] == "done" and event["model"] == record.model
    assert event["plate_count"] == str(record.plate_count) and event["output_key"] == job.output_key


def test_a_webhook_that_never_gets_through_is_recorded(stack, s3, redis_client, hook_worker, car_jpeg):
    job = _submit(stack, s3, "k-hookdead0000", car_jpeg)

    def recorded() -> bool:
        return any(f["event"]["job_id"] == job.job_id for f in read_failures(redis_client, 50))

    wait_until(recorded, 60, "the failed webhook record")
    failure = next(f for f in read_failures(redis_client, 50) if f["event"]["job_id"] == job.job_id)
    assert failure["attempts"] == 3 and failure["key_id"] == "k-hookdead0000"
    assert "ConnectError" in failure["error"] and failure["url"].endswith("/gone")
    assert SECRET_DEAD not in json.dumps(failure)  # the record names the URL, never the secret
    assert redis_client.llen(FAILED_KEY) >= 1


def test_jobs_of_keys_without_a_webhook_send_none(stack, s3, receiver, hook_worker, car_jpeg):
    job = _submit(stack, s3, "k-nohook000000", car_jpeg)
    wait_until(lambda: JobStore.from_url(stack.redis_url).get(job.job_id).status.finished, 60, "the job")
    time.sleep(0.5)
    assert not any(json.loads(c["body"])["job_id"] == job.job_id for c in receiver.calls)


def test_the_worker_logs_json_lines_with_the_job_context(stack, s3, hook_worker, car_jpeg):
    job = _submit(stack, s3, "k-nohook000000", car_jpeg)
    wait_until(lambda: JobStore.from_url(stack.redis_url).get(job.job_id).status.finished, 60, "the job")

    def done_line() -> dict[str, Any] | None:
        for line in hook_worker.read_text(errors="replace").splitlines():
            if line.startswith("{") and f"job {job.job_id} done" in line:
                return json.loads(line)
        return None

    wait_until(lambda: done_line() is not None, 10, "the job's log line")
    line = done_line()
    assert line is not None
    assert line["level"] == "INFO" and line["logger"] == "workers.tasks"
    assert line["job_id"] == job.job_id and line["key_id"] == "k-nohook000000"
    assert "@" in line["model"] and isinstance(line["plate_count"], int)
    assert {"decode", "detect", "landmarks", "conceal", "encode", "total"} <= set(line["timings_ms"])
    lines = [ln for ln in hook_worker.read_text(errors="replace").splitlines() if ln.strip()]
    assert all(ln.startswith("{") for ln in lines[-20:]), lines[-20:]  # every line is JSON, Celery's too


def _queued_webhooks(broker: Any, queue: str) -> list[list[Any]]:
    """The deliver_webhook messages waiting in ``queue`` on the broker (kombu's Redis list), as their args."""
    import base64

    out = []
    for raw in broker.lrange(queue, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == "plateveil.deliver_webhook"
        out.append(json.loads(base64.b64decode(message["body"]))[0])
    return out


def test_the_run_that_ends_a_job_queues_its_webhook_with_the_record_it_ended(tasks, s3, car_jpeg):
    """No signal handler, no thread-local flag, no record read back: ``run_job`` and ``_fail`` hand the record
    they ended to the webhook queue themselves, once per job (a duplicate delivery queues nothing)."""
    import uuid

    import redis

    from plateveil.schema import CompletionEvent, JobStatus
    from workers.webhook_contract import parse_targets

    queue = f"plateveil.webhook-direct-{uuid.uuid4().hex[:8]}"  # no worker consumes it: the messages stay
    ctx = tasks.get_context()
    ctx.settings = ctx.settings.model_copy(update={"queue": queue, "webhooks": parse_targets(
        {"k-direct000000": {"url": "http://127.0.0.1:9/never-called", "secret": SECRET_OK}})})
    broker = redis.Redis.from_url(tasks.app.conf.broker_url)
    try:
        job = ConcealJob(job_id=new_job_id(), source_bucket=ORIGINALS_BUCKET, source_key="hooks/direct.jpg",
                         output_bucket=OUTPUT_BUCKET, output_key="concealed/hooks/direct.jpg", style="blur",
                         accepted_at=iso_ms(utc_now()), key_id="k-direct000000")
        s3.put_object(Bucket=ORIGINALS_BUCKET, Key=job.source_key, Body=car_jpeg, ContentType="image/jpeg")
        ctx.jobs.create(JobRecord.queued(job))
        record = tasks.run_job(job, ctx)
        assert record is not None and record.status is JobStatus.DONE
        [(key_id, fields, delivery_id)] = _queued_webhooks(broker, queue)
        assert key_id == "k-direct000000" and fields == CompletionEvent.of(record).to_fields()
        assert fields["status"] == "done" and fields["job_id"] == job.job_id and delivery_id
        events = [e for _, e in ctx.jobs.read_events("0", 100_000) if e.job_id == job.job_id]
        assert [e.to_fields() for e in events] == [fields]  # the webhook says what the completion stream says

        assert tasks.run_job(job, ctx) is not None  # the same message delivered again: nothing queued again
        assert len(_queued_webhooks(broker, queue)) == 1

        failing = ConcealJob(job_id=new_job_id(), source_bucket=ORIGINALS_BUCKET, source_key="hooks/missing.jpg",
                             output_bucket=OUTPUT_BUCKET, output_key="concealed/hooks/missing.jpg", style="blur",
                             accepted_at=iso_ms(utc_now()), key_id="k-direct000000")
        ctx.jobs.create(JobRecord.queued(failing))
        assert tasks.conceal_photo.apply(args=[failing.to_dict()]).get()["status"] == "failed"
        queued = _queued_webhooks(broker, queue)
        assert len(queued) == 2 and queued[0][1]["job_id"] == failing.job_id  # LPUSH: newest first
        assert queued[0][1]["status"] == "failed" and "does not exist" in queued[0][1]["error"]

        other = ConcealJob(job_id=new_job_id(), source_bucket=ORIGINALS_BUCKET, source_key="hooks/direct.jpg",
                           output_bucket=OUTPUT_BUCKET, output_key="concealed/hooks/other.jpg", style="blur",
                           accepted_at=iso_ms(utc_now()), key_id="k-nohook000000")
        ctx.jobs.create(JobRecord.queued(other))
        assert tasks.run_job(other, ctx).status is JobStatus.DONE
        assert len(_queued_webhooks(broker, queue)) == 2  # a key without a webhook queues none
    finally:
        broker.delete(queue)
        broker.close()
