from __future__ import annotations

import pytest

from producer.validation import (
    InputError,
    check_bucket,
    check_json_text,
    check_key,
    check_metadata,
    loads_checked,
    scrub,
    source_allowed,
)


@pytest.mark.parametrize("name", ["plateveil-originals", "a.b-c", "abc", "x" * 63])
def test_valid_bucket_names(name):
    assert check_bucket(name) == name


@pytest.mark.parametrize("name", ["UPPER_case!!", "a/../b", "ab", "x" * 64, "-abc", "abc-", "a..b", "10.0.0.1",
                                  "a.-b", "under_score", ""])
def test_invalid_bucket_names(name):
    with pytest.raises(InputError, match="invalid bucket name"):
        check_bucket(name)


@pytest.mark.parametrize("key", ["", "../x", "a/../b", "a/./b", "/a", "a\r\nb", "a\x00b", "é" * 600])
def test_invalid_keys(key):
    with pytest.raises(InputError):
        check_key(key)


def test_json_scan_counts_depth_and_number_length_outside_strings():
    check_json_text('{"a": [[["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]]]}', 4, 10)  # brackets in a string
    check_json_text('{"a": "99999999999999999999999999"}', 4, 10)  # digits in a string
    with pytest.raises(InputError, match="deeper than 4"):
        check_json_text("[[[[[]]]]]", 4, 10)
    with pytest.raises(InputError, match="longer than 10"):
        check_json_text("[12345678901]", 4, 10)
    check_json_text('["\\"[[[[[["]', 2, 10)  # escaped quote does not end the string


def test_loads_checked_never_raises_anything_but_input_error():
    for text in ["[" * 100_000, "9" * 5000, "{bad", b"\xff\xfe", "1" * 39]:
        try:
            loads_checked(text, 32, 40)
        except InputError:
            pass


def test_metadata_values_are_printable_ascii():
    assert check_metadata({"listing-id": "L42", "n": 3, "ok": True}) == {"listing-id": "L42", "n": "3", "ok": "true"}
    for bad in ({"a": "x\r\ny"}, {"a": "caf\u00e9"}, {"A": "x"}, {"a": None}, {"a": [1]}, {"a": "x" * 3000}):
        with pytest.raises(InputError):
            check_metadata(bad)


def test_sources_are_bucket_and_prefix():
    sources = (("partner", "inbox/"), ("plateveil-originals", ""))
    assert source_allowed("partner", "inbox/a.jpg", sources)
    assert not source_allowed("partner", "hr/passport.jpg", sources)
    assert source_allowed("plateveil-originals", "any/key.jpg", sources)
    assert not source_allowed("hr", "inbox/a.jpg", sources)


def test_scrub_removes_addresses_and_reprs():
    text = ("S3 head s3://b/k failed: Could not connect to the endpoint URL: \"http://minio:9000/b/k\"; "
            "redis 10.1.2.3:6379 refused; cannot identify image file <_io.BytesIO object at 0x7fb3c2a1b2c0>; "
            "Error 111 connecting to redis-master:6379. [::1]:6379")
    out = scrub(text)
    for leak in ("minio:9000", "10.1.2.3", "6379", "0x7fb3", "BytesIO", "redis-master"):
        assert leak not in out
    assert scrub("image too large: 7070x7070 = 50.0 MP") == "image too large: 7070x7070 = 50.0 MP"
    assert len(scrub("x" * 1000)) == 303
