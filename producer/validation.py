"""Checks of client input that run before anything talks to S3 or Redis, and the scrubbing of
text that leaves the service. Plain functions over plain values; each raises :class:`InputError`
(a 4xx with a clear reason) for bad input.

* S3 bucket names and keys (the S3 naming rules, so botocore never sees a bad one and a bad name
  is a 422, not a 503);
* JSON text: nesting depth and number literal length checked by a linear scan *before* parsing
  (a 100,000-deep array or a 5,000-digit number must not reach ``json.loads``);
* metadata fields (names, values: printable ASCII, no CR/LF - they become S3 headers);
* :func:`scrub`: removes URLs, host:port pairs, IP addresses and Python object reprs from text
  shown to clients (dependency errors, job errors).
"""

from __future__ import annotations

import json
import re
from typing import Any

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_META_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
META_MAX_BYTES = 2048
MAX_KEY_BYTES = 1024


class InputError(ValueError):
    """Bad client input; ``status`` is the HTTP status to answer with (422 unless said)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def check_bucket(name: str) -> str:
    """S3 bucket naming rules: 3-63 of [a-z0-9.-], alphanumeric at both ends, no '..', not an IP."""
    if not isinstance(name, str) or not _BUCKET.match(name) or ".." in name or _IPV4.match(name) \
            or ".-" in name or "-." in name:
        raise InputError("invalid bucket name: 3-63 characters of a-z, 0-9, '.' and '-', starting and "
                         "ending with a letter or digit")
    return name


def check_key(key: str) -> str:
    """An object key: 1-1024 UTF-8 bytes, no control characters, no '.'/'..' path segments."""
    if not isinstance(key, str) or not key:
        raise InputError("invalid object key: empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InputError(f"invalid object key: longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in key):
        raise InputError("invalid object key: control characters")
    if key.startswith("/") or any(seg in (".", "..") for seg in key.split("/")):
        raise InputError("invalid object key: no leading '/' and no '.' or '..' segments")
    return key


def parse_source(entry: str) -> tuple[str, str]:
    """An allowlist entry ``bucket`` or ``bucket/prefix`` -> (bucket, prefix); ValueError if bad."""
    bucket, _, prefix = entry.partition("/")
    try:
        check_bucket(bucket)
    except InputError:
        raise ValueError(f"invalid bucket in source {entry!r}") from None
    return bucket, prefix


def source_allowed(bucket: str, key: str, sources: tuple[tuple[str, str], ...]) -> bool:
    return any(bucket == b and key.startswith(p) for b, p in sources)


def check_json_text(text: bytes | str, max_depth: int, max_number_chars: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` or with a number literal longer than
    ``max_number_chars``, by a linear scan that does not parse (so it cannot recurse)."""
    data = text.encode() if isinstance(text, str) else text
    depth = 0
    in_string = escape = False
    run = 0
    for byte in data:
        if in_string:
            if escape:
                escape = False
            elif byte == 0x5C:  # backslash
                escape = True
            elif byte == 0x22:
                in_string = False
            continue
        if byte == 0x22:
            in_string, run = True, 0
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            run = 0
            if depth > max_depth:
                raise InputError(f"JSON nested deeper than {max_depth} levels")
        elif byte in (0x5D, 0x7D):
            depth -= 1
            run = 0
        elif 0x30 <= byte <= 0x39 or byte in (0x2D, 0x2B, 0x2E, 0x65, 0x45):  # digits - + . e E
            run += 1
            if run > max_number_chars:
                raise InputError(f"JSON number longer than {max_number_chars} characters")
        else:
            run = 0


def loads_checked(text: bytes | str, max_depth: int, max_number_chars: int) -> Any:
    """``json.loads`` after :func:`check_json_text`; InputError for anything unparsable."""
    check_json_text(text, max_depth, max_number_chars)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, int digit limit
        raise InputError(f"invalid JSON: {str(exc)[:120]}") from None


def check_metadata(meta: Any) -> dict[str, str]:
    """A JSON object of short fields -> {name: str}; names [a-z0-9_-], values printable ASCII scalars."""
    if not isinstance(meta, dict):
        raise InputError("metadata must be a JSON object")
    out = {}
    for name, value in meta.items():
        if not _META_NAME.match(str(name)) or isinstance(value, dict | list) or value is None:
            raise InputError(f"bad metadata field {str(name)[:64]!r}: names are [a-z0-9_-], values scalars")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not all(32 <= ord(c) < 127 for c in text):
            raise InputError(f"bad metadata field {name!r}: values must be printable ASCII "
                             "(no CR, LF or other control characters)")
        out[str(name)] = text
    if len(json.dumps(out).encode()) > META_MAX_BYTES:
        raise InputError(f"metadata must be at most {META_MAX_BYTES} bytes")
    return out


_SCRUBS = (
    (re.compile(r"<[^<>]{0,200}? at 0x[0-9a-fA-F]+>"), "<object>"),
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"), "<endpoint>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<host>"),
    (re.compile(r"\[[0-9a-fA-F:]+\](?::\d+)?"), "<host>"),
    (re.compile(r"\b[a-zA-Z0-9][a-zA-Z0-9.-]*:\d{2,5}\b"), "<host>"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "<address>"),
)


def scrub(text: str | None, limit: int = 300) -> str | None:
    """Text with endpoint URLs, host:port, IPs and object reprs replaced; at most ``limit`` chars."""
    if text is None:
        return None
    for pattern, repl in _SCRUBS:
        text = pattern.sub(repl, text)
    return text if len(text) <= limit else text[:limit] + "..."
