"""What the worker really emits validates against docs/schemas/completion-event.v1.json, and the
example consumer reads it with a consumer group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from plateveil_ops.stack import ORIGINALS_BUCKET

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "schemas" / "completion-event.v1.json").read_text())
CONSUMER = ROOT / "scripts" / "examples" / "consume_events.py"   # run as a program: tests import no script


def test_emitted_events_validate_against_the_schema(client, s3, redis_client, car_jpeg):
    done = client.submit_photo(car_jpeg, style="solid")
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="events/broken.png", Body=b"\x89PNG\r\n\x1a\n broken",
                  ContentType="image/png")
    failed = client.submit_s3_object(ORIGINALS_BUCKET, "events/broken.png")
    assert client.wait(done["job_id"])["status"] == "done"
    assert client.wait(failed["job_id"])["status"] == "failed"
    entries = redis_client.xrange("plateveil:events")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for _, fields in entries:  # every event of this session, not only these two
        validator.validate(fields)
    mine = {f["job_id"]: f for _, f in entries if f["job_id"] in (done["job_id"], failed["job_id"])}
    assert mine[done["job_id"]]["status"] == "done" and mine[failed["job_id"]]["status"] == "failed"


def test_the_example_consumer_reads_and_acknowledges_with_a_group(stack, client, redis_client, car_jpeg):
    job = client.submit_photo(car_jpeg)
    assert client.wait(job["job_id"])["status"] == "done"
    total = redis_client.xlen("plateveil:events")
    out = subprocess.run([sys.executable, str(CONSUMER), "--redis-url", stack.redis_url,
                          "--group", "example", "--consumer", "c1", "--start", "0", "--max", str(total),
                          "--block-ms", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == total and job["job_id"] in {e["job_id"] for e in lines}
    assert redis_client.xpending("plateveil:events", "example")["pending"] == 0


def test_a_dead_consumers_entries_are_taken_over(stack, redis_client, client, car_jpeg):
    redis_client.xgroup_create("plateveil:events", "takeover", id="$", mkstream=True)
    job = client.submit_photo(car_jpeg)
    assert client.wait(job["job_id"])["status"] == "done"
    # consumer "dead" reads the entry and never acknowledges it
    read = redis_client.xreadgroup("takeover", "dead", {"plateveil:events": ">"}, count=10)
    assert [f["job_id"] for _, f in read[0][1]] == [job["job_id"]]
    out = subprocess.run([sys.executable, str(CONSUMER), "--redis-url", stack.redis_url, "--group", "takeover",
                          "--consumer", "alive", "--block-ms", "0", "--claim-idle-ms", "0", "--max", "1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = [json.loads(line)["job_id"] for line in out.stdout.splitlines()]
    assert seen == [job["job_id"]]
    assert redis_client.xpending("plateveil:events", "takeover")["pending"] == 0
