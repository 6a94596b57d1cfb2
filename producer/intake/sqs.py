"""``plateveil events consume --sqs URL``: S3 (or S3 -> SNS) notifications from an SQS queue.

Long polling (``WaitTimeSeconds`` = ``PLATEVEIL_SQS_WAIT_TIME_S``, up to 20 s); each message's
records go through :func:`producer.intake.intake.submit_batch` as ``PLATEVEIL_SQS_KEY_ID`` (its
sources, rate and queue share; the jobs are its own; at most ``PLATEVEIL_MAX_EVENT_RECORDS``
records; one job per object version) and the message is deleted only when every record was
handled (a job made, or skipped for good: a duplicate, filtered out, not an image, gone). When S3
or Redis fails, the identity's share or rate is used up, or the body is not a notification at all
(or has too many records), the message is left alone: it comes back after the queue's visibility
timeout (the records already made into jobs are duplicates then), and after ``maxReceiveCount``
receives the queue's redrive policy moves it to its dead-letter queue, where a person can look
at it. Nothing is lost and nothing is done twice.
"""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plateveil.errors import BrokerError, StorageError
from producer.intake.intake import BatchResult, submit_batch
from producer.intake.records import NotificationError, parse_body
from producer.services import Services
from producer.settings import ProducerSettings

logger = logging.getLogger(__name__)

_REGION_IN_URL = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com")


@dataclass
class ConsumeStats:
    received: int = 0
    deleted: int = 0
    left: int = 0
    jobs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def sqs_client(settings: ProducerSettings, queue_url: str) -> Any:
    import boto3

    match = _REGION_IN_URL.match(queue_url)
    region = settings.sqs_region or (match.group(1) if match else None) or settings.s3_region
    return boto3.session.Session().client("sqs", endpoint_url=settings.sqs_endpoint_url, region_name=region)


def handle_body(svc: Services, body: str) -> BatchResult:
    """The outcome of one message; raises NotificationError / StorageError / BrokerError to leave it
    (a result with ``refused`` set: leave it too)."""
    settings = svc.settings
    return submit_batch(svc, parse_body(body, settings.max_event_records), settings.sqs_key_id)


def receive_once(svc: Services, client: Any, queue_url: str, stats: ConsumeStats) -> int:
    """One long-poll receive and its messages; returns how many messages came."""
    settings = svc.settings
    resp = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=settings.sqs_max_messages,
                                  WaitTimeSeconds=settings.sqs_wait_time_s,
                                  MessageSystemAttributeNames=["ApproximateReceiveCount"])
    messages = resp.get("Messages", [])
    for message in messages:
        stats.received += 1
        receives = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
        try:
            result = handle_body(svc, message["Body"])
        except NotificationError as exc:
            stats.left += 1
            logger.error("SQS message %s is not an object notification (left for the redrive policy, "
                         "receive %s): %s", message.get("MessageId"), receives, exc)
            continue
        except (StorageError, BrokerError) as exc:
            stats.left += 1
            logger.warning("SQS message %s left for a later receive (%s): %s", message.get("MessageId"), receives, exc)
            continue
        for o in result.outcomes:
            if o.job is not None:
                stats.jobs.append(o.job.job_id)
            else:
                stats.skipped.append(f"s3://{o.record.bucket}/{o.record.key}: {o.skipped}")
        if result.refused is not None:
            stats.left += 1
            logger.warning("SQS message %s left for a later receive (%d records not processed): %s",
                           message.get("MessageId"), len(result.not_processed), result.refused.detail)
            continue
        client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        stats.deleted += 1
    return len(messages)


def consume(svc: Services, client: Any, queue_url: str, *, once: bool = False,
            stop: Callable[[], bool] = lambda: False) -> ConsumeStats:
    stats = ConsumeStats()
    while not stop():
        receive_once(svc, client, queue_url, stats)
        if once:
            break
    return stats


def run(args: Any) -> int:
    from plateveil.logs import configure_logging
    from plateveil.settings import load_settings

    settings = load_settings(ProducerSettings)
    configure_logging(settings.log_format, settings.log_level)
    svc = Services.from_settings(settings)
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        logger.info("stopping after the current receive")

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        client = sqs_client(settings, args.sqs)
        logger.info("consuming %s (long polling %d s)", args.sqs, settings.sqs_wait_time_s)
        stats = consume(svc, client, args.sqs, once=args.once, stop=lambda: stopping)
    finally:
        svc.close()
    print(f"events consume: {stats.received} message(s), {stats.deleted} deleted, {stats.left} left; "
          f"{len(stats.jobs)} job(s) {' '.join(stats.jobs)}; {len(stats.skipped)} skipped")
    for line in stats.skipped:
        print(f"  skipped {line}")
    return 0


def register(sub: Any) -> None:
    events = sub.add_parser("events", help="event intake: consume S3 notifications from SQS",
                            description="Event intake from queues (SNS and MinIO deliveries come over HTTP).")
    events_sub = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    consume_p = events_sub.add_parser("consume", help="turn S3 notifications in an SQS queue into jobs",
                                      description=__doc__.splitlines()[0])
    consume_p.add_argument("--sqs", required=True, metavar="QUEUE_URL", help="the SQS queue URL")
    consume_p.add_argument("--once", action="store_true", help="one receive (long poll), then exit")
    consume_p.set_defaults(func=run)
