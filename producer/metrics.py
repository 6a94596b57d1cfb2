"""Prometheus metrics of the upload service, served at ``GET /metrics`` (text exposition format).

* ``plateveil_api_requests_total{method,route,status}`` and
  ``plateveil_api_request_duration_seconds{method,route}``: every HTTP request, labelled by the
  route *template* (``/v1/jobs/{job_id}``, never the raw path; ``unmatched`` for paths no route
  knows) and the method (the standard ones; anything else is ``other``), so no client, with a key
  or without, can add label values: the label set is bounded by routes x methods x statuses;
* ``plateveil_api_upload_bytes``: request body bytes of the photo uploads the service accepted;
* ``plateveil_api_rejects_total{route,reason}``: requests answered 4xx/5xx, by reason
  (``unauthorized``, ``too_large``, ``unsupported_media_type``, ``invalid``, ``not_found``,
  ``rate_limited``, ``unavailable``, ...);
* ``plateveil_queue_depth``, ``plateveil_queue_oldest_job_age_seconds``, ``plateveil_queue_up``:
  read from Redis at each scrape (:class:`plateveil.metrics.QueueCollector`).

Everything is measured by one pure ASGI middleware (:class:`MetricsMiddleware`), so the routes
need no metric code and requests refused before a route runs (an auth middleware, a body limit)
are counted too, as long as this middleware is the outermost one (:func:`install` adds it last).
Each app has its own registry (tests build several apps in one process). Run one uvicorn process
per container; with ``uvicorn --workers N`` set ``PROMETHEUS_MULTIPROC_DIR`` (an empty folder) and
the service aggregates its processes' files instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from plateveil.metrics import QueueCollector

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REQUESTS = "plateveil_api_requests_total"
REQUEST_DURATION = "plateveil_api_request_duration_seconds"
UPLOAD_BYTES = "plateveil_api_upload_bytes"
REJECTS = "plateveil_api_rejects_total"
UPLOAD_ROUTE = "/v1/photos"
METRICS_PATH = "/metrics"

REJECT_REASONS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 408: "timeout", 409: "conflict", 411: "length_required",
                  413: "too_large", 415: "unsupported_media_type", 422: "invalid", 429: "rate_limited",
                  500: "internal_error", 502: "bad_gateway", 503: "unavailable", 504: "timeout"}


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


def method_label(method: str) -> str:
    """The method as a label value: one of :data:`METHODS`, else ``other`` (made-up methods are many)."""
    return method if method in METHODS else OTHER_METHOD


def reject_reason(status: int) -> str:
    return REJECT_REASONS.get(status, "client_error" if status < 500 else "server_error")


class ApiMetrics:
    """The upload service's metric objects, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(REQUESTS.removesuffix("_total"), "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.duration = Histogram(REQUEST_DURATION, "HTTP request duration by route template",
                                  ["method", "route"], registry=self.registry,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.upload_bytes = Histogram(UPLOAD_BYTES, "request body bytes of accepted photo uploads",
                                      registry=self.registry,
                                      buckets=(16e3, 64e3, 256e3, 512e3, 1e6, 2e6, 4e6, 8e6, 16e6, 32e6))
        self.rejects = Counter(REJECTS.removesuffix("_total"), "requests refused (4xx/5xx) by reason",
                               ["route", "reason"], registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float, body_bytes: int) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)
        if status >= 400:
            self.rejects.labels(route, reject_reason(status)).inc()
        elif route == UPLOAD_ROUTE and method == "POST":
            self.upload_bytes.observe(body_bytes)


def route_template(app: Any, scope: Scope) -> str:
    """The template of the route that handled (or would handle) ``scope``; ``unmatched`` if none."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    return _template_in(getattr(app, "routes", ()), scope) or "unmatched"


def _template_in(routes: Any, scope: Scope) -> str | None:
    """The first route of ``routes`` matching ``scope``, looking into included routers (FastAPI
    keeps ``include_router`` ones as wrappers without a path). Needed for answers given before
    routing (the request guard's 401/413/429)."""
    for candidate in routes:
        inner = getattr(candidate, "original_router", None)
        if getattr(candidate, "path", None) is None and inner is not None:
            found = _template_in(getattr(inner, "routes", ()), scope)
            if found:
                return found
            continue
        match, _ = candidate.matches(scope)
        if match != Match.NONE:
            return str(getattr(candidate, "path", "unmatched"))
    return None


class MetricsMiddleware:
    """Pure ASGI middleware: times each HTTP request, counts its body bytes, notes its status."""

    def __init__(self, app: Any, metrics: ApiMetrics, router_app: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.router_app = router_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception escaping the app ends as a 500
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, counting_receive, status_send)
        finally:
            route = route_template(self.router_app, scope)
            if route != METRICS_PATH:
                self.metrics.observe(method_label(scope.get("method", "GET")), route, status,
                                     time.perf_counter() - started,
                                     received or _content_length(scope))


def _content_length(scope: Scope) -> int:
    """The declared body size, for requests whose body the app did not read."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0


def exposition_registry(app: FastAPI, metrics: ApiMetrics) -> CollectorRegistry:
    """What ``/metrics`` serves: this process's metrics (or all processes' in multiprocess mode) and
    the queue read from Redis through the service's own client."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(metrics.registry))

    class _LazyQueue(QueueCollector):
        def collect(self) -> Any:
            services = getattr(app.state, "services", None)
            if services is None:
                return iter(())
            self.client, self.queue = services.jobs.client, services.settings.queue
            return super().collect()

    registry.register(_LazyQueue(None, ""))
    return registry


class _Forward:
    """Collects another registry's metrics (so /metrics can add the queue without touching it)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        return self.source.collect()


def install(app: FastAPI) -> ApiMetrics:
    """Add the middleware (outermost) and ``GET /metrics`` to ``app``; returns its metrics."""
    metrics = ApiMetrics()
    app.state.metrics = metrics
    registry = exposition_registry(app, metrics)

    async def metrics_endpoint(request: Request) -> Response:
        from fastapi.concurrency import run_in_threadpool

        body = await run_in_threadpool(generate_latest, registry)  # the queue read blocks on Redis
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_route(METRICS_PATH, metrics_endpoint, include_in_schema=False)
    app.add_middleware(MetricsMiddleware, metrics=metrics, router_app=app.router)
    return metrics
