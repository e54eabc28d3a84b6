"""Pub/Sub push authentication: check the OIDC token Pub/Sub signs for each push.

A push subscription with an authentication service account sends
``Authorization: Bearer <ID token signed by Google>`` whose audience is the one set on
the subscription (``bin/deploy`` sets the service's URL, and gives the same URL to the
service as ``PUSH_AUDIENCE``). Cloud Run checks already that the caller may invoke the
service; this check makes the push endpoint itself accept only tokens minted for it, so
a service deployed public by mistake, or reached another way, still refuses strangers.

Configuration (environment; unset ``PUSH_AUDIENCE`` means no check, as on the local
stack and the emulators, which send no token):

- ``PUSH_AUDIENCE``: the audience the token must carry.
- ``PUSH_SERVICE_ACCOUNT``: if set, the token must be for this verified e-mail address
  (the subscription's push service account).
- ``PUSH_CERTS_URL``: where the signing certificates are published; Google's by default.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CLOCK_SKEW_SECONDS = 10
DEFAULT_CERTS_MAX_AGE = 3600.0
MIN_REFRESH_SECONDS = 60.0  # an unknown key id refetches the certificates at most this often


@dataclass(frozen=True)
class PushAuth:
    audience: str
    service_account: str | None = None
    certs_url: str = GOOGLE_CERTS_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PushAuth | None:
        env = os.environ if env is None else env
        audience = env.get("PUSH_AUDIENCE", "").strip()
        if not audience:
            return None
        return cls(
            audience=audience,
            service_account=env.get("PUSH_SERVICE_ACCOUNT", "").strip() or None,
            certs_url=env.get("PUSH_CERTS_URL", "").strip() or GOOGLE_CERTS_URL,
        )


class Refused(Exception):
    """The request does not carry a token this endpoint accepts; ``status`` is the HTTP answer."""

    def __init__(self, reason: str, status: int = 401):
        super().__init__(reason)
        self.reason = reason
        self.status = status


class CachedCertificates:
    """A google-auth transport that keeps GET responses as long as their ``Cache-Control`` allows.

    google-auth fetches the certificates on every verification; Google publishes them with
    a max-age of hours, so one fetch serves many pushes. A token signed with a key id our
    copy lacks makes :func:`verify_push` fetch afresh (key rotation), at most once a minute
    so that made-up key ids cannot turn every request into a fetch.
    """

    def __init__(self, transport: Callable[..., Any] | None = None):
        self._transport = transport
        self._cache: dict[str, tuple[float, float, Any]] = {}  # url -> (fetched at, expires at, response)
        self._lock = threading.Lock()
        self.fetches = 0

    def _underlying(self) -> Callable[..., Any]:
        if self._transport is None:
            import google.auth.transport.requests

            self._transport = google.auth.transport.requests.Request()
        return self._transport

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        if method != "GET":
            return self._underlying()(url, method=method, **kwargs)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(url)
            if cached and cached[1] > now:
                return cached[2]
        kwargs.setdefault("timeout", 10)
        response = self._underlying()(url, method=method, **kwargs)
        self.fetches += 1
        if response.status == 200:
            with self._lock:
                self._cache[url] = (now, now + _max_age(response.headers), response)
        return response

    def refresh_if_unknown(self, url: str, key_id: str | None) -> None:
        """Forget our copy of ``url`` if it lacks ``key_id`` and is older than a minute."""
        with self._lock:
            cached = self._cache.get(url)
            if not cached or time.monotonic() - cached[0] < MIN_REFRESH_SECONDS:
                return
            try:
                known = json.loads(cached[2].data)
            except ValueError:
                known = {}
            key_ids = {key.get("kid") for key in known["keys"]} if "keys" in known else set(known)
            if key_id not in key_ids:
                del self._cache[url]


def _max_age(headers: Mapping[str, str] | None) -> float:
    for key, value in (headers or {}).items():
        if key.lower() == "cache-control":
            match = re.search(r"max-age=(\d+)", value)
            if match:
                return float(match.group(1))
    return DEFAULT_CERTS_MAX_AGE


_certificates = CachedCertificates()


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Refused("no Authorization header: this endpoint takes Pub/Sub pushes with an OIDC token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused("the Authorization header is not 'Bearer <token>'")
    return token.strip()


def _key_id(token: str) -> str | None:
    """The ``kid`` of a JWT's header, read without verifying anything."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        return None
    return header.get("kid") if isinstance(header, dict) else None


def verify_push(authorization: str | None, config: PushAuth,
                certificates: CachedCertificates | None = None) -> dict[str, Any]:
    """The token's claims if it is a Google-signed token for ``config``; else :class:`Refused`."""
    from google.auth import exceptions as auth_exceptions
    from google.oauth2 import id_token

    token = _bearer_token(authorization)
    certificates = certificates or _certificates
    certificates.refresh_if_unknown(config.certs_url, _key_id(token))
    try:
        claims = dict(id_token.verify_token(token, certificates, audience=config.audience,
                                            certs_url=config.certs_url,
                                            clock_skew_in_seconds=CLOCK_SKEW_SECONDS))
    except auth_exceptions.TransportError as error:
        raise Refused(f"cannot fetch the signing certificates: {error}", 503) from None
    except (ValueError, TypeError) as error:  # google-auth's Malformed/InvalidValue/InvalidType errors
        raise Refused(f"invalid token: {error}") from None

    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Refused(f"token issuer {claims.get('iss')!r} is not Google")
    if config.service_account:
        if claims.get("email") != config.service_account:
            raise Refused(f"token is for {claims.get('email')!r}, not {config.service_account}", 403)
        if claims.get("email_verified") is not True:
            raise Refused("token e-mail is not verified", 403)
    return claims


def push_refusal(headers: Mapping[str, str], env: Mapping[str, str] | None = None) -> Refused | None:
    """Why a push request must be refused, or None (also when no audience is configured)."""
    config = PushAuth.from_env(env)
    if config is None:
        return None
    try:
        verify_push(headers.get("Authorization"), config)
    except Refused as refusal:
        return refusal
    return None
