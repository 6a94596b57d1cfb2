"""Reviewer keys (hashed), placeholders refused at start-up, CSRF and origin checks (producer/review/auth.py)
and their settings. Sessions live in Redis: tests/integration/test_review_login.py."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from plateveil.placeholders import placeholder_problem
from plateveil.settings import SettingsError, load_settings
from producer.apikeys import hash_key, parse_key_hashes
from producer.review.auth import COOKIE_NAME, ReviewAuth, Reviewer, same_origin
from producer.settings import ProducerSettings

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdefgh"
HASHES = parse_key_hashes(f"alice:{hash_key(ALICE)},bob:{hash_key(BOB)}")


def request(cookie: str | None = None, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if cookie is not None:
        raw.append((b"cookie", f"{COOKIE_NAME}={cookie}".encode()))
    return Request({"type": "http", "method": "GET", "path": "/review", "headers": raw, "query_string": b""})


def test_a_key_logs_in_only_its_own_reviewer():
    auth = ReviewAuth(HASHES, ttl_s=3600, client=None)
    assert auth.enabled
    assert auth.check_key("alice", ALICE) and auth.check_key("bob", BOB)
    assert not auth.check_key("bob", ALICE) and not auth.check_key("alice", BOB)
    assert not auth.check_key("alice", ALICE + "x") and not auth.check_key("alice", "")
    assert not auth.check_key("carol", ALICE) and not auth.check_key("alice", "x" * 10_000)


def test_no_keys_no_reviewer():
    auth = ReviewAuth((), ttl_s=60, client=None)
    assert not auth.enabled and auth.reviewer(request("anything")) is None and not auth.check_key("", "")


def test_csrf_token_belongs_to_the_session():
    auth = ReviewAuth(HASHES, ttl_s=3600, client=None)
    alice, bob = Reviewer("alice", "s1", "a" * 64), Reviewer("bob", "s2", "b" * 64)
    assert auth.csrf_ok(request("s1", {"X-CSRF-Token": auth.csrf_token(alice)}), alice)
    assert not auth.csrf_ok(request("s1", {"X-CSRF-Token": auth.csrf_token(bob)}), alice)
    assert not auth.csrf_ok(request("s1"), alice)


def test_same_origin():
    assert same_origin(request(headers={"Host": "a.example:8000"}))
    assert same_origin(request(headers={"Host": "a.example:8000", "Origin": "http://a.example:8000"}))
    assert not same_origin(request(headers={"Host": "a.example:8000", "Origin": "http://b.example:8000"}))
    assert not same_origin(request(headers={"Host": "a.example", "Origin": "null"}))


@pytest.mark.parametrize("value", ["CHANGE-ME", "redis://:CHANGE-ME@redis-master:6379/0", "client-a:CHANGE-ME-64-HEX",
                                   "moderator1:CHANGE-ME-REVIEW-KEY-1", "changeme", "<your key>", "0" * 64,
                                   hash_key("CHANGE-ME-REVIEW-KEY-1"), hash_key("changeme"), hash_key("")])
def test_placeholders_are_recognised(value):
    assert placeholder_problem(value)


@pytest.mark.parametrize("value", [hash_key(ALICE), "redis://:s3cr3t-9f2a@redis:6379/0", "plateveil-local-secret",
                                   "AKIAIOSFODNN7EXAMPL3"])
def test_real_values_pass(value):
    assert placeholder_problem(value) is None


@pytest.fixture
def env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("PLATEVEIL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PLATEVEIL_API_KEY_HASHES", f"uploader:{hash_key('upload-key-0123456789')}")
    return monkeypatch


def test_review_key_hashes_setting(env):
    assert load_settings(ProducerSettings).review_key_hashes == ()
    env.setenv("PLATEVEIL_REVIEW_KEY_HASHES", f" alice:{hash_key(ALICE)} , bob:{hash_key(BOB)},")
    settings = load_settings(ProducerSettings)
    assert [i.key_id for i in settings.review_key_hashes] == ["alice", "bob"] and hash_key(ALICE) not in repr(settings)
    env.setenv("PLATEVEIL_REVIEW_KEY_HASHES", "alice:short")
    with pytest.raises(SettingsError, match="PLATEVEIL_REVIEW_KEY_HASHES"):
        load_settings(ProducerSettings)
    env.setenv("PLATEVEIL_REVIEW_KEY_HASHES", f"alice:{hash_key('upload-key-0123456789')}")
    with pytest.raises(SettingsError, match="must not also be an upload API key"):
        load_settings(ProducerSettings)


@pytest.mark.parametrize(("name", "value", "words"), [
    # the example secret's values, as they are in deploy/k8s/secret.example.yaml
    ("PLATEVEIL_REVIEW_KEY_HASHES", "moderator1:CHANGE-ME-64-HEX", "placeholder"),
    ("PLATEVEIL_REVIEW_KEY_HASHES", f"moderator1:{hash_key('CHANGE-ME-REVIEW-KEY-1')}", "SHA-256 of an example"),
    ("PLATEVEIL_REVIEW_KEY_HASHES", "moderator1:" + "0" * 64, "not a real SHA-256"),
    ("PLATEVEIL_API_KEY_HASHES", "client-a:CHANGE-ME-64-HEX,client-b:CHANGE-ME-64-HEX", "placeholder"),
    ("PLATEVEIL_REDIS_URL", "redis://:CHANGE-ME@redis-master:6379/0", "placeholder"),
    ("PLATEVEIL_S3_SECRET_ACCESS_KEY", "CHANGE-ME", "placeholder"),
    # reviewer keys in plain text (the old PLATEVEIL_REVIEW_KEYS) are refused with the way out
    ("PLATEVEIL_REVIEW_KEYS", "moderator1:CHANGE-ME-REVIEW-KEY-1", "plateveil keys hash --id NAME"),
    ("PLATEVEIL_REVIEW_KEYS", f"alice:{ALICE}", "no longer accepted"),
])
def test_placeholders_and_plain_keys_are_refused_at_start_up(env, name, value, words):
    env.setenv(name, value)
    with pytest.raises(SettingsError, match=name) as err:
        load_settings(ProducerSettings)
    assert words in str(err.value)
    assert ALICE not in str(err.value)


def test_cookie_secure_choice(env):
    assert load_settings(ProducerSettings).review_cookie_secure == "auto"
    env.setenv("PLATEVEIL_REVIEW_COOKIE_SECURE", "Always")
    assert load_settings(ProducerSettings).review_cookie_secure == "always"
    env.setenv("PLATEVEIL_REVIEW_COOKIE_SECURE", "sometimes")
    with pytest.raises(SettingsError, match="PLATEVEIL_REVIEW_COOKIE_SECURE"):
        load_settings(ProducerSettings)
