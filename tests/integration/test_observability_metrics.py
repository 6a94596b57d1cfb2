"""The metrics endpoints of the real stack answer and move while photos are processed."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from plateveil.metrics import queue_stats
from plateveil.settings import load_settings
from producer.services import make_sender
from producer.settings import ProducerSettings

pytestmark = pytest.mark.integration


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200, resp.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(resp.text) for s in fam.samples}


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _by_name(samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_api_and_worker_metrics_move_when_a_photo_is_processed(stack, client, car_jpeg):
    api_url, worker_url = stack.api_url + "/metrics", stack.worker_metrics_url
    api0, worker0 = _scrape(api_url), _scrape(worker_url)

    accepted = client.submit_photo(car_jpeg, style="pixelate")
    job = client.wait(accepted["job_id"], timeout=60)
    assert job["status"] == "done", job
    assert httpx.get(stack.api_url + "/v1/jobs/x", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # the worker records its metrics right after the status; give its exporter's next scrape a moment
    deadline = time.monotonic() + 10
    while True:
        worker1 = _scrape(worker_url)
        if _value(worker1, "plateveil_jobs_total", outcome="done", reason="") > \
                _value(worker0, "plateveil_jobs_total", outcome="done", reason="") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    api1 = _scrape(api_url)

    def moved(before, after, name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved(api0, api1, "plateveil_api_requests_total", method="POST", route="/v1/photos", status="202") == 1
    assert moved(api0, api1, "plateveil_api_upload_bytes_count") == 1
    assert moved(api0, api1, "plateveil_api_upload_bytes_sum") >= len(car_jpeg)
    assert moved(api0, api1, "plateveil_api_rejects_total", route="/v1/jobs/{job_id}", reason="unauthorized") == 1
    assert _value(api1, "plateveil_queue_up", queue="plateveil.conceal") == 1
    assert ("plateveil_queue_depth", (("queue", "plateveil.conceal"),)) in api1

    assert moved(worker0, worker1, "plateveil_jobs_total", outcome="done", reason="") == 1
    model = job["model"]
    assert moved(worker0, worker1, "plateveil_plates_per_photo_count", model=model) == 1
    assert moved(worker0, worker1, "plateveil_plates_per_photo_sum", model=model) == job["plate_count"]
    for stage in ("decode", "detect", "landmarks", "conceal", "encode", "total"):
        assert moved(worker0, worker1, "plateveil_stage_duration_seconds_count", stage=stage) == 1, stage
    assert moved(worker0, worker1, "plateveil_job_latency_seconds_count") == 1
    assert moved(worker0, worker1, "plateveil_job_processing_seconds_count") == 1
    name, _, version = model.partition("@")
    assert _value(worker1, "plateveil_model_info", slot="production", model=name, version=version) == 1


def test_a_failed_photo_is_counted_by_reason(stack, client, s3):
    from plateveil_ops.stack import ORIGINALS_BUCKET

    before = _scrape(stack.worker_metrics_url)
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="metrics/not-a-photo.jpg", Body=b"\xff\xd8\xff not really",
                  ContentType="image/jpeg")
    accepted = client.submit_s3_object(ORIGINALS_BUCKET, "metrics/not-a-photo.jpg")
    assert client.wait(accepted["job_id"], timeout=60)["status"] == "failed"
    deadline = time.monotonic() + 10
    while True:
        after = _scrape(stack.worker_metrics_url)
        got = _value(after, "plateveil_jobs_total", outcome="failed", reason="bad_image") - \
            _value(before, "plateveil_jobs_total", outcome="failed", reason="bad_image")
        if got or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == 1
    assert not _by_name(after, "plateveil_dead_letters_total").get((("reason", "bad_image"),))


def test_queue_stats_read_a_real_celery_message(stack):
    """Depth and oldest-job age from a message published the way the API publishes it."""
    settings = load_settings(ProducerSettings).model_copy(update={"queue": "plateveil.metrics-probe"})
    sender = make_sender(settings)
    redis_client = stack.redis_client()
    try:
        payload = {"job_id": "probe", "accepted_at": "2020-01-01T00:00:00.000Z"}
        sender.send_task("plateveil.metrics_probe", args=[payload], queue=settings.queue)
        stats = queue_stats(redis_client, settings.queue)
        assert stats.depth == 1
        assert stats.oldest_age_s is not None and stats.oldest_age_s > 3600 * 24 * 365
        redis_client.delete(settings.queue)
        assert queue_stats(redis_client, settings.queue).depth == 0
    finally:
        redis_client.delete(settings.queue)
        sender.close()
