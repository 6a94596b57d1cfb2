"""What both services share about metrics: the names of the queue metrics and how the queue is read.

With the Redis broker a Celery queue is a Redis list of the queue's name (kombu ``LPUSH``es new
messages and ``BRPOP``s from the other end), so the number of jobs waiting is ``LLEN queue`` and
the oldest waiting job is ``LINDEX queue -1``. Its Celery message carries our
:class:`~plateveil.schema.ConcealJob` payload, whose ``accepted_at`` gives the job's age. KEDA
scales the workers on the same ``LLEN`` (``deploy/k8s/keda-scaledobject.yaml``).

:class:`QueueCollector` reads both at scrape time (a Prometheus custom collector): nothing is
cached, so the gauge is as fresh as the scrape. Metric names are module constants so the deploy
files' test can check that the dashboards and alert rules name real metrics.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from plateveil.schema import parse_iso, utc_now

logger = logging.getLogger(__name__)

QUEUE_DEPTH = "plateveil_queue_depth"
QUEUE_OLDEST_AGE = "plateveil_queue_oldest_job_age_seconds"
QUEUE_UP = "plateveil_queue_up"
DEFAULT_WORKER_METRICS_PORT = 9540
"""Default ``PLATEVEIL_METRICS_PORT`` of a worker's exporter (the deploy files scrape it)."""


@dataclass(frozen=True)
class QueueStats:
    depth: int
    oldest_age_s: float | None  # None when the queue is empty or its oldest message names no accepted_at


def accepted_at_of(message: str | bytes) -> str | None:
    """The ``accepted_at`` of the job in one kombu Redis message (JSON, body base64), else None."""
    try:
        envelope = json.loads(message)
        body: Any = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        decoded = json.loads(body)
        args = decoded[0] if isinstance(decoded, list) else decoded.get("args", [])
        value = args[0].get("accepted_at") if args and isinstance(args[0], dict) else None
        return str(value) if value else None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def queue_stats(client: Any, queue: str) -> QueueStats:
    """Depth and age of the oldest waiting job of ``queue`` (redis errors propagate)."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(queue)
    pipe.lindex(queue, -1)
    depth, oldest = pipe.execute()
    age = None
    if oldest is not None:
        accepted = accepted_at_of(oldest)
        if accepted:
            try:
                age = max(0.0, (utc_now() - parse_iso(accepted)).total_seconds())
            except ValueError:
                age = None
    return QueueStats(depth=int(depth), oldest_age_s=age if depth else None)


class QueueCollector:
    """A Prometheus collector reading the queue from Redis at every scrape.

    ``plateveil_queue_up`` is 0 (and the other two are left out) when Redis does not answer, so
    an alert can tell "no jobs" from "cannot see the queue".
    """

    def __init__(self, client: Any, queue: str) -> None:
        self.client = client
        self.queue = queue

    def describe(self) -> list[Any]:
        return []  # collected at scrape time only; do not call Redis at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily(QUEUE_UP, "1 when the queue could be read from Redis at this scrape",
                               labels=["queue"])
        try:
            stats = queue_stats(self.client, self.queue)
        except Exception as exc:  # any Redis failure: report the queue as unreadable, never fail the scrape
            logger.warning("cannot read queue %s for metrics: %s", self.queue, exc)
            up.add_metric([self.queue], 0)
            yield up
            return
        up.add_metric([self.queue], 1)
        yield up
        depth = GaugeMetricFamily(QUEUE_DEPTH, "jobs waiting in the queue (LLEN of its Redis list)",
                                  labels=["queue"])
        depth.add_metric([self.queue], stats.depth)
        yield depth
        age = GaugeMetricFamily(QUEUE_OLDEST_AGE, "age of the oldest waiting job (0 when none waits)",
                                labels=["queue"])
        age.add_metric([self.queue], stats.oldest_age_s or 0.0)
        yield age
