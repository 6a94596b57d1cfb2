"""The reviewers' credential: ``PLATEVEIL_REVIEW_KEYS`` (``NAME:KEY,...``), never an upload API key.

A reviewer logs in once with their key (``POST /review/login``); the service answers with a signed
session cookie (itsdangerous, HMAC-SHA256, timestamped): HttpOnly, ``SameSite=Strict``, path ``/review``,
``Secure`` over https. The cookie names the reviewer and a fingerprint of their key, and is checked on
every request under ``/review``: expired, tampered, or made with a key that has since been removed, it is
refused. The signing secret is derived from the configured keys, so every replica agrees without
another setting and rotating the keys ends every session.

State-changing requests (``POST``) also need ``X-CSRF-Token``: an HMAC of the session cookie that
only the pages served to that session carry, and a same-origin ``Origin`` when the browser sends one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

COOKIE_NAME = "plateveil_review"
COOKIE_PATH = "/review"
CSRF_HEADER = "x-csrf-token"
MIN_KEY_CHARS = 12
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def parse_reviewers(entries: tuple[str, ...]) -> dict[str, str]:
    """``("alice:KEY", ...)`` -> ``{KEY: "alice"}``; ValueError naming the bad entry (never its key)."""
    out: dict[str, str] = {}
    for i, entry in enumerate(entries, 1):
        name, sep, key = entry.partition(":")
        if not sep or not _NAME.match(name):
            raise ValueError(f"review key entry {i} must be NAME:KEY with NAME of [A-Za-z0-9._@-] (at most 64)")
        if len(key) < MIN_KEY_CHARS:
            raise ValueError(f"review key of {name!r} is shorter than {MIN_KEY_CHARS} characters")
        if key in out:
            raise ValueError(f"review key of {name!r} is also the key of {out[key]!r}")
        out[key] = name
    return out


def fingerprint(key: str) -> str:
    return hashlib.sha256(b"plateveil-review-key\n" + key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Reviewer:
    name: str
    session: str   # the cookie value, for the CSRF token


class ReviewAuth:
    """Checks keys and sessions for one set of reviewer keys."""

    def __init__(self, entries: tuple[str, ...], ttl_s: int) -> None:
        self.reviewers = parse_reviewers(entries)
        self.ttl_s = ttl_s
        self._fingerprints = {fingerprint(k): name for k, name in self.reviewers.items()}
        secret = hashlib.sha256(b"plateveil-review-session\n" + "\n".join(sorted(self.reviewers)).encode()).digest()
        self._secret = secret
        self._signer = URLSafeTimedSerializer(secret, salt="plateveil-review")

    @property
    def enabled(self) -> bool:
        return bool(self.reviewers)

    def check_key(self, given: str) -> str | None:
        """The reviewer's name for a correct key, else None (compared with every key, no early exit)."""
        found = None
        for key, name in self.reviewers.items():
            if hmac.compare_digest(given.encode(), key.encode()):
                found = name
        return found

    def session_for(self, given_key: str) -> str:
        name = self.reviewers[given_key]
        return self._signer.dumps({"n": name, "k": fingerprint(given_key)})

    def reviewer(self, request: Request) -> Reviewer | None:
        """The logged-in reviewer of ``request`` or None."""
        if not self.enabled:
            return None
        value = request.cookies.get(COOKIE_NAME)
        if not value:
            return None
        try:
            data = self._signer.loads(value, max_age=self.ttl_s)
        except BadSignature:
            return None
        if not isinstance(data, dict) or self._fingerprints.get(str(data.get("k"))) != data.get("n"):
            return None   # the key was removed (or the cookie is not ours)
        return Reviewer(str(data["n"]), value)

    def csrf_token(self, reviewer: Reviewer) -> str:
        return hmac.new(self._secret, b"csrf\n" + reviewer.session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, reviewer: Reviewer) -> bool:
        given = request.headers.get(CSRF_HEADER, "")
        return hmac.compare_digest(given.encode(), self.csrf_token(reviewer).encode())


def same_origin(request: Request) -> bool:
    """False when the browser names another origin (``Origin`` header); absent (non-browser) passes."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
