"""One Redis URL for the job store and the broker: plain, TLS (rediss://) and Sentinel."""

from __future__ import annotations

import ssl

import pytest

from plateveil.redisconn import broker_ssl_options, celery_broker, describe, parse_sentinel_url


def test_sentinel_url_with_master_password_db_and_sentinel_password():
    spec = parse_sentinel_url("sentinel://:s3cret@s1:26379;sentinel://s2;sentinel://s3:26380/2"
                              "?master_name=plates&sentinel_password=sp")
    assert spec.hosts == (("s1", 26379), ("s2", 26379), ("s3", 26380))
    assert (spec.master, spec.db, spec.password, spec.sentinel_password) == ("plates", 2, "s3cret", "sp")
    assert describe("sentinel://:s3cret@s1:26379/0") == "sentinel s1:26379 master mymaster db 0"


@pytest.mark.parametrize("url", ["sentinel://", "sentinel://s1:26379;redis://x:6379", "sentinel://s1/abc"])
def test_bad_sentinel_urls(url):
    with pytest.raises(ValueError):
        parse_sentinel_url(url)


def test_celery_gets_the_master_name_and_a_url_without_our_parameters():
    cfg = celery_broker("sentinel://:pw@s1:26379;sentinel://s2:26379/0?master_name=plates",
                        {"visibility_timeout": 3600})
    assert cfg.url == "sentinel://:pw@s1:26379;sentinel://s2:26379/0"
    assert cfg.transport_options == {"visibility_timeout": 3600, "master_name": "plates"}
    assert cfg.use_ssl is None


def test_tls_urls_verify_certificates_unless_told_otherwise():
    cfg = celery_broker("rediss://:pw@redis.internal:6380/0?ssl_ca_certs=/etc/ca.pem&health_check_interval=30")
    assert cfg.url == "rediss://:pw@redis.internal:6380/0?health_check_interval=30"
    assert cfg.use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/ca.pem"}
    assert broker_ssl_options("rediss://h:6380/0?ssl_cert_reqs=none") == {"ssl_cert_reqs": ssl.CERT_NONE}
    assert broker_ssl_options("rediss://h/0?ssl_cert_reqs=CERT_OPTIONAL")["ssl_cert_reqs"] == ssl.CERT_OPTIONAL
    with pytest.raises(ValueError):
        broker_ssl_options("rediss://h/0?ssl_cert_reqs=maybe")
    assert celery_broker("redis://h:6379/0").use_ssl is None
    assert describe("rediss://:pw@h:6380/0?ssl_cert_reqs=none") == "rediss://h:6380/0"
