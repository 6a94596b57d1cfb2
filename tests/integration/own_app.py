"""An upload service of a test's own, with small limits, on the session stack's Redis and S3:
built in-process (:func:`own_app`) and called through httpx's ASGI transport (:func:`run`), the
same code as the stack's API. Its keys have fresh ids, so their rate buckets and queue shares
are their own."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import httpx

from plateveil_ops.stack import ORIGINALS_BUCKET
from producer.apikeys import hash_key


def own_app(stack: Any, **overrides: Any) -> tuple[Any, dict[str, str]]:
    """(app, {key id: key}) with two keys; ``overrides`` are ProducerSettings fields."""
    from producer.app import create_app
    from producer.settings import ProducerSettings

    keys = {f"t{secrets.token_hex(3)}": secrets.token_urlsafe(16) for _ in range(2)}
    env = stack.env
    base: dict[str, Any] = dict(
        redis_url=env["PLATEVEIL_REDIS_URL"], s3_endpoint_url=env["PLATEVEIL_S3_ENDPOINT_URL"],
        s3_region=env["PLATEVEIL_S3_REGION"], s3_access_key_id=env["PLATEVEIL_S3_ACCESS_KEY_ID"],
        s3_secret_access_key=env["PLATEVEIL_S3_SECRET_ACCESS_KEY"], s3_max_attempts=1, s3_connect_timeout_s=1,
        api_key_hashes=",".join(f"{kid}:{hash_key(k)}" for kid, k in keys.items()),
        source_allow={"*": (ORIGINALS_BUCKET + "/",)})
    settings = ProducerSettings(**(base | overrides))
    return create_app(settings), keys


def run(app: Any, body: Callable[[httpx.AsyncClient], Any], client_ip: str = "127.0.0.1",
        heads: list[int] | None = None) -> Any:
    """``await body(http)`` inside the app's lifespan; ``heads[0]`` counts the S3 HEADs it makes."""
    async def main() -> Any:
        async with app.router.lifespan_context(app):
            if heads is not None:
                store = app.state.services.store
                real_head = store.head

                def counting_head(bucket: str, key: str) -> Any:
                    heads[0] += 1
                    return real_head(bucket, key)

                store.head = counting_head
            transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
                return await body(http)
    return asyncio.run(main())
