"""PLATEVEIL_BACKEND is checked when a service starts: a typo fails naming the variable and the choices."""

from __future__ import annotations

import os

import pytest

from model_store.backends import BACKENDS, DEFAULT_BACKEND
from plateveil.settings import SettingsError, load_settings
from plateveil_ops.doctor import DoctorSettings
from workers.settings import WorkerSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PLATEVEIL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")


@pytest.mark.parametrize("cls", [WorkerSettings, DoctorSettings])
def test_a_misspelt_backend_fails_at_start_naming_the_variable(cls, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATEVEIL_BACKEND", "onxx")
    with pytest.raises(SettingsError) as err:
        load_settings(cls)
    message = str(err.value)
    assert "PLATEVEIL_BACKEND" in message and "onxx" in message
    assert all(name in message for name in BACKENDS)


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_name_is_accepted(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATEVEIL_BACKEND", name)
    assert load_settings(WorkerSettings).backend == name


def test_the_default_backend_is_one_of_the_choices() -> None:
    assert load_settings(WorkerSettings).backend == DEFAULT_BACKEND and DEFAULT_BACKEND in BACKENDS
