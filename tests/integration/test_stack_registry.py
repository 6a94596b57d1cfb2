"""The local stack (``make up`` / ``make demo`` / the test stack) runs with the model registry on: the
bucket exists, the shipped bundle is published as ``production`` before the worker starts, ``.stack/env``
is all a shell needs for ``plateveil models ...`` and curl, and a promotion and a rollback reach the
stack's worker (jobs record the version that concealed them)."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from model_store.bundle import default_model_dir, read_config
from plateveil_ops.cli import main
from plateveil_ops.stack import MODELS_BUCKET, Stack

pytestmark = pytest.mark.integration

SHIPPED = str(read_config(default_model_dir())["version"])


def test_the_registry_is_on_with_the_shipped_bundle_as_production(stack: Stack, redis_client: Any) -> None:
    assert stack.env["PLATEVEIL_REGISTRY_BUCKET"] == MODELS_BUCKET
    alias = json.loads(stack.s3_client().get_object(
        Bucket=MODELS_BUCKET, Key="models/plateveil-plates/aliases/production.json")["Body"].read())
    assert alias["version"] == SHIPPED
    states = [json.loads(redis_client.hget(k, "models")) for k in redis_client.scan_iter(match="plateveil:worker:*")]
    mine = [s for s in states if s["registry"] == f"Registry(s3://{MODELS_BUCKET}/models/plateveil-plates)"]
    assert mine and mine[0]["source"] == "registry" and mine[0]["in_sync"]


def test_the_env_file_is_all_a_shell_needs(stack: Stack, tmp_path: Path) -> None:
    stack.save()
    env_file = stack.state_dir / "env"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PLATEVEIL_", "AWS_"))}
    clean["PATH"] = "/usr/bin:/bin"  # not the venv: the env file puts `plateveil` on the PATH
    script = (f"source {env_file} && plateveil models list && plateveil models workers && "
              'echo "api=$API_URL key=$API_KEY" && '
              'curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $API_KEY" $API_URL/v1/jobs/nope')
    done = subprocess.run(["bash", "-c", script], env=clean, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["version", "published", "MB", "recall@0.8"]
    assert any(line.startswith(SHIPPED) and "production" in line for line in lines)
    assert any(f"{SHIPPED} [registry]" in line and "in sync" in line for line in lines)
    assert f"api={stack.api_url} key={stack.api_key}" in lines
    assert lines[-1].endswith("404")  # authenticated (401 otherwise), unknown job


def test_a_promotion_and_a_rollback_reach_the_stack_worker(stack: Stack, client: Any, car_jpeg: bytes,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs before, after the promotion and after the rollback are all done, each by the version the
    alias named when it was submitted."""
    monkeypatch.setenv("PLATEVEIL_GATE_MAX_LATENCY_RISE", "100")  # real timings never decide a test (shared machine)
    by_version: Counter[str] = Counter()

    def jobs(n: int) -> set[str]:
        models = set()
        for _ in range(n):
            job = client.wait(client.submit_photo(car_jpeg)["job_id"], timeout=60)
            assert job["status"] == "done", job
            by_version[job["model"]] += 1
            models.add(job["model"])
        return models

    candidate = SHIPPED + "-i25test"
    assert main(["models", "publish", str(default_model_dir()), "--version", candidate]) == 0
    assert jobs(3) == {f"plateveil-plates@{SHIPPED}"}
    try:
        assert main(["models", "promote", candidate, "--wait", "60"]) == 0
        out = capsys.readouterr().out
        assert "worker(s) serve plateveil-plates@" + candidate in out, out
        assert jobs(3) == {f"plateveil-plates@{candidate}"}
    finally:
        assert main(["models", "rollback", "--wait", "60"]) == 0
    out = capsys.readouterr().out
    assert f"production -> {SHIPPED} (rolled back from {candidate}: the last version workers served)" in out
    assert jobs(3) == {f"plateveil-plates@{SHIPPED}"}
    print(f"jobs per version: {dict(by_version)}")
    assert by_version == {f"plateveil-plates@{SHIPPED}": 6, f"plateveil-plates@{candidate}": 3}
