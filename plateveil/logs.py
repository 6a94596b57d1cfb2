"""Logging for every service: JSON lines or text, one set-up at start-up, and a per-job context.

``PLATEVEIL_LOG_FORMAT=json`` writes one JSON object per line (python-json-logger's formatter:
a maintained library that already handles ``extra`` fields, exceptions and non-JSON values), with
``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, the context bound with
:func:`log_context` (``job_id``, ``key_id``, ``model``, ...) and any ``extra={...}`` of the call
(the worker's per-job line adds ``plate_count`` and ``timings_ms``, the stage timings). ``text``
(the default, for local use) writes ``time level logger: message [job_id=... key_id=...]``.

:func:`configure_logging` is called once when a service starts (the upload service's lifespan,
the worker's ``setup_logging`` signal, the CLI); it replaces the root handlers and routes
uvicorn's loggers through the same handler, so access logs come out in the same format.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, TextIO

FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# loggers that come with their own handlers; they are routed through the root one instead
ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.redirected")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("plateveil_log_context", default=_EMPTY)


def _clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v not in (None, "")}


def current_context() -> dict[str, Any]:
    return dict(_context.get())


def bind(**fields: Any) -> None:
    """Add fields to the current context (this task / request / thread copy) until it is reset."""
    _context.set({**_context.get(), **_clean(fields)})


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Fields added to every record logged inside the block (and in thread pools it starts)."""
    token = _context.set({**_context.get(), **_clean(fields)})
    try:
        yield
    finally:
        _context.reset(token)


def push_context(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """:func:`log_context` for code that cannot use a ``with`` block (Celery's prerun/postrun)."""
    return _context.set({**_context.get(), **_clean(fields)})


def pop_context(token: contextvars.Token[Mapping[str, Any]]) -> None:
    try:
        _context.reset(token)
    except ValueError:  # made in another context (a different thread): just clear
        _context.set(_EMPTY)


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (fields the call's ``extra`` set win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get()
        for key, value in ctx.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        record.plateveil_context = ctx
        return True


class TextFormatter(logging.Formatter):
    """The classic line, with the bound context appended as ``[key=value ...]``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = getattr(record, "plateveil_context", None)
        if ctx:
            line += " [" + " ".join(f"{k}={v}" for k, v in ctx.items()) + "]"
        return line


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    reserved = [*RESERVED_ATTRS, "plateveil_context", "color_message", "taskName"]
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"}, reserved_attrs=reserved)


RESERVED_ATTRS = ("args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName", "levelname",
                  "levelno", "lineno", "module", "msecs", "message", "msg", "name", "pathname", "process",
                  "processName", "relativeCreated", "stack_info", "thread", "threadName")


def make_handler(fmt: str, stream: TextIO | None = None) -> logging.Handler:
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; valid: {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(fmt: str = "text", level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Replace the root handlers with one writing ``fmt`` at ``level``; returns that handler."""
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; valid: {', '.join(LEVELS)}")
    handler = make_handler(fmt, stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        for old in list(routed.handlers):
            routed.removeHandler(old)
        routed.propagate = True
    for quiet in ("botocore", "boto3", "urllib3", "httpx", "httpcore", "s3transfer"):
        logging.getLogger(quiet).setLevel(max(logging.WARNING, root.level))
    return handler
