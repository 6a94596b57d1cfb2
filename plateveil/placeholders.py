"""Placeholder secrets refused at start-up: the example files' values must never reach a running service.

``deploy/k8s/secret.example.yaml`` and the docs show values such as ``CHANGE-ME``,
``client-a:CHANGE-ME-64-HEX`` or ``moderator1:CHANGE-ME-REVIEW-KEY-1``; a copy applied unedited would
otherwise start a service with a guessable credential (issue 36: ``CHANGE-ME-REVIEW-KEY-1`` was accepted
as a reviewer key). :func:`placeholder_problem` names what is wrong with a value, or None. It catches the
words (``CHANGE-ME``, ``changeme``, ``replace-me``, ``<...>``), the SHA-256 of the example values and of a
few words nobody should use (so the hash of a placeholder is refused too), and hashes that are not random
at all (``000...0``). Imports only the standard library.
"""

from __future__ import annotations

import hashlib
import re

_WORDS = re.compile(r"change[-_ ]?me|replace[-_ ]?me|<[^>]*>|x{8,}|your[-_ ]?(key|secret|password)", re.IGNORECASE)
# the example files' values and a few words nobody should use as a key
EXAMPLE_VALUES = ("", "CHANGE-ME", "CHANGE-ME-REVIEW-KEY-1", "CHANGE-ME-REVIEW-KEY-2", "CHANGE-ME-64-HEX",
                  "changeme", "change-me", "password", "secret", "reviewer", "review", "admin", "test", "example",
                  "plateveil")
_EXAMPLE_HASHES = frozenset(hashlib.sha256(v.encode()).hexdigest() for v in EXAMPLE_VALUES)


def placeholder_problem(value: str) -> str | None:
    """Why ``value`` (a secret, a key hash, a URL with a password) looks like a placeholder, else None."""
    if _WORDS.search(value):
        return "contains a placeholder from the example files (CHANGE-ME, <...>, ...)"
    lowered = value.strip().lower()
    if lowered in _EXAMPLE_HASHES:
        return "is the SHA-256 of an example value"
    if re.fullmatch(r"[0-9a-f]{64}", lowered) and len(set(lowered)) <= 4:
        return "is not a real SHA-256 (too few distinct digits)"
    return None
