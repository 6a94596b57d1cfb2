"""Webhook URLs reach public addresses only, unless the operator opts in (plateveil/netguard.py,
``PLATEVEIL_WEBHOOK_ALLOW_PRIVATE_URLS``); deliveries go to the address that was checked."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from plateveil import netguard
from plateveil.settings import SettingsError, load_settings
from workers import webhook_contract as webhooks
from workers.webhook_contract import WebhookSettings, WebhookTarget

REFUSED = ["127.0.0.1", "127.8.9.1", "10.1.2.3", "172.16.0.5", "192.168.1.1", "169.254.169.254", "100.64.0.1",
           "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "fe80::1", "fd00::1", "::",
           "::ffff:127.0.0.1", "::ffff:169.254.169.254", "2002:a9fe:a9fe::1", "192.0.2.1", "198.18.0.1", "ff02::1"]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("ip", REFUSED)
def test_non_global_addresses_are_refused(ip):
    assert netguard.address_problem(ipaddress.ip_address(ip))


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_pass(ip):
    assert netguard.address_problem(ipaddress.ip_address(ip)) is None


def _resolver(*answers: str):
    def resolve(host, port, type=0):   # noqa: A002 - getaddrinfo's own keyword
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers]
    return resolve


def test_every_resolved_address_must_be_public():
    url = "https://hooks.partner.example/plateveil"
    assert netguard.resolve_checked(url, _resolver("93.184.216.34")) == [ipaddress.ip_address("93.184.216.34")]
    with pytest.raises(netguard.UnsafeURLError, match="169.254.169.254 is link-local"):
        netguard.resolve_checked(url, _resolver("93.184.216.34", "169.254.169.254"))
    with pytest.raises(netguard.UnsafeURLError, match="loopback"):
        netguard.resolve_checked("http://127.0.0.1:8080/x", _resolver("93.184.216.34"))   # literal: not resolved
    with pytest.raises(netguard.UnsafeURLError, match="this machine"):
        netguard.resolve_checked("http://localhost/x", _resolver("93.184.216.34"))

    def fails(*_a, **_k):
        raise socket.gaierror("no such name")
    with pytest.raises(netguard.UnsafeURLError, match="cannot be resolved"):
        netguard.resolve_checked(url, fails)


def test_pinned_request_keeps_the_name_for_host_and_tls():
    url, headers, ext = netguard.pinned("https://hooks.partner.example:8443/p?q=1", ipaddress.ip_address("93.184.216.34"))
    assert url == "https://93.184.216.34:8443/p?q=1" and headers == {"Host": "hooks.partner.example:8443"}
    assert ext == {"sni_hostname": "hooks.partner.example"}
    url, headers, ext = netguard.pinned("http://h.example/p", ipaddress.ip_address("2606:4700:4700::1111"))
    assert url == "http://[2606:4700:4700::1111]/p" and headers == {"Host": "h.example"} and ext == {}


@pytest.fixture
def env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("PLATEVEIL_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "http://169.254.169.254/latest/meta-data/",
                                 "https://10.0.0.7/hook", "http://[::1]/hook", "http://localhost:8080/hook"])
def test_private_webhook_urls_are_refused_at_start_up_unless_opted_in(env, url):
    env.setenv("PLATEVEIL_WEBHOOKS", json.dumps({"k-0123456789ab": {"url": url, "secret": "s" * 20}}))
    with pytest.raises(SettingsError, match="PLATEVEIL_WEBHOOK_ALLOW_PRIVATE_URLS=true"):
        load_settings(WebhookSettings)
    env.setenv("PLATEVEIL_WEBHOOK_ALLOW_PRIVATE_URLS", "true")
    assert load_settings(WebhookSettings).webhooks["k-0123456789ab"].url == url


class _Receiver(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:   # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.hits.append(self.headers["Host"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_delivery_to_a_private_address_is_not_made_without_the_opt_in():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = WebhookTarget(url=f"http://127.0.0.1:{server.server_address[1]}/hook", secret="s" * 20)
        _Receiver.hits.clear()
        with pytest.raises(httpx.ConnectError, match="webhook URL refused: .*loopback"):
            webhooks.deliver(target, "k-0123456789ab", {"job_id": "j"}, "d1")
        assert _Receiver.hits == []   # nothing reached it
        assert webhooks.deliver(target, "k-0123456789ab", {"job_id": "j"}, "d2", allow_private=True) == 204
        assert _Receiver.hits == [f"127.0.0.1:{server.server_address[1]}"]
    finally:
        server.shutdown()
        server.server_close()
