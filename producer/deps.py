"""The FastAPI dependencies every router shares: the app's :class:`~producer.services.Services`,
the caller's key id (``require_api_key`` / ``KeyId``) and the responses an authenticated route
declares. Routers import this module, never each other."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer.guard import SCOPE_KEY_ID
from producer.services import Services

_bearer = HTTPBearer(auto_error=False, description="an API key whose hash is in PLATEVEIL_API_KEY_HASHES")


def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]


def require_api_key(request: Request,
                    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The caller's key id. The guard has checked the key before the body was read; this
    dependency declares the bearer scheme in OpenAPI and refuses a request the guard did not pass."""
    key_id = request.scope.get(SCOPE_KEY_ID)
    if creds is None or key_id is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid API key",
                            headers={"WWW-Authenticate": "Bearer"})
    return str(key_id)


KeyId = Annotated[str, Depends(require_api_key)]
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed body (multipart without a boundary, ...)"},
    401: {"description": "missing or wrong API key"},
    408: {"description": "request body too slow"},
    413: {"description": "request body too large"},
    422: {"description": "invalid input (reason in detail)"},
    429: {"description": "rate limit, failed-auth limit or the key's queue share reached (Retry-After)"},
    503: {"description": "S3 or Redis down (Retry-After)"},
}
