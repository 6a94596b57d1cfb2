"""The reviewers' credential and sessions: ``PLATEVEIL_REVIEW_KEY_HASHES`` (``name:sha256hex,...``, the
format of ``PLATEVEIL_API_KEY_HASHES``, made by ``plateveil keys new --review --id NAME``), never an upload
API key. The service keeps only the keys' hashes.

A reviewer logs in with their name and key (``POST /review/login``). Failed and successful attempts alike
take a token from two Redis token buckets (:class:`producer.limits.Limits`, shared by every replica): one
per client IP and one per reviewer name (any name, known or not, so the answer never tells which names
exist); when either is empty the answer is 429 + ``Retry-After`` and the key is not even compared.

A login opens a server-side session: a random 256-bit token in the cookie (HttpOnly,
``SameSite=Strict``, path ``/review``, ``Secure`` over https or always with
``PLATEVEIL_REVIEW_COOKIE_SECURE=always``) and, in Redis, under the token's SHA-256 (a copy of Redis
holds no usable cookie), the reviewer's name, a fingerprint of the key's hash and the session's CSRF
token, expiring after ``PLATEVEIL_REVIEW_SESSION_TTL_S``. Logging out deletes that record, so the
cookie stops working everywhere at once; a session whose key has since been removed from the
configuration is refused too.

State-changing requests (``POST``) also need ``X-CSRF-Token``: the session's own random token, which only
the pages served to that session carry, and a same-origin ``Origin`` when the browser sends one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from starlette.requests import Request

from plateveil import keys
from plateveil.errors import BrokerError
from producer.apikeys import KeyHash, find_key

COOKIE_NAME = "plateveil_review"
COOKIE_PATH = "/review"
CSRF_HEADER = "x-csrf-token"
SESSION_PREFIX = keys.REVIEW_SESSION_PREFIX
_TOKEN_MAX_CHARS = 128


def fingerprint(key: str) -> str:
    """A short, non-secret name of a key for logs (never enough to find the key)."""
    return hashlib.sha256(b"plateveil-review-key\n" + key.encode()).hexdigest()[:16]


def _session_key(token: str) -> str:
    return SESSION_PREFIX + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Reviewer:
    name: str
    session: str   # the cookie value
    csrf: str      # this session's CSRF token


class ReviewAuth:
    """Checks reviewer keys against their hashes; opens, finds and closes sessions in Redis."""

    def __init__(self, hashes: tuple[KeyHash, ...], ttl_s: int, client: Any) -> None:
        self.hashes = hashes
        self.ttl_s = ttl_s
        self.client = client   # a blocking redis.Redis with decode_responses=True

    @property
    def enabled(self) -> bool:
        return bool(self.hashes)

    def check_key(self, name: str, given: str) -> bool:
        """True when ``given`` is a key of reviewer ``name`` (compared with every hash, constant time)."""
        if not given or len(given) > 512:
            return False
        found = find_key(given, self.hashes)
        return found is not None and hmac.compare_digest(found.encode(), name.encode())

    def _run(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (redis.RedisError, OSError) as exc:
            raise BrokerError(f"redis review session {what} failed: {exc}") from exc

    def open_session(self, name: str, given_key: str) -> str:
        """A new session for a checked key; returns the cookie value."""
        token = secrets.token_urlsafe(32)
        digest = hashlib.sha256(given_key.encode()).hexdigest()
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(_session_key(token), mapping={"name": name, "key": digest[:16], "csrf": secrets.token_hex(32)})
        pipe.expire(_session_key(token), self.ttl_s)
        self._run("open", pipe.execute)
        return token

    def close_session(self, token: str) -> None:
        """Logout: the session's record is deleted, so its cookie no longer works (on any replica)."""
        if token and len(token) <= _TOKEN_MAX_CHARS:
            self._run("close", self.client.delete, _session_key(token))

    def reviewer(self, request: Request) -> Reviewer | None:
        """The logged-in reviewer of ``request`` or None; BrokerError when Redis cannot say."""
        if not self.enabled:
            return None
        token = request.cookies.get(COOKIE_NAME, "")
        if not token or len(token) > _TOKEN_MAX_CHARS:
            return None
        data = self._run("read", self.client.hgetall, _session_key(token))
        if not data or not data.get("csrf"):
            return None   # never opened, expired, or logged out
        name, key = str(data.get("name", "")), str(data.get("key", ""))
        if not any(item.key_id == name and item.sha256[:16] == key for item in self.hashes):
            return None   # the key was removed from the configuration since
        return Reviewer(name, token, str(data["csrf"]))

    def csrf_token(self, reviewer: Reviewer) -> str:
        return reviewer.csrf

    def csrf_ok(self, request: Request, reviewer: Reviewer) -> bool:
        given = request.headers.get(CSRF_HEADER, "")
        return hmac.compare_digest(given.encode(), reviewer.csrf.encode())


def same_origin(request: Request) -> bool:
    """False when the browser names another origin (``Origin`` header); absent (non-browser) passes."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
