"""JSON and text log lines with the bound job context, and their settings."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from plateveil import logs
from plateveil.settings import CommonSettings, SettingsError, load_settings
from workers.logs import job_fields


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved_handlers:
        root.addHandler(h)
    root.setLevel(saved_level)


def test_json_lines_carry_context_extras_and_exceptions(restore_root):
    out = io.StringIO()
    logs.configure_logging("json", "info", stream=out)
    log = logging.getLogger("plateveil.test")
    with logs.log_context(job_id="j1", key_id="k-abc", model=None):
        log.info("job %s done", "j1", extra={"model": "m@1", "timings_ms": {"detect": 12.5}})
        with logs.log_context(stage="write"):
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")
    log.debug("not shown at INFO")
    log.warning("outside")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 3
    first, second, third = lines
    assert first["message"] == "job j1 done" and first["level"] == "INFO" and first["logger"] == "plateveil.test"
    assert first["job_id"] == "j1" and first["key_id"] == "k-abc" and "model" in first
    assert first["model"] == "m@1" and first["timings_ms"] == {"detect": 12.5}
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert second["stage"] == "write" and second["job_id"] == "j1" and "ValueError: boom" in second["exc_info"]
    assert "job_id" not in third and third["level"] == "WARNING"


def test_text_lines_append_the_context_and_threads_start_clean(restore_root):
    out = io.StringIO()
    logs.configure_logging("text", "DEBUG", stream=out)
    log = logging.getLogger("plateveil.test")
    with logs.log_context(job_id="j2"):
        log.info("hello %d", 1)
        t = threading.Thread(target=lambda: log.info("from a plain thread"))
        t.start()
        t.join()
    text = out.getvalue().splitlines()
    assert text[0].endswith("INFO plateveil.test: hello 1 [job_id=j2]")
    assert text[1].endswith("from a plain thread")


def test_push_and_pop_context():
    token = logs.push_context(job_id="j3", key_id="")
    assert logs.current_context() == {"job_id": "j3"}
    logs.pop_context(token)
    assert logs.current_context() == {}


def test_bad_format_or_level_is_refused():
    with pytest.raises(ValueError, match="unknown log format"):
        logs.configure_logging("xml")
    with pytest.raises(ValueError, match="unknown log level"):
        logs.configure_logging("json", "LOUD")


def test_settings_name_the_bad_variable(monkeypatch):
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLATEVEIL_LOG_FORMAT", "JSON")
    monkeypatch.setenv("PLATEVEIL_LOG_LEVEL", "debug")
    settings = load_settings(CommonSettings)
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
    monkeypatch.setenv("PLATEVEIL_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="PLATEVEIL_LOG_FORMAT"):
        load_settings(CommonSettings)


def test_job_fields_of_a_task_payload():
    assert job_fields("plateveil.conceal_photo", [{"job_id": "j", "key_id": "k-1"}]) == {"job_id": "j", "key_id": "k-1"}
    assert job_fields("other", [{"job_id": "j"}]) == {}
    assert job_fields("plateveil.conceal_photo", []) == {}
