"""Who made a request, for logs, job records and webhooks: the *key id* of the API key used.

A key id names a key without revealing it: the id its entry in ``PLATEVEIL_API_KEY_HASHES`` gives
it (``plateveil keys new`` uses ``k-`` + the first 12 hex digits of the key's SHA-256 unless told a
name). It is what ``PLATEVEIL_WEBHOOKS`` is keyed by and what the logs and job records carry (never
the key). :class:`RequestContextMiddleware` binds ``key_id`` (only for a key the service accepts) and a
``request_id`` (the caller's ``X-Request-ID`` or a new one, echoed in the response) to the log
context and to :data:`current_key_id`, which :meth:`producer.services.Services.new_job` stamps on
each job. The authentication itself stays in ``producer.deps.require_api_key``; a later
authentication scheme with its own key ids only has to set ``scope["state"]["key_id"]`` before this
middleware's inner app runs, or replace :func:`key_id_for`.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from plateveil import logs
from producer.apikeys import derived_key_id, find_key

Scope = MutableMapping[str, Any]

current_key_id: contextvars.ContextVar[str] = contextvars.ContextVar("plateveil_key_id", default="")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def key_id_for(key: str) -> str:
    """The default public id of an API key: ``k-`` + 12 hex digits of its SHA-256."""
    return derived_key_id(key)


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class RequestContextMiddleware:
    """Binds ``request_id`` and the accepted key's ``key_id`` for the rest of the request."""

    def __init__(self, app: Any, resolve_key: Callable[[str], str | None]) -> None:
        self.app = app
        self.resolve_key = resolve_key

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for n, v in scope.get("headers", ()) if n == b"x-request-id"), "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = bearer_token(scope)
        key_id = (self.resolve_key(token) or "") if token else ""
        key_token = current_key_id.set(key_id)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            with logs.log_context(request_id=request_id, key_id=key_id):
                await self.app(scope, receive, send_with_id)
        finally:
            current_key_id.reset(key_token)


def install(app: Any) -> None:
    """Add the middleware; keys are matched against the running service's stored hashes."""

    def resolve(token: str) -> str | None:
        services = getattr(app.state, "services", None)
        if services is None or len(token) > 512:
            return None
        return find_key(token, services.settings.api_key_hashes)

    app.add_middleware(RequestContextMiddleware, resolve_key=resolve)
