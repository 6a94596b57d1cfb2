"""A small synchronous client of the upload service (httpx).

A 429 (rate limit, the key's share of the queue) or a 503 (a dependency down) is retried after its
``Retry-After`` for up to ``retry_for_s`` seconds in all, then raised like any other error."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from plateveil.schema import JobStatus


class JobTimeoutError(TimeoutError):
    """``wait`` gave up before the job finished."""


class PlateveilClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, retry_for_s: float = 60.0) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                 headers={"Authorization": f"Bearer {api_key}"})
        self.retry_for_s = retry_for_s

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.retry_for_s
        while True:
            resp = self.http.request(method, url, **kwargs)
            left = deadline - time.monotonic()
            if resp.status_code not in (429, 503) or left <= 0:
                return resp
            try:
                wait = float(resp.headers.get("Retry-After", "1"))
            except ValueError:
                wait = 1.0
            time.sleep(min(max(wait, 0.05), 30.0, left))

    def __enter__(self) -> PlateveilClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def _json(resp: httpx.Response) -> dict[str, Any]:
        resp.raise_for_status()
        return resp.json()

    def submit_photo(self, photo: str | Path | bytes, style: str | None = None,
                     metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """Upload a photo (path or bytes); returns the 202 body (job_id, status_url, output keys)."""
        if isinstance(photo, bytes):
            name, data = "photo", photo
        else:
            name, data = Path(photo).name, Path(photo).read_bytes()
        form: dict[str, str] = {}
        if style:
            form["style"] = style
        if metadata:
            import json

            form["metadata"] = json.dumps(metadata)
        return self._json(self._request("POST", "/v1/photos", files={"file": (name, data)}, data=form))

    def submit_s3_object(self, bucket: str, key: str, style: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"bucket": bucket, "key": key}
        if style:
            body["style"] = style
        return self._json(self._request("POST", "/v1/jobs", json=body))

    def status(self, job_id: str) -> dict[str, Any]:
        return self._json(self._request("GET", f"/v1/jobs/{job_id}"))

    def flag(self, job_id: str, reason: str) -> dict[str, Any]:
        """Report a concealed photo for review (e.g. "seller: my plate is visible"); the job goes to the
        top of the review queue. Returns ``{job_id, flagged, flag_count, review_url}``."""
        return self._json(self.http.post(f"/v1/jobs/{job_id}/flag", json={"reason": reason}))

    def wait(self, job_id: str, timeout: float = 60.0, poll: float = 0.1) -> dict[str, Any]:
        """Poll until the job is done or failed; JobTimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.status(job_id)
            if JobStatus(job["status"]).finished:
                return job
            if time.monotonic() >= deadline:
                raise JobTimeoutError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
            time.sleep(poll)

    def health(self) -> dict[str, Any]:
        resp = self.http.get("/healthz")
        return resp.json()
