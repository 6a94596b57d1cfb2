"""Example consumer of plateveil's completion events with a Redis consumer group (redis-py only).

Every finished job adds one entry to the stream ``plateveil:events`` (fields as in
``docs/schemas/completion-event.v1.json``). A consumer group gives each entry to one consumer of
the group, remembers what each consumer has not acknowledged yet, and lets a consumer take over
the entries of one that died::

    python scripts/examples/consume_events.py --redis-url redis://127.0.0.1:6379/0 --group marketplace \
        --consumer "$HOSTNAME" [--start 0|$] [--max N]

* the group is created on first use (``XGROUP CREATE ... MKSTREAM``), from the start of the stream
  (``--start 0``) or from new entries only (``--start $``, the default);
* ``XREADGROUP ... >`` blocks for new entries; each is handled, then acknowledged (``XACK``):
  a consumer that crashes before the ack gets the entry again (at-least-once: make the handler
  idempotent on ``job_id``);
* entries another consumer has held unacknowledged for longer than ``--claim-idle-ms`` are
  taken over with ``XAUTOCLAIM`` (a consumer that died).

The stream is capped (``PLATEVEIL_EVENT_STREAM_MAXLEN``, ~100000 entries): a consumer group that
falls further behind than that loses the oldest entries; ``GET /v1/jobs/{id}`` still answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import redis

STREAM = "plateveil:events"


def ensure_group(client: Any, stream: str, group: str, start: str = "$") -> None:
    try:
        client.xgroup_create(stream, group, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):  # the group exists already: fine
            raise


def consume(client: Any, handle: Callable[[str, dict[str, str]], None], *, stream: str = STREAM,
            group: str, consumer: str, block_ms: int = 5000, count: int = 10, claim_idle_ms: int = 60_000,
            max_events: int | None = None) -> int:
    """Handle and acknowledge entries until ``max_events`` were handled (forever when None);
    returns how many were handled. An exception in ``handle`` leaves the entry pending."""
    handled = 0
    while max_events is None or handled < max_events:
        # first the entries of consumers that died (or our own from before a restart), then new ones
        _, claimed, *_ = client.xautoclaim(stream, group, consumer, min_idle_time=claim_idle_ms, start_id="0-0",
                                           count=count)
        batches: list[tuple[str, dict[str, str]]] = [(i, f) for i, f in claimed if f]
        if not batches:
            for _, entries in client.xreadgroup(group, consumer, {stream: ">"}, count=count,
                                                 block=block_ms or None) or []:
                batches.extend(entries)
        if not batches and max_events is not None and block_ms == 0:
            break
        for entry_id, fields in batches:
            handle(entry_id, fields)
            client.xack(stream, group, entry_id)
            handled += 1
            if max_events is not None and handled >= max_events:
                break
    return handled


def print_event(entry_id: str, fields: dict[str, str]) -> None:
    print(json.dumps({"id": entry_id, **fields}, sort_keys=True), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--stream", default=STREAM)
    parser.add_argument("--group", required=True)
    parser.add_argument("--consumer", required=True, help="a name unique in the group (the host name)")
    parser.add_argument("--start", default="$", help="where a new group starts: 0 (everything) or $ (new only)")
    parser.add_argument("--max", type=int, default=None, help="stop after this many events")
    parser.add_argument("--block-ms", type=int, default=5000)
    parser.add_argument("--claim-idle-ms", type=int, default=60_000)
    args = parser.parse_args(argv)
    client: Any = redis.Redis.from_url(args.redis_url, decode_responses=True)
    ensure_group(client, args.stream, args.group, args.start)
    try:
        consume(client, print_event, stream=args.stream, group=args.group, consumer=args.consumer,
                block_ms=args.block_ms, claim_idle_ms=args.claim_idle_ms, max_events=args.max)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
