"""Webhooks: the completion event POSTed to a URL per API key, signed with HMAC-SHA256.

The worker's side of the contract (only the worker sends webhooks): the settings
(:class:`WebhookSettings`, a mixin of :class:`workers.settings.WorkerSettings`, read alone by
``plateveil doctor``), signing and checking, one signed POST, the list of failed deliveries. The
delivery task that uses them is :mod:`workers.webhooks`.

Configuration (worker, ``PLATEVEIL_WEBHOOKS``): a JSON object from key id (see
``producer.identity.key_id_for``) to ``{"url": ..., "secret": ...}``. Jobs submitted with a key
that has no entry send no webhook.

A delivery is ``POST url`` with the completion event as a JSON object (the fields of the Redis
stream entry, all strings, ``docs/schemas/completion-event.v1.json``) and the headers::

    Content-Type: application/json
    X-Plateveil-Event: job.done | job.failed
    X-Plateveil-Delivery: <id>          the same on every retry of one delivery (dedupe on it)
    X-Plateveil-Key-Id: <key id>
    X-Plateveil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes, compares in
constant time and refuses old timestamps (:func:`verify_signature` does all three). Any 2xx is
success; anything else (or no answer) is retried with exponential backoff, and a delivery that
fails every attempt is pushed to the Redis list :data:`FAILED_KEY` with its last error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from plateveil import keys, netguard
from plateveil.settings import ENV_PREFIX

SIGNATURE_HEADER = "X-Plateveil-Signature"
FAILED_KEY = keys.WEBHOOKS_FAILED
FAILED_MAX = 10_000
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """A webhook whose signature header is missing, malformed, stale or wrong."""


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"WebhookTarget(url={self.url!r})"


def parse_targets(value: Any) -> dict[str, WebhookTarget]:
    """``{"k-...": {"url": "https://...", "secret": "..."}}`` (a JSON string or a dict) -> targets."""
    if value in (None, "", {}):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError('expected a JSON object {"<key id>": {"url": ..., "secret": ...}}')
    targets = {}
    for key_id, spec in value.items():
        if isinstance(spec, WebhookTarget):
            targets[str(key_id)] = spec
            continue
        if not isinstance(spec, dict) or not spec.get("url") or not spec.get("secret"):
            raise ValueError(f"webhook of {key_id!r} needs a url and a secret")
        url = str(spec["url"])
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"webhook of {key_id!r}: url must be http(s)://, got {url!r}")
        if len(str(spec["secret"])) < 16:
            raise ValueError(f"webhook of {key_id!r}: secret must be at least 16 characters")
        targets[str(key_id)] = WebhookTarget(url=url, secret=str(spec["secret"]))
    return targets


class WebhookSettings(BaseSettings):
    """The webhook settings (``PLATEVEIL_WEBHOOK*``): a mixin of the worker's settings, and read
    alone by ``plateveil doctor``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    webhooks: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict, repr=False,
        description='JSON {"<key id>": {"url": ..., "secret": ...}}: completion webhooks per API key')
    webhook_max_attempts: int = Field(8, ge=1, description="webhook attempts before it is recorded as failed")
    webhook_backoff_s: float = Field(2.0, gt=0, description="first webhook retry delay; doubles each retry")
    webhook_backoff_max_s: float = Field(60.0, gt=0, description="largest webhook retry delay (under the worker's "
                                                                "visibility timeout, 90 s: a waiting retry is held unacknowledged)")
    webhook_timeout_s: float = Field(5.0, gt=0, description="webhook request timeout")
    webhook_allow_private_urls: bool = Field(False, description="let webhook URLs lead to loopback, private, "
                                             "link-local and other non-global addresses (refused by default: "
                                             "plateveil/netguard.py)")

    @field_validator("webhooks", mode="before")
    @classmethod
    def _parse_webhooks(cls, value: Any) -> Any:
        return parse_targets(value)

    @model_validator(mode="after")
    def _public_urls(self) -> WebhookSettings:
        """What can be refused without DNS at start-up (IP literals, localhost); names are resolved and
        checked again at every delivery."""
        if not self.webhook_allow_private_urls:
            for key_id, target in self.webhooks.items():
                problem = netguard.literal_problem(target.url)
                if problem:
                    raise ValueError(f"webhook of {key_id!r}: {problem}; webhooks may reach only public addresses "
                                     "unless PLATEVEIL_WEBHOOK_ALLOW_PRIVATE_URLS=true")
        return self


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Plateveil-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str | None, body: bytes, *, tolerance_s: float = DEFAULT_TOLERANCE_S,
                     now: float | None = None) -> int:
    """Check a received webhook; returns its timestamp, raises :class:`SignatureError` otherwise."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("signature header has no valid t=") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp {timestamp} is outside the {tolerance_s:.0f} s tolerance")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])):
        raise SignatureError("signature does not match")
    return timestamp


def event_type(fields: dict[str, str]) -> str:
    return f"job.{fields.get('status', 'unknown')}"


def new_delivery_id() -> str:
    return uuid.uuid4().hex


def deliver(target: WebhookTarget, key_id: str, fields: dict[str, str], delivery_id: str, *,
            timeout_s: float = 5.0, now: int | None = None, allow_private: bool = False) -> int:
    """POST one signed delivery; returns the HTTP status; raises ``httpx.HTTPError`` when no answer, or
    (``httpx.ConnectError``) when the URL's host resolves to a non-global address and ``allow_private`` is
    off: then the request goes to the address that was checked (:func:`plateveil.netguard.pinned`)."""
    import httpx

    url: str = target.url
    extra_headers: dict[str, str] = {}
    extensions: dict[str, Any] = {}
    if not allow_private:
        try:
            addresses = netguard.resolve_checked(target.url)
        except netguard.UnsafeURLError as exc:
            raise httpx.ConnectError(f"webhook URL refused: {exc}") from None
        url, extra_headers, extensions = netguard.pinned(target.url, addresses[0])

    body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    timestamp = int(time.time()) if now is None else now
    headers = {"Content-Type": "application/json", "User-Agent": "plateveil-webhooks/1",
               "X-Plateveil-Event": event_type(fields), "X-Plateveil-Delivery": delivery_id,
               "X-Plateveil-Key-Id": key_id, SIGNATURE_HEADER: sign(target.secret, body, timestamp)} | extra_headers
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        resp = client.post(url, content=body, headers=headers, extensions=extensions)
    return resp.status_code


def record_failure(client: Any, *, key_id: str, url: str, delivery_id: str, fields: dict[str, str], attempts: int,
                   error: str, failed_at: str) -> None:
    """Keep a delivery that failed for good (newest first, at most :data:`FAILED_MAX`)."""
    entry = json.dumps({"key_id": key_id, "url": url, "delivery_id": delivery_id, "event": fields,
                        "attempts": attempts, "error": error, "failed_at": failed_at}, sort_keys=True)
    pipe = client.pipeline()
    pipe.lpush(FAILED_KEY, entry)
    pipe.ltrim(FAILED_KEY, 0, FAILED_MAX - 1)
    pipe.execute()


def read_failures(client: Any, count: int = 100) -> list[dict[str, Any]]:
    return [json.loads(e) for e in client.lrange(FAILED_KEY, 0, count - 1)]
