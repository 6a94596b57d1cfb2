"""The reconciler: every accepted job ends ``done`` or ``failed``, even when its queue message is lost.

A job can be accepted (status record ``queued``, in the open-jobs index) and still have no message
on the queue: Redis restarted and lost the last writes, the producer's enqueue failed after the
record was written, a worker's retry could not be published during an outage. Nothing would ever
run it. :meth:`Reconciler.run_once` walks the open-jobs index (jobs accepted more than
``reconcile_grace_s`` ago, oldest first) and, for each job it finds on no queue list and in no
worker's hands (the broker's ``unacked`` hash) on two looks ``reconcile_confirm_s`` apart,
sends a new message for it (same job id, same payload, same output keys), or, after
``max_requeues`` such requeues, fails it with the reason (and a dead-letter entry). Jobs that
finished leave the index; index entries whose record and message are both gone are dropped and
counted (nothing is left to run).

A dead worker's job is *not* the reconciler's business: its message stays in ``unacked`` and the
broker delivers it again after the visibility timeout (see workers/celery_app.py).

Every worker's main process runs :class:`ReconcileLoop` every ``reconcile_interval_s``; a Redis
lock lets one worker of the fleet do it at a time. ``plateveil reconcile`` runs one pass by hand.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from plateveil import keys
from plateveil.errors import BrokerError
from plateveil.jobs import JobStore, job_from_record
from plateveil.schema import TASK_CONCEAL, ConcealJob, JobStatus
from workers.settings import WorkerSettings

logger = logging.getLogger(__name__)

LOCK_KEY = keys.RECONCILER_LOCK
UNACKED_KEY = "unacked"  # kombu's Redis transport defaults (no global_keyprefix)
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
_SCAN_CHUNK = 1000


def make_sender(redis_url: str, queue: str) -> Celery:
    """A Celery app that only publishes (JSON, no result backend), like the producer's."""
    app = Celery("plateveil-reconciler", broker=redis_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_default_queue=queue,
                    broker_connection_timeout=5,
                    broker_transport_options={"socket_connect_timeout": 5, "socket_timeout": 5},
                    task_publish_retry=True,
                    task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5,
                                               "interval_max": 1.0})
    return app


def send_job(sender: Celery, queue: str, job: ConcealJob) -> None:
    """Enqueue ``job`` by task name with its own id (what the producer does)."""
    try:
        sender.send_task(TASK_CONCEAL, args=[job.to_dict()], task_id=job.job_id, queue=queue)
    except Exception as exc:  # kombu/redis raise many connection error types
        raise BrokerError(f"could not enqueue job {job.job_id}: {exc}") from exc


def _message_task_id(raw: str | bytes) -> str | None:
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # unacked entries are [message, exchange, routing_key]
            message = message[0]
        return str(message["headers"]["id"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None


@dataclass
class ReconcileReport:
    examined: int = 0
    finished: int = 0
    present: int = 0
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    oldest_open_age_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"examined": self.examined, "finished": self.finished, "present": self.present,
                "requeued": self.requeued, "failed": self.failed, "vanished": self.vanished,
                "oldest_open_age_s": round(self.oldest_open_age_s, 1)}


class Reconciler:
    def __init__(self, jobs: JobStore, sender: Celery, queue: str, *, grace_s: float = 60.0,
                 confirm_s: float = 2.0, max_requeues: int = 3, limit: int = 50_000) -> None:
        self.jobs = jobs
        self.sender = sender
        self.queue = queue
        self.grace_s = grace_s
        self.confirm_s = confirm_s
        self.max_requeues = max_requeues
        self.limit = limit

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Reconciler:
        jobs = JobStore.from_url(settings.redis_url, ttl_s=settings.job_ttl_s, event_stream=settings.event_stream,
                                 event_maxlen=settings.event_stream_maxlen)
        return cls(jobs, make_sender(settings.redis_url, settings.queue), settings.queue,
                   grace_s=settings.reconcile_grace_s, confirm_s=settings.reconcile_confirm_s,
                   max_requeues=settings.max_requeues)

    def close(self) -> None:
        self.jobs.client.close()
        self.sender.close()

    # -- what the broker holds ----------------------------------------------------------------------
    def _queue_lists(self) -> list[str]:
        return [self.queue] + [f"{self.queue}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS if p]

    def message_ids(self) -> set[str]:
        """Job ids with a message waiting on the queue or held (unacknowledged) by a worker. The
        lists are read before the unacked hash, so a message moving from one to the other while
        we look is seen at least once (BRPOP, then HSET unacked)."""
        client = self.jobs.client
        ids: set[str] = set()
        try:
            for name in self._queue_lists():
                start = 0
                while True:
                    chunk = client.lrange(name, start, start + _SCAN_CHUNK - 1)
                    ids.update(i for i in map(_message_task_id, chunk) if i)
                    if len(chunk) < _SCAN_CHUNK:
                        break
                    start += _SCAN_CHUNK
            for _, raw in client.hscan_iter(UNACKED_KEY, count=_SCAN_CHUNK):
                task_id = _message_task_id(raw)
                if task_id:
                    ids.add(task_id)
        except Exception as exc:  # redis errors
            raise BrokerError(f"redis scan of the queue failed: {exc}") from exc
        return ids

    # -- one pass -----------------------------------------------------------------------------------
    def _unaccounted(self, candidates: Iterable[str], report: ReconcileReport) -> list[str]:
        """Candidates still open and with no message anywhere."""
        present = self.message_ids()
        missing = []
        for job_id in candidates:
            if job_id in present:
                report.present += 1
                continue
            missing.append(job_id)
        return missing

    def run_once(self, now: float | None = None) -> ReconcileReport:
        now = time.time() if now is None else now
        report = ReconcileReport()
        open_jobs = self.jobs.open_jobs(limit=1)
        if open_jobs:
            report.oldest_open_age_s = max(0.0, now - open_jobs[0][1])
        candidates = [job_id for job_id, _ in self.jobs.open_jobs(older_than=now - self.grace_s, limit=self.limit)]
        report.examined = len(candidates)
        if not candidates:
            return report
        missing = self._unaccounted(candidates, report)
        if missing and self.confirm_s > 0:
            time.sleep(self.confirm_s)
            seen_now = self.message_ids()
            report.present += sum(1 for j in missing if j in seen_now)
            missing = [j for j in missing if j not in seen_now]
        for job_id in missing:
            self._settle(job_id, report)
        if report.requeued or report.failed or report.vanished:
            logger.warning("reconciler: %d open jobs examined, %d requeued, %d failed, %d vanished (record and "
                           "message gone)", report.examined, len(report.requeued), len(report.failed),
                           len(report.vanished))
        return report

    def _settle(self, job_id: str, report: ReconcileReport) -> None:
        record = self.jobs.get(job_id)
        if record is None:
            self.jobs.forget_open(job_id)
            report.vanished.append(job_id)
            logger.error("job %s: status record and queue message both gone; nothing left to run", job_id)
            return
        if record.status.finished:
            self.jobs.forget_open(job_id)
            report.finished += 1
            return
        job = job_from_record(record)
        requeues = self.jobs.requeues(job_id)
        if requeues >= self.max_requeues:
            reason = (f"lost from the queue {requeues + 1} times (requeued {requeues} times by the reconciler); "
                      f"last status {record.status.value}")
            self.jobs.finish(job_id, JobStatus.FAILED, error=reason, job=job)
            report.failed.append(job_id)
            logger.error("job %s failed: %s", job_id, reason)
            return
        n = self.jobs.mark_requeued(job_id, f"requeued by the reconciler: no queue message (was {record.status.value})")
        send_job(self.sender, self.queue, job)
        report.requeued.append(job_id)
        logger.warning("job %s: %s with no queue message; requeued (%d/%d)", job_id, record.status.value, n,
                       self.max_requeues)


class ReconcileLoop:
    """Runs :meth:`Reconciler.run_once` every ``interval_s`` in a daemon thread, while this process
    holds the fleet-wide lock (``SET NX PX``; renewed by the holder, taken over when it lapses)."""

    def __init__(self, reconciler: Reconciler, interval_s: float, owner: str | None = None) -> None:
        self.reconciler = reconciler
        self.interval_s = interval_s
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> ReconcileLoop:
        return cls(Reconciler.from_settings(settings), settings.reconcile_interval_s)

    def _hold_lock(self) -> bool:
        client = self.reconciler.jobs.client
        ttl_ms = int(max(self.interval_s * 3, self.reconciler.confirm_s + 5) * 1000)
        if client.set(LOCK_KEY, self.owner, nx=True, px=ttl_ms):
            return True
        if client.get(LOCK_KEY) == self.owner:
            client.pexpire(LOCK_KEY, ttl_ms)
            return True
        return False

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self._hold_lock():
                    self.reconciler.run_once()
                    self.passes += 1
            except Exception as exc:  # Redis down and the like: try again next time
                logger.warning("reconciler pass failed: %s", exc)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="plateveil-reconciler", daemon=True)
        self._thread.start()
        logger.info("reconciler running every %.0f s (grace %.0f s)", self.interval_s, self.reconciler.grace_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.reconciler.confirm_s + 10)
        self.reconciler.close()
