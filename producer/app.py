"""The upload service: ``uvicorn producer.app:app`` (OpenAPI at /openapi.json, docs at /docs, both
behind the API key; ``PLATEVEIL_DOCS_ENABLED=false`` removes them).

:class:`producer.guard.RequestGuard` wraps every route: keys, rate limits and body limits are
checked before FastAPI reads a body.

Importing this module reads no settings and connects to nothing; the settings are read once when
the app starts (lifespan), and a bad environment stops it with a message naming the variables.
Tests and tools build their own app with :func:`create_app` and explicit settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

import plateveil
from plateveil.errors import RetryableError
from plateveil.logs import configure_logging
from plateveil.settings import load_settings
from producer import identity
from producer import metrics as api_metrics
from producer.guard import SCOPE_KEY_ID, RequestGuard
from producer.intake.routes import router as events_router
from producer.intake.routes import s3_router
from producer.responses import Health
from producer.review.routes import flag_router, login_router
from producer.review.routes import router as review_router
from producer.routes import router
from producer.services import Services
from producer.settings import ProducerSettings

logger = logging.getLogger(__name__)


def create_app(settings: ProducerSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or load_settings(ProducerSettings)
        configure_logging(current.log_format, current.log_level)
        app.state.services = Services.from_settings(current)
        logger.info("upload service ready: queue=%s originals=%s output=%s storage=%s", current.queue,
                    current.originals_bucket, current.output_bucket, current.storage)
        try:
            yield
        finally:
            await app.state.services.aclose()

    app = FastAPI(title="plateveil upload service", version=plateveil.__version__, lifespan=lifespan,
                  description="Upload car photos; a worker hides their licence plates and writes the "
                              "concealed photo and a JSON sidecar to the output bucket.")
    app.include_router(router)
    app.include_router(s3_router)  # POST /v1/s3-events (producer/intake/: one intake path)
    app.include_router(events_router)  # SNS and MinIO deliveries (producer/intake/)
    app.include_router(flag_router)
    app.include_router(login_router)
    app.include_router(review_router)   # last: it ends with a catch-all for /review/*
    app.add_middleware(RequestGuard)

    @app.exception_handler(RetryableError)
    async def dependency_down(request: Request, exc: RetryableError) -> JSONResponse:
        """Redis or S3 down where a route did not say so itself: 503 + Retry-After, never a 500."""
        logger.warning("%s %s: dependency down: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"temporarily unavailable: {exc}"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz(request: Request) -> JSONResponse:
        """Readiness: Redis answers and both buckets exist (503 otherwise). Says only ok/down;
        with a valid API key also which dependency is down and why."""
        checks = await run_in_threadpool(app.state.services.health)
        healthy = all(v == "ok" for v in checks.values())
        body: dict[str, object] = {"status": "ok" if healthy else "down"}
        if request.scope.get(SCOPE_KEY_ID):
            body["checks"] = checks
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        """Liveness: the process serves requests (does not look at dependencies)."""
        return {"status": "ok"}

    identity.install(app)  # request_id + key_id in the log context and on new jobs
    api_metrics.install(app)  # GET /metrics; its middleware must stay the outermost (added last)
    return app


app = create_app()
