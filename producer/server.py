"""uvicorn's h11 protocol with a header-read timeout (issue 36: half-sent requests stayed open forever).

uvicorn times a keep-alive connection only *between* requests (``--timeout-keep-alive``, armed after a
response); a connection that sends half a request line, or drips one header byte at a time, is never
closed: 3,000 such connections stayed open, one for more than 65 s. The body has its own limits
(:class:`producer.guard.BodyReader`), the headers had none. This protocol arms a timer when a request
may begin (a new connection, or the next bytes on a kept-alive one) and disarms it once h11 has read the
whole request head; if the timer fires first the client gets ``408 Request Timeout`` and the connection
is closed. The time counts from the first moment, not since the last byte, so a slow drip does not
extend it. Serve with::

    uvicorn producer.app:app --http producer.server:HeaderTimeoutH11Protocol ...

``PLATEVEIL_HEADER_TIMEOUT_S`` (default 10 s) sets the limit; it is read once, when uvicorn loads the class.
(uvicorn 0.54 takes an import string for ``--http``; gunicorn's ``--timeout`` is a worker watchdog and
hypercorn would be a second server to run and pin, so a 40-line subclass was the smallest fix that works:
measured in docs/operations.md.)
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from plateveil.settings import load_settings
from producer.settings import HeaderTimeoutSettings

logger = logging.getLogger(__name__)

_BODY = b"request headers not received in time"
_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
                   b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


class HeaderTimeoutH11Protocol(H11Protocol):
    header_timeout_s = load_settings(HeaderTimeoutSettings).header_timeout_s

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:   # a request head is (still) coming
            self._arm()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:   # the whole head was read (or the connection failed)
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        logger.info("closing a connection from %s: request headers not received within %.0f s",
                    self.client[0] if self.client else "?", self.header_timeout_s)
        self.transport.write(_TIMEOUT_ANSWER)
        self.transport.close()
