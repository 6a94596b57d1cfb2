from __future__ import annotations

import pytest

from plateveil_ops.cli import main
from producer.apikeys import KeyHash, derived_key_id, find_key, hash_key, new_key, parse_key_hashes


def test_a_key_matches_only_its_own_hash():
    a, b = new_key(), new_key()
    hashes = parse_key_hashes(f"alpha:{hash_key(a)}, beta:{hash_key(b)}")
    assert find_key(a, hashes) == "alpha" and find_key(b, hashes) == "beta"
    assert find_key(a + "x", hashes) is None and find_key("", hashes) is None
    assert len(a) >= 43  # 32 random bytes


@pytest.mark.parametrize("text", ["nohash", "Bad Id:" + "0" * 64, "id:1234", "id:" + "g" * 64,
                                  f"a:{'0' * 64},b:{'0' * 64}"])
def test_bad_hash_lines_are_refused(text):
    with pytest.raises(ValueError):
        parse_key_hashes(text)


def test_one_id_may_have_two_keys_while_it_rotates():
    old, new = new_key(), new_key()
    hashes = parse_key_hashes(f"partner:{hash_key(old)}\npartner:{hash_key(new)}")
    assert find_key(old, hashes) == find_key(new, hashes) == "partner"


def test_default_key_id_is_derived_from_the_key(capsys):
    assert main(["keys", "new"]) == 0
    out = capsys.readouterr().out
    key = out.split("API_KEY=")[1].split()[0]
    line = out.split("entry: ")[1].split()[0]
    assert line == f"{derived_key_id(key)}:{hash_key(key)}" and derived_key_id(key).startswith("k-")


def test_cli_prints_a_key_and_its_hash_line(capsys):
    assert main(["keys", "new", "--id", "partner-a"]) == 0
    out = capsys.readouterr().out
    key = out.split("API_KEY=")[1].split()[0]
    line = out.split("entry: ")[1].split()[0]
    assert parse_key_hashes(line) == (KeyHash("partner-a", hash_key(key)),)
    assert main(["keys", "new", "--id", "Not Valid"]) == 2
