"""Outbound URLs that must not reach inside the network: webhook targets (issue 36: a webhook URL of
``http://127.0.0.1:...`` or ``http://169.254.169.254/`` - the cloud metadata service - was accepted).

By default a URL may lead only to *global* unicast addresses: loopback, private (10/8, 172.16/12,
192.168/16, fc00::/7), link-local (169.254/16 incl. the metadata address, fe80::/10), shared/CGNAT
(100.64/10), multicast, unspecified, reserved, documentation and benchmarking ranges, and IPv4 written
inside IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo) are all refused. A host *name* is resolved and **every**
address it resolves to must pass (one private answer among public ones is refused); the caller then
connects to the address it checked (:func:`pinned`), so a name that changes its answer between the
check and the connection (DNS rebinding) cannot slip through. An operator who really sends webhooks
inside their network says so explicitly (``PLATEVEIL_WEBHOOK_ALLOW_PRIVATE_URLS=true``).

Standard library only (``ipaddress``'s ``is_global`` and friends).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list[Any]]


class UnsafeURLError(ValueError):
    """A URL that leads (or may lead) to a non-global address, or that cannot be resolved."""


def address_problem(ip: Address) -> str | None:
    """Why ``ip`` is not a public unicast address, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if inner is not None:
                problem = address_problem(inner)
                return f"{problem} (written as IPv6 {ip})" if problem else None
    for label, hit in (("loopback", ip.is_loopback), ("link-local (e.g. the cloud metadata service)", ip.is_link_local),
                       ("private", ip.is_private), ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
                       ("reserved", ip.is_reserved)):
        if hit:
            return f"{ip} is {label}"
    if not ip.is_global:
        return f"{ip} is not a global address"
    return None


def split(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL; UnsafeURLError when it has none."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURLError(f"expected an http(s) URL with a host, got {url[:80]!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURLError(f"bad port in {url[:80]!r}") from None
    return parts.scheme, parts.hostname.rstrip(".").lower(), port


def literal_problem(url: str) -> str | None:
    """What can be said without resolving: an IP literal that is not global, or a ``localhost`` name."""
    _, host, _ = split(url)
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return f"{host} names this machine or an internal network"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address_problem(ip)


def resolve_checked(url: str, resolve: Resolver = socket.getaddrinfo) -> list[Address]:
    """Every address the URL's host resolves to, all public; UnsafeURLError naming the first that is not."""
    _, host, port = split(url)
    problem = literal_problem(url)
    if problem:
        raise UnsafeURLError(f"{url[:80]}: {problem}")
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeURLError(f"{host}: cannot be resolved ({exc})") from None
    addresses: list[Address] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        problem = address_problem(ip)
        if problem:
            raise UnsafeURLError(f"{host} resolves to {problem}")
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise UnsafeURLError(f"{host}: no address")
    return addresses


def pinned(url: str, ip: Address) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``(url with the checked address as host, headers, httpx extensions)``: connect to ``ip`` while the
    request still says ``Host: <name>`` and TLS checks the certificate against the name (``sni_hostname``)."""
    parts = urlsplit(url)
    netloc = f"[{ip}]" if ip.version == 6 else str(ip)
    if parts.port:
        netloc += f":{parts.port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return parts._replace(netloc=netloc).geturl(), {"Host": host_header}, extensions
