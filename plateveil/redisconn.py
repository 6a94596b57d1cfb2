"""Redis connections from one URL, for the job store (redis-py) and the broker (Celery/kombu) alike.

``PLATEVEIL_REDIS_URL`` may be

* ``redis://[:password@]host:6379/0``: one Redis;
* ``rediss://[:password@]host:6380/0[?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/ca.pem]``: TLS;
  certificates are verified unless ``ssl_cert_reqs=none`` (``optional``, ``required``);
  ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` name PEM files (client certificates too);
* ``sentinel://[:password@]s1:26379;sentinel://s2:26379;sentinel://s3:26379/0[?master_name=mymaster&sentinel_password=...]``:
  Redis Sentinel (kombu's own syntax, sentinels separated by ``;``). The password and database
  are the master's; ``master_name`` defaults to ``mymaster``; ``sentinel_password`` is for
  sentinels that require one. Clients ask the sentinels for the current master, so a failover
  moves the job store and the broker together. (TLS to sentinel-managed Redis is not supported.)

:func:`redis_from_url` makes the redis-py client; :func:`celery_broker` the URL, transport options
and ``broker_use_ssl`` for Celery. Both understand the same URLs, so there is one variable to set.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.sentinel import Sentinel

DEFAULT_MASTER = "mymaster"
DEFAULT_SENTINEL_PORT = 26379
SSL_QUERY = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


@dataclass(frozen=True)
class SentinelSpec:
    hosts: tuple[tuple[str, int], ...]
    master: str = DEFAULT_MASTER
    db: int = 0
    password: str | None = None
    username: str | None = None
    sentinel_password: str | None = None
    query: dict[str, str] = field(default_factory=dict)


def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def is_sentinel(url: str) -> bool:
    return scheme(url) == "sentinel"


def parse_sentinel_url(url: str) -> SentinelSpec:
    base, _, query = url.partition("?")
    params = dict(parse_qsl(query))
    hosts: list[tuple[str, int]] = []
    db, password, username = 0, None, None
    for part in base.split(";"):
        parts = urlsplit(part.strip())
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ValueError(f"bad sentinel URL part {part!r}: expected sentinel://host:port")
        hosts.append((parts.hostname, parts.port or DEFAULT_SENTINEL_PORT))
        if parts.password and password is None:
            password = unquote(parts.password)
            username = unquote(parts.username) if parts.username else None
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise ValueError(f"bad database {path!r} in the sentinel URL")
            db = int(path)
    return SentinelSpec(hosts=tuple(hosts), master=params.pop("master_name", DEFAULT_MASTER), db=db,
                        password=password, username=username, sentinel_password=params.pop("sentinel_password", None),
                        query=params)


def describe(url: str) -> str:
    """The URL without passwords, for logs and the doctor."""
    if is_sentinel(url):
        spec = parse_sentinel_url(url)
        hosts = ",".join(f"{h}:{p}" for h, p in spec.hosts)
        return f"sentinel {hosts} master {spec.master} db {spec.db}"
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redis_from_url(url: str, **kwargs: Any) -> redis.Redis:
    """A redis-py client for any URL above (``kwargs``: decode_responses, socket timeouts, ...)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    spec = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout") if k in kwargs}
    if spec.sentinel_password:
        sentinel_kwargs["password"] = spec.sentinel_password
    master_kwargs = dict(kwargs) | {"db": spec.db}
    if spec.password:
        master_kwargs |= {"password": spec.password, "username": spec.username}
    sentinel = Sentinel(list(spec.hosts), sentinel_kwargs=sentinel_kwargs)
    return sentinel.master_for(spec.master, **master_kwargs)


def broker_ssl_options(url: str) -> dict[str, Any] | None:
    """``broker_use_ssl`` for a ``rediss://`` URL (certificates required unless it says otherwise)."""
    if scheme(url) != "rediss":
        return None
    params = dict(parse_qsl(urlsplit(url).query))
    reqs = params.get("ssl_cert_reqs", "required").lower().removeprefix("cert_")
    if reqs not in _CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, got {reqs!r}")
    options: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[reqs]}
    for name in SSL_QUERY[1:]:
        if params.get(name):
            options[name] = params[name]
    return options


@dataclass(frozen=True)
class BrokerConfig:
    url: str
    transport_options: dict[str, Any]
    use_ssl: dict[str, Any] | None


def celery_broker(url: str, transport_options: dict[str, Any] | None = None) -> BrokerConfig:
    """The Celery broker URL, transport options and ``broker_use_ssl`` for ``url``."""
    options = dict(transport_options or {})
    if is_sentinel(url):
        spec = parse_sentinel_url(url)
        options["master_name"] = spec.master
        if spec.sentinel_password:
            options["sentinel_kwargs"] = {"password": spec.sentinel_password}
        base = url.partition("?")[0]
        extra = urlencode(spec.query)
        return BrokerConfig(base + (f"?{extra}" if extra else ""), options, None)
    ssl_options = broker_ssl_options(url)
    if ssl_options is not None:
        parts = urlsplit(url)
        rest = [(k, v) for k, v in parse_qsl(parts.query) if k not in SSL_QUERY]
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
    return BrokerConfig(url, options, ssl_options)
