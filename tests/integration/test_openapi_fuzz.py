"""A bounded fuzz of the upload service's OpenAPI spec (schemathesis 4, over the real stack):
every operation gets generated valid and invalid requests with the API key; no answer may be a
5xx, and every answer must match the documented status codes and response schemas.
Bounded to a few examples per operation (derandomized), so it runs in seconds. The intake routes
(``/v1/s3-events``, ``/v1/events/minio``, ``/v1/events/sns``) declare their record shape, so the
generated bodies reach the intake; SQS message bodies and *signed* SNS messages (which no spec can
generate) are fuzzed with hypothesis below, through the same intake function.

The spec is built from the app's code at import (schemathesis parametrizes at collection, before
the stack runs); a test checks it is the one the running service serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from producer.app import create_app

pytestmark = pytest.mark.integration

SPEC = create_app().openapi()
schema = schemathesis.openapi.from_dict(SPEC)


def test_the_fuzzed_spec_is_the_served_one(stack):
    served = httpx.get(stack.api_url + "/openapi.json", headers={"Authorization": f"Bearer {stack.api_key}"})
    assert served.json() == SPEC


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_a_server_error(case, stack):
    case.call_and_validate(base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=20,
                           checks=[not_a_server_error, status_code_conformance, response_schema_conformance])


# -- the intake paths the spec cannot describe: SQS message bodies, signed SNS messages --------------

_SCALAR = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_JSON = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=12)
_BUCKETS = st.sampled_from(["plateveil-originals", "plateveil-concealed", "no-such-bucket", "UPPER_case!!", ""])
_KEYS = st.sampled_from(["fuzz/car.jpg", "fuzz/car%2B1.jpg", "originals/2026/01/01/x.jpg", "a/../b.jpg", "f\x00"])
_RECORD = st.fixed_dictionaries(
    {"eventName": st.sampled_from(["ObjectCreated:Put", "s3:ObjectCreated:Put", "ObjectRemoved:Delete"]) | _SCALAR,
     "s3": st.fixed_dictionaries({"bucket": st.fixed_dictionaries({"name": _BUCKETS | _SCALAR}),
                                  "object": st.fixed_dictionaries({"key": _KEYS | _SCALAR},
                                                                  optional={"eTag": _SCALAR, "versionId": _SCALAR,
                                                                            "size": _SCALAR})})}) | _JSON
_NOTIFICATIONS = st.fixed_dictionaries({"Records": st.lists(_RECORD, max_size=4)},
                                       optional={"EventName": _SCALAR, "Key": _SCALAR}) | _JSON
_BODIES = (st.text(max_size=200) | _NOTIFICATIONS.map(json.dumps)
           | _NOTIFICATIONS.map(lambda d: json.dumps({"Type": "Notification", "Message": json.dumps(d)})))


@pytest.fixture(scope="module")
def intake_services(stack, s3, car_jpeg) -> Iterator[Any]:
    from producer.services import Services
    from producer.settings import ProducerSettings

    s3.put_object(Bucket="plateveil-originals", Key="fuzz/car.jpg", Body=car_jpeg, ContentType="image/jpeg")
    queue = "plateveil.test-fuzz"  # no worker: what the fuzz makes stays queued, then is dropped
    env = stack.env
    svc = Services.from_settings(ProducerSettings(
        redis_url=env["PLATEVEIL_REDIS_URL"], s3_endpoint_url=env["PLATEVEIL_S3_ENDPOINT_URL"],
        s3_region=env["PLATEVEIL_S3_REGION"], s3_access_key_id=env["PLATEVEIL_S3_ACCESS_KEY_ID"],
        s3_secret_access_key=env["PLATEVEIL_S3_SECRET_ACCESS_KEY"], s3_max_attempts=1,
        api_key_hashes=env["PLATEVEIL_API_KEY_HASHES"], queue=queue,
        source_allow={"*": ("plateveil-originals/",)}))
    yield svc
    svc.close()
    stack.redis_client().delete(queue)


@given(body=_BODIES)
@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_sqs_message_bodies_make_jobs_or_a_notification_error(intake_services, body):
    """Whatever a queue holds, the consumer either handles it or says it is no notification
    (the message is then left for the redrive policy); never another exception."""
    from producer.intake.records import NotificationError
    from producer.intake.sqs import handle_body

    try:
        result = handle_body(intake_services, body)
    except NotificationError:
        return
    assert len(result.outcomes) + len(result.not_processed) <= intake_services.settings.max_event_records
    for outcome in result.outcomes:
        assert outcome.job is not None or outcome.skipped


@pytest.fixture(scope="module")
def sns_client(stack) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from plateveil.settings import load_settings
    from producer.settings import ProducerSettings
    from tests.integration.test_event_intake import LOCAL_URL, TOPIC, SnsFake

    fake = SnsFake()
    settings = load_settings(ProducerSettings).model_copy(update={
        "sns_topic_arns": (TOPIC,), "sns_cert_url_pattern": LOCAL_URL, "sns_subscribe_url_pattern": LOCAL_URL,
        "queue": "plateveil.test-fuzz-sns"})
    with TestClient(create_app(settings)) as client:
        yield client, fake
    fake.server.shutdown()
    fake.server.server_close()
    stack.redis_client().delete("plateveil.test-fuzz-sns")


@given(message=st.text(max_size=200) | _NOTIFICATIONS.map(json.dumps), signed=st.booleans())
@settings(max_examples=80, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_signed_sns_messages_of_any_content_are_never_a_server_error(sns_client, message, signed):
    client, fake = sns_client
    envelope = {"Type": "Notification", "MessageId": "fuzz", "TopicArn": "arn:aws:sns:us-east-1:123456789012:"
                "plateveil-uploads", "Message": message, "Timestamp": "2026-01-01T00:00:00.000Z"}
    if signed:
        envelope = fake.sign(envelope)
    resp = client.post("/v1/events/sns", content=json.dumps(envelope))
    assert resp.status_code in ((200,) if signed else (403,)), (resp.status_code, resp.text[:300])


# -- the review routes (issue 36) ------------------------------------------------------------------------
def _review_spec() -> dict:
    """The review pages and their API are left out of the public spec (include_in_schema=False); fuzz them
    from a spec of their own, built from the same routes. Logout is left out: it would end the fuzzing
    session (its revocation has its own test, test_api_hardening.py)."""
    import copy

    from fastapi.openapi.utils import get_openapi

    from producer.review.routes import login_router, router

    routes = []
    for route in [*login_router.routes, *router.routes]:
        if getattr(route, "path", "").endswith("/logout"):
            continue
        visible = copy.copy(route)
        visible.include_in_schema = True
        routes.append(visible)
    return get_openapi(title="plateveil review", version="1", routes=routes)


REVIEW_SPEC = _review_spec()
review_schema = schemathesis.openapi.from_dict(REVIEW_SPEC)


@pytest.fixture(scope="module")
def review_session(stack) -> dict[str, str]:
    """A logged-in reviewer's cookie and CSRF token, as headers."""
    import re

    from plateveil_ops.stack import REVIEWER

    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        assert http.post("/review/login", data={"name": REVIEWER, "key": stack.review_key}).status_code == 303
        page = http.get("/review", headers={"Accept": "text/html"})
        token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text).group(1)
        return {"Cookie": f"plateveil_review={http.cookies.get('plateveil_review')}", "X-CSRF-Token": token}


def test_the_review_spec_covers_the_review_routes():
    paths = set(REVIEW_SPEC["paths"])
    assert {"/review/login", "/review", "/review/jobs/{job_id}", "/review/api/jobs/{job_id}/corrections",
            "/review/api/jobs/{job_id}/accept", "/review/static/{name}"} <= paths


@review_schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_review_operation_answers_a_server_error(case, stack, review_session):
    """Logged in (cookie + CSRF token) and not: never a 5xx (the answers are pages and are not in the spec,
    so only the server-error check applies)."""
    for headers in (review_session, {}):
        case.call_and_validate(base_url=stack.api_url, headers=headers, timeout=20, checks=[not_a_server_error])
