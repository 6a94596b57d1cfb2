"""A bounded fuzz of the upload service's OpenAPI spec (schemathesis 4, over the real stack):
every operation gets generated valid and invalid requests with the API key; no answer may be a
5xx, and every answer must match the documented status codes and response schemas.
Bounded to a few examples per operation (derandomized), so it runs in seconds.

The spec is built from the app's code at import (schemathesis parametrizes at collection, before
the stack runs); a test checks it is the one the running service serves."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
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
