"""``plateveil reconcile`` and ``plateveil dlq list|show|replay``: the job store's repair tools.

Both read the worker's settings (``PLATEVEIL_REDIS_URL``, ``PLATEVEIL_QUEUE``...) from the
environment, as a worker would.

    plateveil reconcile [--grace-s S] [--json]     one reconciler pass (workers also run it by themselves)
    plateveil dlq list [--limit N] [--json]        dead-lettered jobs, newest first
    plateveil dlq show JOB_ID                      one entry: reason, time, attempts, payload, status record
    plateveil dlq replay JOB_ID... | --all         queue them again (fresh counters, same output keys)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from plateveil.errors import BrokerError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("reconcile", help="requeue accepted jobs that have no queue message",
                              description="One reconciler pass over the open jobs (see workers/reconcile.py).")
    p.add_argument("--grace-s", type=float, default=None, help="only jobs accepted longer ago (default: settings)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_reconcile)

    d = subparsers.add_parser("dlq", help="inspect and replay the dead-letter list",
                              description="Jobs that ended failed, with their reasons; replay queues them again.")
    dsub = d.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    ls = dsub.add_parser("list", help="dead-lettered jobs, newest first")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=run_dlq_list)
    show = dsub.add_parser("show", help="one dead-letter entry and the job's status record")
    show.add_argument("job_id")
    show.set_defaults(func=run_dlq_show)
    replay = dsub.add_parser("replay", help="queue dead-lettered jobs again")
    replay.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    replay.add_argument("--all", action="store_true", help="every entry of the list")
    replay.set_defaults(func=run_dlq_replay)


def _settings() -> Any:
    from plateveil.settings import load_settings
    from workers.settings import WorkerSettings

    return load_settings(WorkerSettings)


def _jobs(settings: Any) -> Any:
    from plateveil.jobs import JobStore

    return JobStore.from_url(settings.redis_url, ttl_s=settings.job_ttl_s, event_stream=settings.event_stream,
                             event_maxlen=settings.event_stream_maxlen)


def run_reconcile(args: argparse.Namespace) -> int:
    from workers.reconcile import Reconciler

    settings = _settings()
    if args.grace_s is not None:
        settings = settings.model_copy(update={"reconcile_grace_s": args.grace_s})
    reconciler = Reconciler.from_settings(settings)
    try:
        report = reconciler.run_once()
    except BrokerError as exc:
        print(f"plateveil reconcile: {exc}", file=sys.stderr)
        return 2
    finally:
        reconciler.close()
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"examined {report.examined} open jobs accepted over {reconciler.grace_s:.0f} s ago: "
              f"{report.present} on the queue, {report.finished} finished, {len(report.requeued)} requeued, "
              f"{len(report.failed)} failed, {len(report.vanished)} vanished; oldest open job "
              f"{report.oldest_open_age_s:.0f} s")
        for name in ("requeued", "failed", "vanished"):
            for job_id in getattr(report, name):
                print(f"  {name} {job_id}")
    return 0


def run_dlq_list(args: argparse.Namespace) -> int:
    jobs = _jobs(_settings())
    try:
        letters = jobs.dead_letters(limit=args.limit)
        total = jobs.dead_letter_count()
    except BrokerError as exc:
        print(f"plateveil dlq: {exc}", file=sys.stderr)
        return 2
    if args.json:
        for letter in letters:
            print(letter.to_json())
        return 0
    print(f"{total} dead-lettered jobs" + (f" (newest {len(letters)})" if total > len(letters) else ""))
    for letter in letters:
        print(f"{letter.job_id}  {letter.failed_at}  attempts={letter.attempts}  {letter.reason}")
    return 0


def run_dlq_show(args: argparse.Namespace) -> int:
    jobs = _jobs(_settings())
    try:
        letter = jobs.dead_letter(args.job_id)
        record = jobs.get(args.job_id)
    except BrokerError as exc:
        print(f"plateveil dlq: {exc}", file=sys.stderr)
        return 2
    if letter is None:
        print(f"plateveil dlq: no dead-letter entry for job {args.job_id!r}", file=sys.stderr)
        return 1
    out = json.loads(letter.to_json())
    out["record"] = record.to_dict() if record is not None else None
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


def run_dlq_replay(args: argparse.Namespace) -> int:
    from plateveil.schema import ConcealJob
    from workers.reconcile import make_sender, send_job

    if not args.all and not args.job_ids:
        print("plateveil dlq replay: name JOB_IDs or --all", file=sys.stderr)
        return 2
    settings = _settings()
    jobs = _jobs(settings)
    sender = make_sender(settings.redis_url, settings.queue)
    failed = 0
    try:
        ids = [letter.job_id for letter in jobs.dead_letters(limit=10**9)] if args.all else args.job_ids
        for job_id in ids:
            letter = jobs.dead_letter(job_id)
            if letter is None:
                print(f"{job_id}: no dead-letter entry", file=sys.stderr)
                failed += 1
                continue
            job = ConcealJob.from_dict(letter.job)
            jobs.reopen(job)
            send_job(sender, settings.queue, job)
            print(f"{job_id}: queued again (was: {letter.reason})")
    except BrokerError as exc:
        print(f"plateveil dlq: {exc}", file=sys.stderr)
        return 2
    finally:
        sender.close()
    return 1 if failed else 0
