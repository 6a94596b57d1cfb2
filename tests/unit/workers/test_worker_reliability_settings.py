"""The worker's reliability settings agree with each other (checked when the worker starts)."""

from __future__ import annotations

import pytest

from plateveil.settings import SettingsError, load_settings
from workers.settings import WorkerSettings


@pytest.fixture(autouse=True)
def _redis(monkeypatch):
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")


def test_defaults_bring_a_dead_workers_job_back_within_two_minutes():
    s = load_settings(WorkerSettings)
    assert s.visibility_timeout_s + s.restore_interval_s <= 120
    assert s.visibility_timeout_s > s.hard_time_limit_s + s.retry_backoff_max_s
    assert s.s3_max_attempts * (s.s3_connect_timeout_s + s.s3_read_timeout_s) < s.soft_time_limit_s
    assert s.retry_window_s >= 300  # an outage of a few minutes ends in success


def test_an_s3_call_that_can_outlast_the_soft_time_limit_is_refused(monkeypatch):
    monkeypatch.setenv("PLATEVEIL_S3_READ_TIMEOUT_S", "15")
    monkeypatch.setenv("PLATEVEIL_S3_MAX_ATTEMPTS", "3")
    with pytest.raises(SettingsError, match="soft_time_limit_s"):
        load_settings(WorkerSettings)
