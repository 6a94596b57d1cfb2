"""The review pages (``/review``, server-rendered, behind the reviewer login) and the flag call
(``POST /v1/jobs/{id}/flag``, behind an upload API key).

Every ``/review`` path but the login form needs a reviewer session: without one a page answers a
redirect to the login form and everything else a bare 401. Photos are streamed through the service
from the private buckets (``Cache-Control: private, no-store``), never made public.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import redis
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from plateveil.errors import BadImageError, BrokerError, SourceMissingError, StorageError
from plateveil.imaging import CONTENT_TYPES, sniff_image
from plateveil.schema import STYLES, JobStatus
from producer.deps import AUTH_RESPONSES, require_api_key
from producer.ownership import owns
from producer.review.auth import COOKIE_NAME, COOKIE_PATH, ReviewAuth, Reviewer, fingerprint, same_origin
from producer.review.corrections import CorrectionError, apply_correction, parse_correction
from producer.review.index import PREFIX, QueueFilter, ReviewIndex
from producer.services import Services

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}
_CSP = ("default-src 'none'; img-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_LOGIN_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
LOCK_PREFIX = PREFIX + "lock:"
BROWSER_FORMATS = ("jpeg", "png", "webp", "bmp")
_PRIVATE = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


@dataclass
class Review:
    services: Services
    auth: ReviewAuth
    index: ReviewIndex

    def read_sidecar(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.services.store.get(bucket, key).data)
        except SourceMissingError:
            return None


def review(request: Request) -> Review:
    """This app's review state, built on first use from its services (one per app)."""
    svc: Services = request.app.state.services
    current = getattr(request.app.state, "review", None)
    if current is None or current.services is not svc:
        current = Review(svc, ReviewAuth(svc.settings.review_key_hashes, svc.settings.review_session_ttl_s,
                                         svc.jobs.client),
                         ReviewIndex(svc.jobs, svc.settings.review_index_days))
        request.app.state.review = current
    return current


ReviewDep = Annotated[Review, Depends(review)]


def require_reviewer(request: Request, rv: ReviewDep) -> Reviewer:
    """The logged-in reviewer; a redirect to the login form (pages) or 401 (anything else) without one;
    403 for a POST without the page's CSRF token or from another origin; 503 when Redis cannot say."""
    try:
        reviewer = rv.auth.reviewer(request)
    except BrokerError as exc:
        raise _unavailable(exc) from exc
    if reviewer is None:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise HTTPException(status.HTTP_303_SEE_OTHER, "log in first",
                                headers={"Location": "/review/login?next=" + quote(target, safe="")})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "reviewer login required")
    if request.method not in ("GET", "HEAD") and (not same_origin(request) or not rv.auth.csrf_ok(request, reviewer)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token (reload the page)")
    return reviewer


ReviewerDep = Annotated[Reviewer, Depends(require_reviewer)]

login_router = APIRouter(prefix="/review", include_in_schema=False)
router = APIRouter(prefix="/review", include_in_schema=False, dependencies=[Depends(require_reviewer)])
flag_router = APIRouter(prefix="/v1")


def _unavailable(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"temporarily unavailable: {exc}",
                         headers={"Retry-After": "5"})


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/review") and "//" not in target and "\\" not in target \
        else "/review"


# -- login -----------------------------------------------------------------------------------------
def _login_page(request: Request, rv: Review, next_url: str, error: str = "", code: int = 200) -> HTMLResponse:
    resp = templates.TemplateResponse(request, "login.html", {"next": _safe_next(next_url), "error": error,
                                                              "enabled": rv.auth.enabled}, status_code=code)
    resp.headers["Content-Security-Policy"] = _LOGIN_CSP
    resp.headers.update(_PRIVATE)
    return resp


@login_router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, rv: ReviewDep, next: str = "/review") -> HTMLResponse:
    return _login_page(request, rv, next)


def _client_ip(request: Request) -> str:
    """The client's address as the server sees it: behind a trusted proxy (uvicorn ``--proxy-headers``,
    ``FORWARDED_ALLOW_IPS``) the first untrusted ``X-Forwarded-For`` address, else the peer's."""
    return request.client.host if request.client else "unknown"


async def _login_allowed(rv: Review, ip: str, name: str) -> float:
    """Take a login attempt from the client IP's and the reviewer name's buckets; 0 when allowed, else
    the seconds until the next attempt may be made (both buckets are always charged)."""
    settings = rv.services.settings
    rate = settings.review_login_per_s
    wait = 0.0
    for bucket, burst in (("reviewlogin:ip:" + ip, settings.review_login_burst_per_ip),
                          ("reviewlogin:name:" + name, settings.review_login_burst_per_name)):
        ok, seconds = await rv.services.limits.take(bucket, rate, burst)
        if not ok:
            wait = max(wait, seconds, 1.0)
    return wait


@login_router.post("/login", response_class=HTMLResponse)
async def login(request: Request, rv: ReviewDep, key: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
                next: Annotated[str, Form()] = "/review") -> Response:
    if not same_origin(request):
        return _login_page(request, rv, next, "log in from this site's own login form", 403)
    ip = _client_ip(request)
    account = name.strip().lower()[:64]
    try:
        wait = await _login_allowed(rv, ip, account)
    except BrokerError as exc:
        raise _unavailable(exc) from exc
    if wait:
        logger.warning("review login refused (too many attempts) from %s for %r", ip, account)
        refused = _login_page(request, rv, next, "too many login attempts: wait and try again", 429)
        refused.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return refused
    if not (rv.auth.enabled and rv.auth.check_key(account, key)):
        logger.warning("review login refused from %s for %r", ip, account)
        return _login_page(request, rv, next, "wrong reviewer name or key", status.HTTP_401_UNAUTHORIZED)
    try:
        session = await run_in_threadpool(rv.auth.open_session, account, key)
    except BrokerError as exc:
        raise _unavailable(exc) from exc
    resp = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    resp.set_cookie(COOKIE_NAME, session, max_age=rv.auth.ttl_s, path=COOKIE_PATH, httponly=True, samesite="strict",
                    secure=rv.services.settings.review_cookie_secure == "always" or request.url.scheme == "https")
    logger.info("reviewer %s logged in from %s (key %s)", account, ip, fingerprint(key)[:8])
    return resp


@router.post("/logout")
def logout(request: Request, rv: ReviewDep, reviewer: ReviewerDep) -> Response:
    """Ends the session on the server (its cookie no longer works anywhere) and clears the cookie."""
    try:
        rv.auth.close_session(reviewer.session)
    except BrokerError as exc:
        raise _unavailable(exc) from exc
    logger.info("reviewer %s logged out", reviewer.name)
    resp = RedirectResponse("/review/login", status_code=status.HTTP_303_SEE_OTHER)
    resp.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="strict",
                       secure=rv.services.settings.review_cookie_secure == "always" or request.url.scheme == "https")
    return resp


# -- pages -----------------------------------------------------------------------------------------
def _filter(flagged: bool, no_plate: bool, low_score: bool, model: str, date: str, state: str) -> QueueFilter:
    if date:
        parts = date.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "date: YYYY-MM-DD")
    if state not in ("open", "reviewed", "all"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "state: open, reviewed or all")
    return QueueFilter(flagged=flagged, no_plate=no_plate, low_score=low_score, model=model, date=date, state=state)


def _query(flt: QueueFilter) -> str:
    fields = {"flagged": "1" if flt.flagged else "", "no_plate": "1" if flt.no_plate else "",
              "low_score": "1" if flt.low_score else "", "model": flt.model, "date": flt.date,
              "state": flt.state if flt.state != "open" else ""}
    return urlencode({k: v for k, v in fields.items() if v})


def _page(request: Request, name: str, context: dict[str, Any], code: int = 200) -> HTMLResponse:
    resp = templates.TemplateResponse(request, name, context, status_code=code)
    resp.headers["Content-Security-Policy"] = _CSP
    resp.headers.update(_PRIVATE)
    return resp


def queue_filter(flagged: bool = False, no_plate: bool = False, low_score: bool = False, model: str = "",
                 date: str = "", state: str = "open") -> QueueFilter:
    """The queue's filters from the query string (the job page keeps them for next / previous)."""
    return _filter(flagged, no_plate, low_score, model, date, state)


QueueParams = Annotated[QueueFilter, Depends(queue_filter)]


@router.get("", response_class=HTMLResponse)
def queue_page(request: Request, rv: ReviewDep, reviewer: ReviewerDep, flt: QueueParams,
               page: Annotated[int, Query(ge=1)] = 1) -> HTMLResponse:
    """The queue: flagged jobs first, then the newest; filters in the query string."""
    low = rv.services.settings.review_low_score
    try:
        rv.index.sync(rv.read_sidecar)
        entries = rv.index.queue(flt, low)
        models = rv.index.models()
    except (BrokerError, StorageError) as exc:
        raise _unavailable(exc) from exc
    per_page = 50
    rows = entries[(page - 1) * per_page: page * per_page]
    return _page(request, "queue.html", {
        "reviewer": reviewer.name, "csrf": rv.auth.csrf_token(reviewer), "rows": rows, "total": len(entries),
        "page": page, "pages": max(1, -(-len(entries) // per_page)), "flt": flt, "query": _query(flt),
        "models": models, "low": low})


def _entry(rv: Review, job_id: str) -> dict[str, str]:
    try:
        entry = rv.index.ensure(job_id, rv.read_sidecar)
    except BrokerError as exc:
        raise _unavailable(exc) from exc
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no finished job {job_id!r}")
    return entry


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, rv: ReviewDep, reviewer: ReviewerDep, job_id: str, flt: QueueParams) -> HTMLResponse:
    """The original and the concealed photo side by side, plate polygons drawn, tools to correct."""
    entry = _entry(rv, job_id)
    try:
        sidecar = rv.read_sidecar(entry["output_bucket"], entry["sidecar_key"])
        ids = [e["job_id"] for e in rv.index.queue(flt, rv.services.settings.review_low_score)]
        flags = rv.index.flags(job_id)
    except (BrokerError, StorageError) as exc:
        raise _unavailable(exc) from exc
    if sidecar is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id!r} has no sidecar")
    pos = ids.index(job_id) if job_id in ids else -1
    query = _query(flt)
    suffix = f"?{query}" if query else ""
    prev_url = f"/review/jobs/{ids[pos - 1]}{suffix}" if pos > 0 else ""
    next_url = f"/review/jobs/{ids[pos + 1]}{suffix}" if 0 <= pos < len(ids) - 1 else ""
    revision = len(sidecar.get("corrections") or [])
    data = {"job_id": job_id, "revision": revision, "width": sidecar["image"]["width"],
            "height": sidecar["image"]["height"], "style": sidecar.get("style"), "plates": sidecar.get("plates", []),
            "styles": list(STYLES), "next": next_url, "prev": prev_url, "queue": f"/review{suffix}",
            "corrections_url": f"/review/api/jobs/{job_id}/corrections", "accept_url": f"/review/api/jobs/{job_id}/accept"}
    return _page(request, "job.html", {
        "reviewer": reviewer.name, "csrf": rv.auth.csrf_token(reviewer), "entry": entry, "sidecar": sidecar,
        "data": data, "flags": flags, "revision": revision, "position": pos + 1, "count": len(ids), "query": query,
        "low": rv.services.settings.review_low_score})


def _photo(rv: Review, bucket: str, key: str) -> Response:
    try:
        obj = rv.services.store.get(bucket, key)
    except SourceMissingError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "photo not found") from exc
    except StorageError as exc:
        raise _unavailable(exc) from exc
    fmt = sniff_image(obj.data)
    if fmt in BROWSER_FORMATS:
        return Response(obj.data, media_type=CONTENT_TYPES[fmt], headers=_PRIVATE)
    # a TIFF original (browsers do not show it): upright pixels as PNG, as the pipeline saw them
    from plateveil.imaging import decode, encode

    try:
        png = encode(decode(obj.data).image_bgr, "png")
    except BadImageError as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"cannot show this photo: {exc}") from exc
    return Response(png, media_type="image/png", headers=_PRIVATE)


@router.get("/jobs/{job_id}/original")
async def original_photo(rv: ReviewDep, job_id: str) -> Response:
    """The original, streamed from the private originals bucket."""
    entry = await run_in_threadpool(_entry, rv, job_id)
    return await run_in_threadpool(_photo, rv, entry["source_bucket"], entry["source_key"])


@router.get("/jobs/{job_id}/concealed")
async def concealed_photo(rv: ReviewDep, job_id: str) -> Response:
    entry = await run_in_threadpool(_entry, rv, job_id)
    return await run_in_threadpool(_photo, rv, entry["output_bucket"], entry["output_key"])


@router.post("/api/jobs/{job_id}/corrections")
async def correct(request: Request, rv: ReviewDep, reviewer: ReviewerDep, job_id: str) -> dict[str, Any]:
    """``{revision, add: [[[x,y] x4], ...], remove: [index, ...], style?, note?}``: re-render the
    concealed photo with the corrected plates; 409 when the job changed since the page was loaded."""
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "expected a JSON body") from None
    try:
        correction = parse_correction(body)
    except CorrectionError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    entry = await run_in_threadpool(_entry, rv, job_id)

    def work() -> dict[str, Any]:
        # one correction of a job at a time (the revision check then sees the other's sidecar)
        lock = rv.services.jobs.client.lock(LOCK_PREFIX + job_id, timeout=120, blocking_timeout=0)
        if not lock.acquire():
            raise CorrectionError("someone is saving a correction of this job right now: reload it", status=409)
        try:
            sidecar = apply_correction(rv.services.store, rv.services.jobs, entry, correction, reviewer.name,
                                       jpeg_quality=rv.services.settings.jpeg_quality)
        finally:
            try:
                lock.release()
            except redis.RedisError:   # expired meanwhile (a very slow save): nothing to release
                pass
        from producer.review.index import summary_of

        rv.index.mark_reviewed(job_id, reviewer.name, {
            **summary_of(sidecar["plates"]), "style": sidecar["style"], "corrected_at": sidecar["corrected_at"],
            "corrected_by": reviewer.name, "corrections": str(len(sidecar["corrections"]))})
        return sidecar

    try:
        sidecar = await run_in_threadpool(work)
    except CorrectionError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except SourceMissingError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except (BrokerError, StorageError) as exc:
        raise _unavailable(exc) from exc
    return {"job_id": job_id, "revision": len(sidecar["corrections"]), "plates": sidecar["plates"],
            "plate_count": sidecar["plate_count"], "style": sidecar["style"],
            "correction": sidecar["corrections"][-1] | {"previous_plates": None}}


@router.post("/api/jobs/{job_id}/accept")
def accept(rv: ReviewDep, reviewer: ReviewerDep, job_id: str) -> dict[str, Any]:
    """The concealment is right as it is: the job leaves the open queue and its flags are cleared."""
    _entry(rv, job_id)
    try:
        rv.index.mark_reviewed(job_id, reviewer.name, {"accepted": "1"})
    except BrokerError as exc:
        raise _unavailable(exc) from exc
    return {"job_id": job_id, "reviewed_by": reviewer.name}


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                    headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"})


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
def not_found(rest: str) -> Response:
    """Unknown /review paths: 404, but only to a logged-in reviewer (the router's dependency)."""
    raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")


# -- flags from outside ------------------------------------------------------------------------------
class FlagRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why the photo needs a look (shown to reviewers)")


class Flagged(BaseModel):
    job_id: str
    flagged: bool
    flag_count: int
    review_url: str


@flag_router.post("/jobs/{job_id}/flag", status_code=status.HTTP_202_ACCEPTED, response_model=Flagged,
                  responses={**AUTH_RESPONSES, 404: {"description": "unknown job, or another key's"},
                             409: {"description": "job not done"}})
def flag_job(request: Request, rv: ReviewDep, key_id: Annotated[str, Depends(require_api_key)], job_id: str,
             body: FlagRequest) -> Flagged:
    """Report a concealed photo (e.g. a seller says the plate is visible): the job goes to the top of
    the review queue with the reason. Only the key that made the job may flag it (404 for any
    other, as for an unknown job; while its status record lives, ``PLATEVEIL_JOB_TTL_S``)."""
    reason = " ".join(body.reason.split())
    if not reason:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "reason must not be blank")
    try:
        record = rv.services.jobs.get(job_id) if len(job_id) <= 64 and job_id.isalnum() else None
        if record is None or not owns(record, key_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id[:64]!r}")
        entry = rv.index.ensure(job_id, rv.read_sidecar)
        if entry is None:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"job {job_id!r} is {record.status.value}; only done jobs can be flagged"
                                if record.status != JobStatus.DONE else f"job {job_id!r} cannot be flagged")
        auth = request.headers.get("authorization", "")
        count = rv.index.flag(job_id, reason, by="api-key:" + fingerprint(auth.removeprefix("Bearer ").strip())[:8])
    except BrokerError as exc:
        raise _unavailable(exc) from exc
    logger.info("job %s flagged (%d): %s", job_id, count, reason)
    return Flagged(job_id=job_id, flagged=True, flag_count=count,
                   review_url=str(request.base_url).rstrip("/") + f"/review/jobs/{job_id}")
