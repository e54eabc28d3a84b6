"""Push endpoints check the Pub/Sub OIDC token when PUSH_AUDIENCE is configured.

Tokens are signed here with a freshly generated RSA key; its certificate is published
by a loopback HTTP server in the format Google uses (``{key id: PEM certificate}``),
so google-auth verifies them exactly as it verifies Google's, with no network.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from panoptes_network import auth, runtime
from panoptes_network.messages import encode_push_envelope
from panoptes_network.stack.services import load_app

AUDIENCE = "https://compress-fits-123456789.us-central1.run.app"
PUSH_ACCOUNT = "panoptes-push-invoker@panoptes-test.iam.gserviceaccount.com"


class SigningKey:
    def __init__(self, key_id: str):
        self.key_id = key_id
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key_id)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.private, hashes.SHA256())
        )

    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, **overrides) -> str:
        now = int(time.time())
        claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "iat": now, "exp": now + 3600,
                  "sub": "1234567890", "email": PUSH_ACCOUNT, "email_verified": True, **overrides}
        pem = self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        return jwt.encode(crypt.RSASigner.from_string(pem, key_id=self.key_id), claims).decode()


class CertificateServer:
    """Publishes certificates at /certs as Google does, counting the fetches."""

    def __init__(self, keys: list[SigningKey]):
        self.keys = list(keys)
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                body = json.dumps({key.key_id: key.certificate_pem() for key in server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=19000, must-revalidate, no-transform")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/certs"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def google_key():
    return SigningKey("google-key-1")


@pytest.fixture
def certificates(google_key):
    server = CertificateServer([google_key])
    yield server
    server.close()


@pytest.fixture
def compress_fits(monkeypatch, tmp_path, certificates):
    """The real compress-fits app on the local backend, with push authentication on."""
    monkeypatch.setenv("PANOPTES_BACKEND", "local")
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PUSH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("PUSH_SERVICE_ACCOUNT", PUSH_ACCOUNT)
    monkeypatch.setenv("PUSH_CERTS_URL", certificates.url)
    runtime.reset()
    yield load_app("compress-fits").test_client()
    runtime.reset()


ENVELOPE = encode_push_envelope({"bucket_path": "PAN001/14d3bd/20160909T081152/20160909T081226.fits"},
                                subscription="projects/panoptes-test/subscriptions/compress-fits")


def push(client, authorization: str | None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return client.post("/", json=ENVELOPE, headers=headers)


def test_a_push_with_a_valid_token_reaches_the_job(compress_fits, google_key):
    response = push(compress_fits, "Bearer " + google_key.sign())
    assert response.status_code == 200
    # The frame does not exist: the job ran and dead-lettered it (not an auth answer).
    assert "does not exist" in response.get_json()["reason"]


@pytest.mark.parametrize("authorization, reason", [
    (None, "no Authorization header"),
    ("Basic dXNlcjpwYXNz", "not 'Bearer <token>'"),
    ("Bearer ", "not 'Bearer <token>'"),
    ("Bearer not-a-jwt", "invalid token"),
])
def test_a_push_without_a_usable_token_is_refused(compress_fits, authorization, reason):
    response = push(compress_fits, authorization)
    assert response.status_code == 401
    assert reason in response.get_json()["error"]


@pytest.mark.parametrize("claims, status, reason", [
    ({"aud": "https://make-rgb-fits-123456789.us-central1.run.app"}, 401, "audience"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, 401, "expired"),
    ({"iss": "https://evil.example.com"}, 401, "issuer"),
    ({"email": "someone-else@panoptes-test.iam.gserviceaccount.com"}, 403, "not " + PUSH_ACCOUNT),
    ({"email_verified": False}, 403, "not verified"),
])
def test_a_token_for_someone_else_is_refused(compress_fits, google_key, claims, status, reason):
    response = push(compress_fits, "Bearer " + google_key.sign(**claims))
    assert response.status_code == status
    assert reason in response.get_json()["error"]


def test_a_token_signed_by_another_key_with_the_same_id_is_refused(compress_fits):
    impostor = SigningKey("google-key-1")
    response = push(compress_fits, "Bearer " + impostor.sign())
    assert response.status_code == 401
    assert "invalid token" in response.get_json()["error"]


def test_without_an_audience_no_token_is_needed(compress_fits, monkeypatch):
    # The local stack and the emulators push without tokens.
    monkeypatch.delenv("PUSH_AUDIENCE")
    response = push(compress_fits, None)
    assert response.status_code == 200
    assert "does not exist" in response.get_json()["reason"]


def test_unreachable_certificates_ask_pubsub_to_retry(compress_fits, google_key, certificates):
    certificates.close()
    response = push(compress_fits, "Bearer " + google_key.sign())
    assert response.status_code == 503
    assert "certificates" in response.get_json()["error"]


def test_certificates_are_fetched_once_and_again_for_a_new_key(google_key, certificates, monkeypatch):
    config = auth.PushAuth(AUDIENCE, PUSH_ACCOUNT, certificates.url)
    cache = auth.CachedCertificates()
    for _ in range(3):
        assert auth.verify_push("Bearer " + google_key.sign(), config, cache)["email"] == PUSH_ACCOUNT
    assert certificates.fetches == 1

    rotated = SigningKey("google-key-2")
    certificates.keys.append(rotated)
    # Within a minute of the last fetch an unknown key id does not refetch (no fetch storms) ...
    with pytest.raises(auth.Refused):
        auth.verify_push("Bearer " + rotated.sign(), config, cache)
    assert certificates.fetches == 1
    # ... after it, the new key is fetched and accepted.
    monkeypatch.setattr(auth, "MIN_REFRESH_SECONDS", 0.0)
    assert auth.verify_push("Bearer " + rotated.sign(), config, cache)["email"] == PUSH_ACCOUNT
    assert certificates.fetches == 2


def test_configuration_comes_from_the_environment():
    assert auth.PushAuth.from_env({}) is None
    assert auth.PushAuth.from_env({"PUSH_AUDIENCE": " "}) is None
    config = auth.PushAuth.from_env({"PUSH_AUDIENCE": AUDIENCE})
    assert config == auth.PushAuth(AUDIENCE, None, auth.GOOGLE_CERTS_URL)


def test_the_scheduled_reconcile_checks_the_token_like_the_pushes(compress_fits, google_key):
    """Cloud Scheduler calls POST /reconcile with the push identity's token (bin/deploy --schedule-reconcile)."""
    runtime.documents().set("observations", "PAN001_14d3bd_20160909T081152", {"num_images": 3, "total_exptime": 0.0})
    assert compress_fits.post("/reconcile").status_code == 401
    assert runtime.documents().get("observations", "PAN001_14d3bd_20160909T081152")["num_images"] == 3
    response = compress_fits.post("/reconcile", headers={"Authorization": "Bearer " + google_key.sign()})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"checked": 1, "gaps": {"count_mismatch": 1}, "fixed": 1, "left_for_next_run": 0}
    assert runtime.documents().get("observations", "PAN001_14d3bd_20160909T081152")["num_images"] == 0


PUSH_ENDPOINTS = ["/compress-fits/", "/make-rgb-fits/", "/record-image/", "/image-uploaded/", "/_stack/dead-letter"]


@pytest.fixture
def whole_stack(compress_fits):
    """The local stack's web server, with push authentication on (compress_fits sets it up)."""
    from werkzeug.test import Client

    from panoptes_network.config import settings
    from panoptes_network.stack.server import build_app

    return Client(build_app(settings())[0])


@pytest.mark.parametrize("endpoint", PUSH_ENDPOINTS)
def test_with_an_audience_every_push_endpoint_refuses_a_push_without_a_token(whole_stack, endpoint):
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        response = whole_stack.post(endpoint, json=ENVELOPE, headers=headers)
        assert response.status_code == 401, (endpoint, response.get_data(as_text=True)[:300])
    # Refused before the body is looked at: a stranger learns nothing from a bad body either.
    assert whole_stack.post(endpoint, data="[" * 5000, content_type="application/json").status_code == 401


@pytest.mark.parametrize("endpoint", PUSH_ENDPOINTS)
def test_with_an_audience_every_push_endpoint_takes_a_valid_token(whole_stack, google_key, endpoint):
    response = whole_stack.post(endpoint, json=ENVELOPE, headers={"Authorization": "Bearer " + google_key.sign()})
    assert response.status_code in (200, 204), (endpoint, response.get_data(as_text=True)[:300])


def test_public_endpoints_need_no_token(whole_stack):
    # lookup-field, get-fits-header and the explorer are called by people: no push token.
    assert whole_stack.get("/lookup-field", query_string={"search_string": ""}).status_code == 400
    assert whole_stack.get("/get-fits-header/", query_string={"bucket_path": ""}).status_code == 400
    assert whole_stack.get("/api/units").status_code == 200
