"""Reviewer keys, sessions and CSRF tokens (producer/review/auth.py) and their settings."""

from __future__ import annotations

import time

import pytest
from starlette.requests import Request

from plateveil.settings import SettingsError, load_settings
from producer.review.auth import COOKIE_NAME, ReviewAuth, parse_reviewers, same_origin
from producer.settings import ProducerSettings

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789ab"


def request(cookie: str | None = None, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if cookie is not None:
        raw.append((b"cookie", f"{COOKIE_NAME}={cookie}".encode()))
    return Request({"type": "http", "method": "GET", "path": "/review", "headers": raw, "query_string": b""})


def test_parse_reviewers_names_the_bad_entry_not_the_key():
    assert parse_reviewers((f"alice:{ALICE}", f"bob:{BOB}")) == {ALICE: "alice", BOB: "bob"}
    for entries, words in (((ALICE,), "NAME:KEY"), (("al ice:" + ALICE,), "NAME:KEY"),
                           (("alice:short",), "shorter than 12"), ((f"a:{ALICE}", f"b:{ALICE}"), "also the key")):
        with pytest.raises(ValueError, match=words) as err:
            parse_reviewers(entries)
        assert ALICE not in str(err.value)


def test_session_names_the_reviewer_and_ends_when_the_key_goes():
    auth = ReviewAuth((f"alice:{ALICE}", f"bob:{BOB}"), ttl_s=3600)
    assert auth.check_key(ALICE) == "alice" and auth.check_key(BOB) == "bob"
    assert auth.check_key(ALICE + "x") is None and auth.check_key("") is None
    cookie = auth.session_for(ALICE)
    reviewer = auth.reviewer(request(cookie))
    assert reviewer is not None and reviewer.name == "alice"
    assert auth.reviewer(request()) is None
    assert auth.reviewer(request(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))) is None
    # alice's key removed: her cookie is refused, even though the other keys (and so ...) changed too
    assert ReviewAuth((f"bob:{BOB}",), ttl_s=3600).reviewer(request(cookie)) is None
    # the same keys on another replica accept it
    assert ReviewAuth((f"bob:{BOB}", f"alice:{ALICE}"), ttl_s=3600).reviewer(request(cookie)).name == "alice"


def test_session_expires():
    auth = ReviewAuth((f"alice:{ALICE}",), ttl_s=60)
    cookie = auth.session_for(ALICE)
    later = ReviewAuth((f"alice:{ALICE}",), ttl_s=60)
    real_time = time.time
    try:
        time.time = lambda: real_time() + 120   # itsdangerous reads time.time()
        assert later.reviewer(request(cookie)) is None
    finally:
        time.time = real_time
    assert later.reviewer(request(cookie)) is not None


def test_no_keys_no_reviewer():
    auth = ReviewAuth((), ttl_s=60)
    assert not auth.enabled and auth.reviewer(request("anything")) is None and auth.check_key("") is None


def test_csrf_token_belongs_to_the_session():
    auth = ReviewAuth((f"alice:{ALICE}", f"bob:{BOB}"), ttl_s=3600)
    alice = auth.reviewer(request(auth.session_for(ALICE)))
    bob = auth.reviewer(request(auth.session_for(BOB)))
    token = auth.csrf_token(alice)
    assert auth.csrf_ok(request(alice.session, {"X-CSRF-Token": token}), alice)
    assert not auth.csrf_ok(request(alice.session, {"X-CSRF-Token": auth.csrf_token(bob)}), alice)
    assert not auth.csrf_ok(request(alice.session), alice)


def test_same_origin():
    assert same_origin(request(headers={"Host": "a.example:8000"}))
    assert same_origin(request(headers={"Host": "a.example:8000", "Origin": "http://a.example:8000"}))
    assert not same_origin(request(headers={"Host": "a.example:8000", "Origin": "http://b.example:8000"}))
    assert not same_origin(request(headers={"Host": "a.example", "Origin": "null"}))


@pytest.fixture
def env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("PLATEVEIL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", "redis://127.0.0.1:1/0")
    from producer.apikeys import hash_key

    monkeypatch.setenv("PLATEVEIL_API_KEY_HASHES", f"uploader:{hash_key('upload-key-0123456789')}")
    return monkeypatch


def test_review_keys_setting(env):
    assert load_settings(ProducerSettings).review_keys == ()
    env.setenv("PLATEVEIL_REVIEW_KEYS", f" alice:{ALICE} , bob:{BOB},")
    settings = load_settings(ProducerSettings)
    assert settings.review_keys == (f"alice:{ALICE}", f"bob:{BOB}") and ALICE not in repr(settings)
    env.setenv("PLATEVEIL_REVIEW_KEYS", "alice:short")
    with pytest.raises(SettingsError, match="PLATEVEIL_REVIEW_KEYS"):
        load_settings(ProducerSettings)
    env.setenv("PLATEVEIL_REVIEW_KEYS", "alice:upload-key-0123456789")
    with pytest.raises(SettingsError, match="must not also be an upload API key"):
        load_settings(ProducerSettings)
