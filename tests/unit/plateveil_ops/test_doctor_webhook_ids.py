"""plateveil doctor: a webhook's key id must be one of the ids in PLATEVEIL_API_KEY_HASHES."""

from __future__ import annotations

import json

from plateveil_ops.doctor import Report
from plateveil_ops.doctor_ops import check_webhooks
from producer.apikeys import hash_key

HOOK = {"url": "https://example.test/hook", "secret": "s" * 20}


def _run(monkeypatch, capsys, hashes: str | None, ids: list[str]) -> str:
    for name in ("PLATEVEIL_API_KEY_HASHES", "PLATEVEIL_WEBHOOKS"):
        monkeypatch.delenv(name, raising=False)
    if hashes is not None:
        monkeypatch.setenv("PLATEVEIL_API_KEY_HASHES", hashes)
    monkeypatch.setenv("PLATEVEIL_WEBHOOKS", json.dumps({i: HOOK for i in ids}))
    check_webhooks(Report())
    return capsys.readouterr().out


def test_webhook_ids_are_checked_against_the_stored_key_ids(monkeypatch, capsys):
    hashes = f"partner-a:{hash_key('key-a')},k-0123456789ab:{hash_key('key-b')}"
    out = _run(monkeypatch, capsys, hashes, ["partner-a", "k-0123456789ab", "k-ffffffffffff"])
    assert "ok    webhook partner-a" in out and "ok    webhook k-0123456789ab" in out
    assert "WARN  webhook k-ffffffffffff" in out and "no entry of PLATEVEIL_API_KEY_HASHES" in out


def test_without_the_hashes_only_the_id_form_is_checked(monkeypatch, capsys):
    out = _run(monkeypatch, capsys, None, ["partner-a", "Not An Id!"])
    assert "ok    webhook partner-a" in out
    assert "WARN  webhook Not An Id!" in out and "this is not a key id" in out
