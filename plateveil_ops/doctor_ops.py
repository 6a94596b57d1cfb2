"""``plateveil doctor``'s operational checks: how Redis is reached (plain, TLS, Sentinel) and what
waits in it, metrics, logs, webhooks, SNS and SQS intake. Each check says in plain words what is
wrong and what to set; a check whose feature is not configured says so and is skipped."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from plateveil.settings import ENV_PREFIX, SettingsError, load_settings
from producer.apikeys import KEY_ID, parse_key_hashes


def _settings_problem(exc: SettingsError) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines()[1:])


def _redis_kind(url: str) -> str:
    from plateveil.redisconn import is_sentinel, scheme

    return "Sentinel" if is_sentinel(url) else "TLS" if scheme(url) == "rediss" else "plain"


def check_redis(report: Any, settings: Any) -> None:
    """Redis reachable the way the URL says, the queue and the failure lists in it."""
    if not settings.redis_url:
        report.line("skip", "redis", "PLATEVEIL_REDIS_URL not set")
        return
    from plateveil.redisconn import describe, is_sentinel, parse_sentinel_url, redis_from_url

    url = settings.redis_url
    try:
        where = describe(url)
    except ValueError as exc:
        report.line("FAIL", "redis url", f"PLATEVEIL_REDIS_URL cannot be read: {exc}")
        return
    if is_sentinel(url):
        def sentinels() -> str:
            import redis

            spec = parse_sentinel_url(url)
            answered, masters = [], set()
            for host, port in spec.hosts:
                try:
                    client = redis.Redis(host=host, port=port, password=spec.sentinel_password,
                                         socket_connect_timeout=2, socket_timeout=2, decode_responses=True)
                    addr = client.execute_command("SENTINEL", "get-master-addr-by-name", spec.master)
                except redis.RedisError as exc:
                    report.line("WARN", "redis sentinel", f"sentinel {host}:{port} does not answer: {exc}")
                    continue
                answered.append(f"{host}:{port}")
                if addr:
                    masters.add(f"{addr[0]}:{addr[1]}")
            if not answered:
                raise RuntimeError("no sentinel answers: check the hosts and ports in PLATEVEIL_REDIS_URL")
            if not masters:
                raise RuntimeError(f"the sentinels know no master named {spec.master!r}: "
                                   "set ?master_name= in PLATEVEIL_REDIS_URL to the name they monitor")
            if len(masters) > 1:
                raise RuntimeError(f"the sentinels disagree on the master ({', '.join(sorted(masters))})")
            return f"{len(answered)}/{len(spec.hosts)} sentinels answer; master {spec.master} at {masters.pop()}"

        report.run("redis sentinel", sentinels)

    def server() -> str:
        client = redis_from_url(url, socket_connect_timeout=3, socket_timeout=3, decode_responses=True)
        info = client.info("server")
        persistence = client.info("persistence")
        if not int(persistence.get("aof_enabled", 0)):
            report.line("WARN", "redis persistence", "AOF is off: a Redis restart loses queued jobs "
                                                     "(appendonly yes; see docs/operations.md)")
        return f"{where} ({_redis_kind(url)}, redis {info.get('redis_version')})"

    report.run("redis", server)

    def queue() -> str:
        from plateveil.metrics import queue_stats
        from workers.webhook_contract import FAILED_KEY

        client = redis_from_url(url, socket_connect_timeout=3, socket_timeout=3, decode_responses=True)
        stats = queue_stats(client, settings.queue)
        age = f", oldest waiting {stats.oldest_age_s:.0f} s" if stats.oldest_age_s is not None else ""
        failed_hooks = int(client.llen(FAILED_KEY))
        if failed_hooks:
            report.line("WARN", "webhook failures", f"{failed_hooks} delivery(ies) failed for good in {FAILED_KEY}")
        return f"{settings.queue}: {stats.depth} job(s) waiting{age}"

    report.run("queue", queue)


def check_observability(report: Any) -> None:
    """Log settings were validated when the settings loaded; metrics folder and port."""
    from plateveil.metrics import DEFAULT_WORKER_METRICS_PORT

    raw = os.environ.get(ENV_PREFIX + "METRICS_PORT", str(DEFAULT_WORKER_METRICS_PORT))
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        report.line("FAIL", "metrics port", f"PLATEVEIL_METRICS_PORT={raw!r} is not a port number (0 turns it off)")
    elif int(raw) == 0:
        report.line("skip", "metrics port", "PLATEVEIL_METRICS_PORT=0: workers export no metrics")
    else:
        report.line("ok", "metrics port", f"workers export on :{raw}/metrics")
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        report.line("ok", "metrics folder", f"PROMETHEUS_MULTIPROC_DIR unset: each worker makes one in "
                                            f"{tempfile.gettempdir()}")
        return
    path = Path(folder)
    probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
    if path.exists() and not path.is_dir():
        report.line("FAIL", "metrics folder", f"PROMETHEUS_MULTIPROC_DIR={folder} is a file, not a folder")
    elif not os.access(probe, os.W_OK):
        report.line("FAIL", "metrics folder", f"PROMETHEUS_MULTIPROC_DIR={folder} is not writable by this user: "
                                              "mount a writable (emptyDir) folder there")
    else:
        report.line("ok", "metrics folder", f"{folder} (emptied when a worker starts; one per worker)")


def _key_ids() -> set[str] | None:
    """The key ids of ``PLATEVEIL_API_KEY_HASHES`` where it is set (and valid) here, else None."""
    from typing import Annotated

    from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

    class _Keys(BaseSettings):
        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")
        api_key_hashes: Annotated[str, NoDecode] = ""

    text = _Keys().api_key_hashes
    if not text.strip():
        return None
    try:
        return {item.key_id for item in parse_key_hashes(text)}
    except ValueError:
        return None


def check_webhooks(report: Any) -> None:
    from workers.webhook_contract import WebhookSettings

    try:
        hooks = load_settings(WebhookSettings)
    except SettingsError as exc:
        report.line("FAIL", "webhooks", _settings_problem(exc))
        return
    if not hooks.webhooks:
        report.line("skip", "webhooks", "PLATEVEIL_WEBHOOKS not set: no webhooks are sent")
        return
    known = _key_ids()
    for key_id, target in hooks.webhooks.items():
        if known is not None and key_id not in known:
            report.line("WARN", f"webhook {key_id}", "no entry of PLATEVEIL_API_KEY_HASHES has this key id: "
                                                     "no job will ever carry it")
        elif known is None and not KEY_ID.match(key_id):
            report.line("WARN", f"webhook {key_id}", "this is not a key id (k- + 12 hex digits of the key's "
                                                     "SHA-256, or the --id of plateveil keys new): no job will "
                                                     "ever carry it")
        elif target.url.startswith("http://"):
            report.line("WARN", f"webhook {key_id}", f"{target.url} is plain HTTP: events travel unencrypted")
        else:
            report.line("ok", f"webhook {key_id}", f"{target.url} ({hooks.webhook_max_attempts} attempts)")


def check_intake(report: Any, sqs_url: str | None) -> None:
    from producer.intake_settings import EventsSettings

    try:
        events = load_settings(EventsSettings)
    except SettingsError as exc:
        report.line("FAIL", "event intake", _settings_problem(exc))
        return
    for name in ("sns_cert_url_pattern", "sns_subscribe_url_pattern"):
        try:
            re.compile(getattr(events, name))
        except re.error as exc:
            report.line("FAIL", "sns", f"PLATEVEIL_{name.upper()} is not a regular expression: {exc}")
    if events.sns_topic_arns:
        bad = [arn for arn in events.sns_topic_arns if not arn.startswith("arn:aws")]
        if bad:
            report.line("FAIL", "sns", f"not topic ARNs in PLATEVEIL_SNS_TOPIC_ARNS: {', '.join(bad)}")
        else:
            report.line("ok", "sns", f"POST /v1/events/sns takes {len(events.sns_topic_arns)} topic(s)")
        if not events.sns_cert_url_pattern.startswith("^https://"):
            report.line("WARN", "sns", "PLATEVEIL_SNS_CERT_URL_PATTERN allows certificates over plain HTTP "
                                       "(tests only)")
    else:
        report.line("skip", "sns", "PLATEVEIL_SNS_TOPIC_ARNS not set: SNS intake is off")
    filters = [f"prefixes {','.join(events.events_prefixes)}" if events.events_prefixes else "",
               f"suffixes {','.join(events.events_suffixes)}" if events.events_suffixes else ""]
    report.line("ok", "intake filters", " and ".join(f for f in filters if f) or "none: every created object "
                                                                                 "makes a job")
    if not sqs_url:
        report.line("skip", "sqs", "no --sqs URL given")
        return

    def sqs() -> str:
        import boto3

        match = re.match(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com", sqs_url)
        region = events.sqs_region or (match.group(1) if match else None) or os.environ.get("AWS_DEFAULT_REGION")
        client = boto3.session.Session().client("sqs", endpoint_url=events.sqs_endpoint_url, region_name=region)
        attrs = client.get_queue_attributes(QueueUrl=sqs_url, AttributeNames=["All"])["Attributes"]
        if "RedrivePolicy" not in attrs:
            report.line("WARN", "sqs redrive", "the queue has no redrive policy: a message that can never be "
                                               "handled comes back forever; give it a dead-letter queue")
        return (f"{attrs.get('ApproximateNumberOfMessages', '?')} message(s) waiting, "
                f"visibility timeout {attrs.get('VisibilityTimeout', '?')} s")

    report.run("sqs", sqs)
