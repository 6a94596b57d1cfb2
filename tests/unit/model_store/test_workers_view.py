"""``plateveil models workers`` lines and ``models list`` metrics from plain state values; the
``--wait`` durations of promote/rollback."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from model_store.commands import describe_worker, validation_metrics
from model_training.registry_cli import _seconds


def _now(shift_s: float = 0.0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=shift_s)).isoformat(timespec="milliseconds")


STATE = {"production": "1.10.1", "source": "registry", "production_since": "2026-12-01T18:09:59.647+00:00",
         "canary": None, "in_sync": True, "targets": {"production": "1.10.1", "canary": None},
         "rejected": {"1.11.0": "ModelLoadError: garbage"}, "last_error": None, "poll_seconds": 10.0}


def test_a_worker_in_sync_shows_since_and_checked_and_no_old_error() -> None:
    line = describe_worker("host:1", dict(STATE, last_check=_now()))
    assert line.startswith("host:1  1.10.1 [registry] since 2026-12-01T18:09:59.647+00:00  checked 20")
    assert line.endswith("in sync") and "refused" not in line and "\n" not in line


def test_an_out_of_sync_worker_says_what_it_refused() -> None:
    state = dict(STATE, last_check=_now(), in_sync=False, targets={"production": "1.11.0", "canary": None},
                 last_error="refused plateveil-plates@1.11.0 for production: ModelLoadError: garbage",
                 last_error_at="2026-12-01T18:10:04.753+00:00")
    first, second = describe_worker("host:1", state).splitlines()
    assert first.endswith("OUT OF SYNC (aliases: production -> 1.11.0)")
    assert second == "    refused 1.11.0: ModelLoadError: garbage"
    state["rejected"] = {}
    assert describe_worker("host:1", state).splitlines()[1] == (
        "    last error at 2026-12-01T18:10:04.753+00:00: refused plateveil-plates@1.11.0 for production: "
        "ModelLoadError: garbage")


def test_a_silent_worker_is_marked() -> None:
    assert "NO REPORT FOR 60 s (stopped?)" in describe_worker("host:1", dict(STATE, last_check=_now(-60)))
    assert "NO REPORT" not in describe_worker("host:1", dict(STATE, last_check=_now(-20)))


def test_validation_metrics_read_model_json_shapes() -> None:
    nested = {"val": {"overall": {"recall_08": 0.85, "n_images": 200}, "per_folder": {}}}
    assert validation_metrics(nested) == {"recall_08": 0.85, "n_images": 200}
    assert validation_metrics({"recall_08": 0.9}) == {"recall_08": 0.9}
    assert validation_metrics(None) == {}


@pytest.mark.parametrize("text, seconds", [("60", 60.0), ("60s", 60.0), ("2m", 120.0), ("0", 0.0), ("1.5", 1.5)])
def test_wait_durations(text: str, seconds: float) -> None:
    assert _seconds(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5", "1h"])
def test_bad_wait_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _seconds(text)
