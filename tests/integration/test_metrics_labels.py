"""Issue 36, finding 2: nobody, with a key or without, can grow ``/metrics``. Made-up HTTP methods
collapse to ``method="other"`` and unmatched paths to ``route="unmatched"``, so once those series
exist the exposition keeps its size: a second 1,000 made-up methods on random paths, sent to the
stack's real uvicorn (without a key; ``/v1`` ones with the key, so the failed-auth limit of this
address is not drained for the other tests), add no series and no bytes but the counters' digits.
Before the fix the first 1,000 added 1.6 MB (scripts/probe_intake.py)."""

from __future__ import annotations

import re
import secrets
import socket

import httpx
import pytest

pytestmark = pytest.mark.integration

_SAMPLE = re.compile(r"^(plateveil_api_[a-z_]+(?:\{[^}]*\})?) ")


def _series(text: str) -> set[str]:
    return {m.group(1) for line in text.splitlines() if (m := _SAMPLE.match(line))}


def _raw(port: int, method: str, path: str, key: str = "") -> bytes:
    """One request with any method token, as bytes on the wire; the status line back."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n"
                     "Connection: close\r\n\r\n".encode())
        return sock.recv(64)


def _made_up(port: int, key: str, count: int) -> set[bytes]:
    answers = set()
    for n in range(count):
        method = secrets.choice(["X", "Q", "Z", "get", "PROPFIND"]) + secrets.token_hex(4).upper()
        path = secrets.choice([f"/{secrets.token_hex(6)}/{n}", f"/v1/{secrets.token_hex(5)}",
                               "/v1/jobs/" + secrets.token_hex(16), "/review/" + secrets.token_hex(3), "/healthz"])
        answers.add(_raw(port, method, path, key if path.startswith("/v1/") else "")[:12])
    return answers


def test_made_up_methods_and_paths_do_not_grow_the_exposition(stack):
    port = stack.ports["api"]
    metrics_url = stack.api_url + "/metrics"
    start = httpx.get(metrics_url).text
    first = _made_up(port, stack.api_key, 1000)
    before = httpx.get(metrics_url).text
    second = _made_up(port, stack.api_key, 1000)
    after = httpx.get(metrics_url).text
    assert all(a[:10] in (b"HTTP/1.1 4", b"HTTP/1.1 2") for a in first | second), first | second  # served
    assert _series(after) == _series(before)
    assert len(after) - len(before) < 300  # counter digits only (the first 1,000 added 1.6 MB before the fix)
    assert len(before) - len(start) < 10_000  # the one-off "other" / "unmatched" series
    assert 'method="other"' in after and 'route="unmatched"' in after
