"""The worker's logging: configured once from ``PLATEVEIL_LOG_FORMAT`` / ``PLATEVEIL_LOG_LEVEL``
(Celery's ``setup_logging`` signal: with a receiver connected Celery leaves the logging set-up to
us, so ``--loglevel`` is not used), and every line logged while a job runs carries its ``job_id``
and ``key_id`` (bound at ``task_prerun``, dropped at ``task_postrun``), whatever module logs it."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from plateveil import logs
from plateveil.schema import TASK_CONCEAL

if TYPE_CHECKING:
    from workers.settings import WorkerSettings

_tokens: dict[str, contextvars.Token[Any]] = {}


def job_fields(task_name: str, args: Any) -> dict[str, str]:
    """``job_id`` / ``key_id`` of a concealment task's payload (empty for other tasks)."""
    if task_name != TASK_CONCEAL or not args or not isinstance(args[0], dict):
        return {}
    payload = args[0]
    return {"job_id": str(payload.get("job_id") or ""), "key_id": str(payload.get("key_id") or "")}


def install(settings: WorkerSettings) -> None:
    from celery.signals import setup_logging, task_postrun, task_prerun

    def _setup(**_: Any) -> None:
        logs.configure_logging(settings.log_format, settings.log_level)

    def _prerun(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
        fields = job_fields(getattr(task, "name", ""), args)
        if fields:
            _tokens[task_id] = logs.push_context(**fields)

    def _postrun(task_id: str = "", **_: Any) -> None:
        token = _tokens.pop(task_id, None)
        if token is not None:
            logs.pop_context(token)

    setup_logging.connect(_setup, weak=False)
    task_prerun.connect(_prerun, weak=False)
    task_postrun.connect(_postrun, weak=False)
