"""``scripts/bench/bench_e2e.py`` against the test stack, run as a program (tests import no script): a few
photos give a well-formed report whose stages add up to each job's end-to-end time. No time is asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

# the report's stages, in order (bench_e2e.STAGES): the report format this test holds the script to
WORKER_STAGES = ("s3_get", "decode", "detect", "landmarks", "conceal", "encode", "s3_put")
STAGES = ("upload", "original_put", "queue_wait", *WORKER_STAGES, "status_write")


@pytest.mark.parametrize("completion", ["events", "polling"])
def test_bench_e2e_report_is_well_formed(stack, repo_root, tmp_path, completion):
    argv = ["--api-url", stack.api_url, "--api-key", stack.api_key, "--generated", "--generated-size", "640x480",
            "--rate", "10", "--duration", "0.3", "--warmup", "1", "--out", str(tmp_path), "--label", completion]
    if completion == "events":
        argv += ["--redis-url", stack.redis_url]
    run = subprocess.run([sys.executable, str(repo_root / "scripts" / "bench" / "bench_e2e.py"), *argv],
                         capture_output=True, text=True, timeout=300, cwd=repo_root)
    assert run.returncode == 0, run.stderr[-3000:]

    report = json.loads((tmp_path / f"bench_e2e-{completion}.json").read_text())
    assert report["completion"] == ("redis events" if completion == "events" else "polling")
    assert len(report["loadavg_before"]) == 3
    summary = report["summary"]
    assert summary["sent"] == summary["accepted"] == summary["done"] == 3
    assert summary["failed"] == summary["unfinished"] == 0
    assert set(summary["stages_ms"]) == set(STAGES)
    for key in ("p50", "p95", "p99", "max", "mean"):
        assert summary["e2e_ms"][key] > 0
    assert summary["throughput_per_s"] > 0
    # the worker's own CPU per job, from the job records (timings_ms.cpu)
    assert summary["job_cpu_ms"]["n"] == 3 and summary["job_cpu_ms"]["mean"] > 0
    assert len(report["jobs"]) == 3
    for job in report["jobs"]:
        stages = job["stages_ms"]
        assert list(stages) == list(STAGES)
        # the stages partition the end-to-end time (timestamps of the service have 1 ms resolution)
        assert sum(stages.values()) == pytest.approx(job["e2e_ms"], abs=0.2)
        assert all(v > -2.0 for v in stages.values()), stages
        assert stages["decode"] > 0 and stages["s3_get"] > 0 and stages["s3_put"] > 0
        assert job["to_completed_at_ms"] <= job["e2e_ms"] + 2.0
    png = tmp_path / f"latency_e2e-{completion}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
