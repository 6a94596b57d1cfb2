"""The request guard: a pure ASGI middleware in front of every route, run before FastAPI reads
or parses a request body (FastAPI parses Form/File/JSON body parameters before dependencies run,
so a dependency would be too late).

For ``/v1/*`` (but ``/v1/events/sns``, which SNS signs instead) and the API docs it, in this order:

1. checks the bearer key against the stored hashes (``PLATEVEIL_API_KEY_HASHES``): missing or
   wrong -> 401 without reading the body; more than ``auth_fail_burst`` failures from one client
   IP (refilled at ``auth_fail_per_s``) -> 429 + Retry-After;
2. takes a token from the key's bucket (``rate_per_s``, ``rate_burst``) -> 429 + Retry-After;
3. checks ``Content-Length`` against the route's limit -> 413 before any byte is read;
4. reads the body through a counting, timed ``receive``: past the limit -> 413 at once (nothing
   is spooled past it), nothing for ``body_idle_timeout_s`` or not all of it within
   ``body_total_timeout_s`` -> 408. ``/v1/photos`` streams (limit ``max_upload_bytes`` plus
   ``multipart_overhead_bytes``); every other body (at most ``max_json_bytes``; 300 KiB for
   ``/v1/events/*``, SNS messages being up to 256 KiB) is read here first,
   JSON ones scanned for nesting depth and number length, then parsed (422 with the reason for
   any of these), then replayed to the app.

Other paths (``/healthz``, ``/livez``) get the same body limits; a valid key there is noted in
the scope so ``/healthz`` can show details. The key id (never the key) goes to the scope
(:data:`SCOPE_KEY_ID`) for routes, limits and logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plateveil.errors import BrokerError
from producer.apikeys import find_key
from producer.validation import InputError, loads_checked

logger = logging.getLogger(__name__)

SCOPE_KEY_ID = "plateveil.key_id"
PHOTO_PATH = "/v1/photos"
EVENTS_PREFIX = "/v1/events/"
EVENT_BODY_LIMIT = 300 * 1024  # = producer.intake.routes.SNS_MAX_BYTES (SNS: 256 KiB + the envelope)
SIGNED_PATHS = frozenset({"/v1/events/sns"})  # no API key: the SNS signature and topic allow-list instead
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class BodyRefused(HTTPException):
    """A body over its limit (413) or too slow (408); raised from ``receive`` inside the app,
    where FastAPI turns it into the answer, or caught here when raised outside a route."""


def _retry_after(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))


async def answer(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (408, 413) or status >= 500:
        raw.append((b"connection", b"close"))
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyReader:
    """Wraps ``receive``: counts body bytes against ``limit`` and times every wait."""

    def __init__(self, receive: Receive, limit: int, idle_s: float, total_s: float) -> None:
        self._receive = receive
        self.limit = limit
        self.idle_s = idle_s
        self.deadline = time.monotonic() + total_s
        self.total_s = total_s
        self.size = 0
        self.done = False

    async def receive(self) -> Message:
        if self.done:  # body complete: later calls wait for a disconnect, untimed
            return await self._receive()
        timeout = min(self.idle_s, self.deadline - time.monotonic())
        try:
            message = await asyncio.wait_for(self._receive(), timeout=max(timeout, 0.001))
        except TimeoutError:
            slow = self.deadline - time.monotonic() <= 0
            raise BodyRefused(408, f"request body not received within {self.total_s:.0f} s" if slow else
                              f"request body stalled: nothing received for {self.idle_s:.0f} s") from None
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                raise BodyRefused(413, f"request body larger than {self.limit} bytes")
            if not message.get("more_body", False):
                self.done = True
        return message

    async def read_all(self) -> bytes:
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise BodyRefused(400, "client disconnected")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = getattr(scope["app"].state, "services", None)
        if services is None:  # not started (lifespan did not run)
            await answer(send, 503, "service starting", {"Retry-After": "1"})
            return
        settings = services.settings
        path: str = scope["path"]
        headers = Headers(scope=scope)
        protected = (path.startswith("/v1/") or path == "/v1" or path in DOCS_PATHS) and path not in SIGNED_PATHS

        key_id = None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip() and len(token) <= 512:
            key_id = find_key(token.strip(), settings.api_key_hashes)
        if key_id is not None:
            scope[SCOPE_KEY_ID] = key_id
        if protected and key_id is None:
            client = scope.get("client")
            ip = client[0] if client else "unknown"
            ok, wait = await _take(services, "authfail:" + ip, settings.auth_fail_per_s, settings.auth_fail_burst)
            if not ok:
                logger.warning("429 too many failed authentications from %s", ip)
                await answer(send, 429, "too many failed authentications; slow down",
                             {"Retry-After": _retry_after(wait)})
                return
            logger.info("401 %s %s from %s: %s", scope["method"], path, ip,
                        "no bearer key" if not token.strip() else "unknown key")
            await answer(send, 401, "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
            return
        if path in DOCS_PATHS and not settings.docs_enabled:
            await answer(send, 404, "Not Found")
            return
        if protected:
            ok, wait = await _take(services, "key:" + str(key_id), settings.rate_per_s, settings.rate_burst)
            if not ok:
                logger.warning("429 rate limit of key %s", key_id)
                await answer(send, 429, f"rate limit of this key ({settings.rate_per_s:g}/s, burst "
                             f"{settings.rate_burst}) exceeded", {"Retry-After": _retry_after(wait)})
                return

        photo = path.rstrip("/") == PHOTO_PATH
        limit = settings.photo_body_limit if photo else (
            EVENT_BODY_LIMIT if path.startswith(EVENTS_PREFIX) else settings.max_json_bytes)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await answer(send, 400, "invalid Content-Length")
                return
            if int(declared) > limit:
                await answer(send, 413, f"request body larger than {limit} bytes")
                return
        reader = BodyReader(receive, limit, settings.body_idle_timeout_s, settings.body_total_timeout_s)
        inner: Receive = reader.receive
        if not photo and scope["method"] not in _BODYLESS:
            try:
                body = await reader.read_all()
                if "json" in headers.get("content-type", "") and body:
                    loads_checked(body, settings.json_max_depth, settings.json_max_number_chars)
            except BodyRefused as exc:
                await answer(send, exc.status_code, str(exc.detail))
                return
            except InputError as exc:
                await answer(send, exc.status, str(exc))
                return
            inner = _replay(body, reader)
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, inner, tracked_send)
        except BodyRefused as exc:
            if started:
                raise
            await answer(send, exc.status_code, str(exc.detail))


async def _take(services: Any, bucket: str, rate: float, burst: int) -> tuple[bool, float]:
    """A token from a Redis bucket; when Redis is down, let the request through (it fails later
    with 503 where it needs Redis) rather than lock every client out."""
    try:
        result: tuple[bool, float] = await services.limits.take(bucket, rate, burst)
        return result
    except BrokerError:
        logger.warning("rate limiter unavailable (redis); request let through")
        return True, 0.0


def _replay(body: bytes, reader: BodyReader) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await reader.receive()

    return receive
