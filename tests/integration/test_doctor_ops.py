"""``plateveil doctor`` checks Redis, the queue, metrics, webhooks and intake settings and says
what is wrong in plain words."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from plateveil_ops.stack import S3_KEY_ID, S3_REGION, S3_SECRET, free_port

pytestmark = pytest.mark.integration


def doctor(*args: str, **env: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "plateveil_ops.cli", "doctor", "--skip-models", *args],
                         capture_output=True, text=True, env=os.environ | env, timeout=120)
    return out.returncode, out.stdout + out.stderr


def _line(text: str, what: str) -> str:
    return next(line for line in text.splitlines() if line.split()[1:2] == [what] or f" {what} " in line)


def test_a_healthy_stack_passes_and_says_what_it_found(stack):
    rc, text = doctor()
    assert rc == 0, text
    assert "(plain, redis " in text
    assert "plateveil.conceal: " in _line(text, "queue") and "job(s) waiting" in text
    assert "AOF is off" not in text  # the test Redis runs with the append-only file, like the local stack
    assert "skip  webhooks" in text and "skip  sns" in text
    assert "doctor: all checks passed" in text


def test_bad_settings_are_named_in_plain_words(stack, tmp_path):
    not_a_folder = tmp_path / "metrics"
    not_a_folder.write_text("a file")
    rc, text = doctor(PLATEVEIL_WEBHOOKS=json.dumps({"k-0123456789ab": {"url": "ftp://x", "secret": "s" * 20}}),
                      PLATEVEIL_METRICS_PORT="99999", PROMETHEUS_MULTIPROC_DIR=str(not_a_folder),
                      PLATEVEIL_SNS_TOPIC_ARNS="my-topic")
    assert rc == 1
    assert "url must be http(s)://" in _line(text, "webhooks") and "PLATEVEIL_WEBHOOKS" in text
    assert "PLATEVEIL_METRICS_PORT='99999' is not a port number" in text
    assert f"PROMETHEUS_MULTIPROC_DIR={not_a_folder} is a file, not a folder" in text
    assert "not topic ARNs in PLATEVEIL_SNS_TOPIC_ARNS: my-topic" in text


def test_unreachable_redis_fails(stack):
    rc, text = doctor(PLATEVEIL_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert rc == 1 and "FAIL  redis" in text and "Connection" in text


def test_sqs_queue_without_a_redrive_policy_is_warned_about(stack):
    import boto3

    sqs = boto3.session.Session().client("sqs", endpoint_url=stack.s3_endpoint_url, region_name=S3_REGION,
                                         aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)
    url = sqs.create_queue(QueueName="doctor-no-redrive")["QueueUrl"]
    rc, text = doctor("--sqs", url, PLATEVEIL_SQS_ENDPOINT_URL=stack.s3_endpoint_url, PLATEVEIL_SQS_REGION=S3_REGION,
                      AWS_ACCESS_KEY_ID=S3_KEY_ID, AWS_SECRET_ACCESS_KEY=S3_SECRET)
    assert rc == 0, text
    assert "the queue has no redrive policy" in text and "message(s) waiting" in text
