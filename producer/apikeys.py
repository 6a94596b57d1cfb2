"""API keys, stored hashed: the service keeps ``key_id:sha256hex`` lines, never the keys.

A key is 32 random bytes (``secrets.token_urlsafe``); its SHA-256 is enough as a stored form
because the key itself has 256 bits of entropy (no salt or slow hash is needed against guessing).
The key id names the client in logs, job records, webhooks (``PLATEVEIL_WEBHOOKS``), rate limits,
queue shares and source allowlists; it is not a secret. By default it is :func:`derived_key_id`
(``k-`` + the first 12 hex digits of the key's SHA-256); ``--id`` gives a name instead.
``plateveil keys new [--id ID]`` (:mod:`plateveil_ops.apikeys`) prints a new key and the line to add to
``PLATEVEIL_API_KEY_HASHES``. Imports only the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

KEY_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    """The stored form of ``key``: sha256 hex of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


def derived_key_id(key: str) -> str:
    """The default public id of a key: ``k-`` + 12 hex digits of its SHA-256."""
    return "k-" + hash_key(key)[:12]


def new_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyHash:
    key_id: str
    sha256: str

    def line(self) -> str:
        return f"{self.key_id}:{self.sha256}"


def parse_key_hash(text: str) -> KeyHash:
    """``key_id:sha256hex`` -> KeyHash; ValueError with the reason otherwise."""
    key_id, sep, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if not sep or not KEY_ID.match(key_id):
        raise ValueError(f"expected key_id:sha256hex with key_id [a-z0-9_.-] (up to 63), got {text.strip()[:20]!r}...")
    if not _HEX64.match(digest):
        raise ValueError(f"key {key_id!r}: the hash must be 64 hex digits (sha256)")
    return KeyHash(key_id, digest)


def parse_key_hashes(text: str) -> tuple[KeyHash, ...]:
    """A comma- or newline-separated list of ``key_id:sha256hex``. An id may have several keys
    (rotation: the new key next to the old one keeps the client's id); a key is listed once."""
    items = tuple(parse_key_hash(part) for part in re.split(r"[,\n]", text) if part.strip())
    if len({k.sha256 for k in items}) != len(items):
        raise ValueError("the same key hash is listed twice")
    return items


def find_key(given: str, hashes: Iterable[KeyHash]) -> str | None:
    """The id of the stored hash that ``given`` matches, else None. Compares against every hash
    (no early exit) in constant time, so timing does not tell which one matched."""
    digest = hash_key(given).encode()
    found = None
    for item in hashes:
        if hmac.compare_digest(digest, item.sha256.encode()):
            found = item.key_id
    return found
