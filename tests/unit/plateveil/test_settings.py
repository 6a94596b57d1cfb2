from __future__ import annotations

import hashlib

import pytest

from plateveil.settings import SettingsError, load_settings
from producer.settings import ProducerSettings
from workers.settings import WorkerSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("PLATEVEIL_"):
            monkeypatch.delenv(name)


HASH1, HASH2 = hashlib.sha256(b"key one").hexdigest(), hashlib.sha256(b"key two").hexdigest()


def test_missing_required_settings_are_named(monkeypatch):
    with pytest.raises(SettingsError) as err:
        load_settings(ProducerSettings)
    assert "PLATEVEIL_REDIS_URL" in str(err.value) and "PLATEVEIL_API_KEY_HASHES" in str(err.value)


def test_api_key_hashes_are_comma_separated_and_not_shown(monkeypatch):
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLATEVEIL_API_KEY_HASHES", f" k1:{HASH1}, k2:{HASH2} ,")
    settings = load_settings(ProducerSettings)
    assert [k.key_id for k in settings.api_key_hashes] == ["k1", "k2"]
    assert HASH1 not in repr(settings)
    # default allowlist: every key reads the uploads prefix only (its own uploads: producer.ownership)
    assert settings.sources_for("k1") == (("plateveil-originals", "originals/"),)


def test_plain_keys_and_bad_hashes_are_refused(monkeypatch):
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLATEVEIL_API_KEY_HASHES", "secret1,secret2")
    with pytest.raises(SettingsError, match="PLATEVEIL_API_KEY_HASHES"):
        load_settings(ProducerSettings)


def test_source_allowlist_per_key(monkeypatch):
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLATEVEIL_API_KEY_HASHES", f"k1:{HASH1}")
    monkeypatch.setenv("PLATEVEIL_SOURCE_ALLOW", "k1=partner/inbox/|partner2;*=shared/in/")
    settings = load_settings(ProducerSettings)
    assert settings.sources_for("k1") == (("partner", "inbox/"), ("partner2", ""), ("shared", "in/"))
    assert settings.sources_for("other") == (("shared", "in/"),)
    monkeypatch.setenv("PLATEVEIL_SOURCE_ALLOW", "k1=UPPER_case!!/x")
    with pytest.raises(SettingsError, match="PLATEVEIL_SOURCE_ALLOW"):
        load_settings(ProducerSettings)


def test_unknown_default_style_is_refused(monkeypatch):
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLATEVEIL_API_KEY_HASHES", f"k:{HASH1}")
    monkeypatch.setenv("PLATEVEIL_DEFAULT_STYLE", "sparkles")
    with pytest.raises(SettingsError, match="PLATEVEIL_DEFAULT_STYLE"):
        load_settings(ProducerSettings)


def test_worker_time_limits_must_fit_the_visibility_timeout(monkeypatch):
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")
    settings = load_settings(WorkerSettings)
    assert settings.backend == "onnx" and settings.soft_time_limit_s < settings.hard_time_limit_s
    monkeypatch.setenv("PLATEVEIL_VISIBILITY_TIMEOUT_S", "10")
    with pytest.raises(SettingsError, match="visibility_timeout_s"):
        load_settings(WorkerSettings)
