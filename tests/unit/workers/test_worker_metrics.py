"""Worker metrics in prometheus_client's multiprocess mode, as Celery's prefork pool uses them:
children write, the parent's collector adds up, a child's exit drops its live gauges. Run in a
fresh interpreter because the mode is chosen when prometheus_client is first imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from plateveil.errors import BadImageError, PermanentError, SourceMissingError, StorageError
from workers.metrics import failure_reason, retry_reason

SCRIPT = textwrap.dedent("""
    import json, os, multiprocessing as mp, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    stale = os.path.join(sys.argv[1], "counter_99999.db")
    open(stale, "wb").write(b"garbage from an earlier run")
    from workers import metrics as wm
    wm.prepare_multiproc_dir()
    assert not os.path.exists(stale), "stale file kept"
    from plateveil.schema import JobRecord, JobStatus
    from plateveil.errors import BadImageError

    record = JobRecord(job_id="j", status=JobStatus.DONE, source_bucket="b", source_key="k", output_bucket="o",
                       output_key="k", sidecar_key="k.json", style="blur", accepted_at="2024-01-01T00:00:00.000Z",
                       started_at="2024-01-01T00:00:01.000Z", completed_at="2024-01-01T00:00:03.500Z")

    def child(n, exit_cleanly):
        wm.model_served("production", "plates@1.0.0" if exit_cleanly else "plates@2.0.0")
        for _ in range(n):
            wm.job_done(record, "plates@1.0.0", 2, {"decode": 5.0, "detect": 20.0, "total": 40.0})
        wm.job_failed(BadImageError("not an image"))
        wm.job_failed("retries_exhausted")
        if exit_cleanly:
            wm.process_exited()

    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=child, args=(n, clean)) for n, clean in ((2, True), (3, False))]
    for p in procs: p.start()
    for p in procs: p.join()
    from prometheus_client import CollectorRegistry, multiprocess
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    out = {}
    for fam in reg.collect():
        for s in fam.samples:
            out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    print(json.dumps(out))
""")


def _run(tmp_path) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_children_add_up_and_an_exited_child_drops_its_live_gauge(tmp_path):
    got = _run(tmp_path)
    assert got['plateveil_jobs_total{"outcome": "done", "reason": ""}'] == 5
    assert got['plateveil_jobs_total{"outcome": "failed", "reason": "bad_image"}'] == 2
    assert got['plateveil_dead_letters_total{"reason": "retries_exhausted"}'] == 2
    assert 'plateveil_dead_letters_total{"reason": "bad_image"}' not in got  # bad input is not replayable
    assert got['plateveil_plates_per_photo_count{"model": "plates@1.0.0"}'] == 5
    assert got['plateveil_plates_per_photo_sum{"model": "plates@1.0.0"}'] == 10
    assert got['plateveil_stage_duration_seconds_count{"stage": "detect"}'] == 5
    assert got['plateveil_job_latency_seconds_sum{}'] == 5 * 3.5
    assert got['plateveil_job_processing_seconds_sum{}'] == 5 * 2.5
    # livemax: the child that exited cleanly (served 1.0.0) is gone, the other (2.0.0) still counts
    assert 'plateveil_model_info{"model": "plates", "slot": "production", "version": "1.0.0"}' not in got
    assert got['plateveil_model_info{"model": "plates", "slot": "production", "version": "2.0.0"}'] == 1


def test_reasons():
    assert failure_reason(BadImageError("x")) == "bad_image"
    assert failure_reason(SourceMissingError("x")) == "source_missing"
    assert failure_reason(PermanentError("started 4 times without finishing")) == "too_many_deliveries"
    assert failure_reason(PermanentError("other")) == "permanent"
    assert failure_reason(RuntimeError("x")) == "internal_error"
    assert retry_reason(StorageError("x")) == "storage"
    assert retry_reason(ConnectionError("x")) == "connection"
