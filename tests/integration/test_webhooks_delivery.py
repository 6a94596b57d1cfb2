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
