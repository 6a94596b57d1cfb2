"""A second API key for a running local stack: entries in ``<state>/api-keys`` join the stack's own key."""

from __future__ import annotations

from pathlib import Path

from plateveil_ops.stack import Stack
from producer.apikeys import hash_key, parse_key_hashes


def test_entries_of_the_api_keys_file_are_accepted_besides_the_stacks_own(tmp_path: Path) -> None:
    stack = Stack(state_dir=tmp_path, api_key="k" * 24, ports={"redis": 1, "s3": 2, "api": 3})
    alone = parse_key_hashes(stack.env["PLATEVEIL_API_KEY_HASHES"])
    (tmp_path / "api-keys").write_text(f"# partner B, added 2026-12-06\n"
                                       f"PLATEVEIL_API_KEY_HASHES entry: partner-b:{hash_key('b' * 24)}\n\n"
                                       f"partner-c:{hash_key('c' * 24)}  # pasted bare\n")
    both = parse_key_hashes(stack.env["PLATEVEIL_API_KEY_HASHES"])
    assert [k.key_id for k in both] == [alone[0].key_id, "partner-b", "partner-c"]
    assert both[1].sha256 == hash_key("b" * 24)
