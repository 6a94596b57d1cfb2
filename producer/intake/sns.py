"""Amazon SNS HTTP(S) delivery: message signature verification and subscription confirmation.

SNS signs each message with the private key of a certificate it publishes at ``SigningCertURL``.
:func:`verify_message` rebuilds the string SNS signed (the message's fields in a fixed order,
``Name\\nValue\\n`` each), fetches the certificate - only from a URL matching
``PLATEVEIL_SNS_CERT_URL_PATTERN``, by default ``https://sns.<region>.amazonaws.com/...`` - and checks
the RSA PKCS#1 v1.5 signature with ``cryptography`` (SHA1 for ``SignatureVersion`` 1, SHA256 for 2).
Certificates are cached per URL. :func:`confirm_subscription` visits ``SubscribeURL`` only when
it matches ``PLATEVEIL_SNS_SUBSCRIBE_URL_PATTERN``: a forged confirmation cannot make the service
call an arbitrary URL.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


class SnsError(ValueError):
    """A message that is not a valid, correctly signed SNS message from an allowed place."""


def string_to_sign(msg: dict[str, Any]) -> bytes:
    fields = NOTIFICATION_FIELDS if msg.get("Type") == "Notification" else SUBSCRIPTION_FIELDS
    out = []
    for name in fields:
        if name == "Subject" and msg.get("Subject") is None:
            continue  # only signed when present
        if name not in msg:
            raise SnsError(f"SNS message without {name}")
        out.append(f"{name}\n{msg[name]}\n")
    return "".join(out).encode()


class CertificateCache:
    """Public keys of SNS signing certificates, fetched once per allowed URL."""

    def __init__(self, url_pattern: str, timeout_s: float = 5.0) -> None:
        self.url_pattern = re.compile(url_pattern)
        self.timeout_s = timeout_s
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def public_key(self, url: str) -> rsa.RSAPublicKey:
        if not self.url_pattern.match(url) or not url.endswith(".pem"):
            raise SnsError(f"SigningCertURL {url!r} is not an allowed SNS certificate URL")
        with self._lock:
            cached = self._keys.get(url)
        if cached is not None:
            return cached
        try:
            resp = httpx.get(url, timeout=self.timeout_s, follow_redirects=False)
            resp.raise_for_status()
            cert = x509.load_pem_x509_certificate(resp.content)
        except (httpx.HTTPError, ValueError) as exc:
            raise SnsError(f"cannot load the SNS certificate {url}: {exc}") from None
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsError(f"the SNS certificate {url} has no RSA key")
        with self._lock:
            self._keys[url] = key
        return key


def verify_message(msg: dict[str, Any], certs: CertificateCache) -> None:
    """Raise :class:`SnsError` unless ``msg`` carries a valid SNS signature."""
    if msg.get("Type") not in TYPES:
        raise SnsError(f"unknown SNS message type {msg.get('Type')!r}")
    version = str(msg.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 (SNS's own SignatureVersion 1)
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise SnsError(f"unsupported SNS SignatureVersion {version!r}")
    try:
        signature = base64.b64decode(str(msg["Signature"]), validate=True)
    except (KeyError, ValueError):
        raise SnsError("SNS message without a valid base64 Signature") from None
    key = certs.public_key(str(msg.get("SigningCertURL") or msg.get("SigningCertUrl") or ""))
    try:
        key.verify(signature, string_to_sign(msg), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise SnsError("SNS signature does not match") from None


def confirm_subscription(msg: dict[str, Any], url_pattern: str, timeout_s: float = 5.0) -> str:
    """Visit the message's SubscribeURL (only an allowed one); returns it."""
    url = str(msg.get("SubscribeURL") or "")
    if not re.match(url_pattern, url):
        raise SnsError(f"SubscribeURL {url!r} is not an allowed SNS URL")
    try:
        resp = httpx.get(url, timeout=timeout_s, follow_redirects=False)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise SnsError(f"confirming the subscription at {url} failed: {exc}") from None
    return url
