"""The local stack's web server: every service under ``/<service-name>/``, the explorer at ``/``.

It also answers ``/_stack/status`` (what is in flight, for ``drain``) and, on the gcp
backend, ``/_stack/dead-letter``, where Pub/Sub's dead-letter topic is pushed so that
messages it gave up on are recorded with the others.
"""

from __future__ import annotations

import html
import io
import json
import logging
import threading
import time
from typing import Any

import flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, make_server

from panoptes_network import deadletter, handlers, http, runtime
from panoptes_network.config import Settings
from panoptes_network.messages import BadMessage, decode_push_envelope
from panoptes_network.stack.services import SERVICES, ServiceMissing, available, load_app


class Activity:
    """Counts requests in flight and, on the gcp backend, settles pushes in the ledger."""

    def __init__(self, ledger=None):
        self._lock = threading.Lock()
        self.in_flight = 0
        self.requests = 0
        self.failures = 0
        self.last_activity = time.time()
        self.ledger = ledger

    @staticmethod
    def _push_identity(environ) -> tuple[str, str] | None:
        """(subscription, message id) of a Pub/Sub push request; the body is kept readable."""
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if not 0 < length <= http.MAX_PUSH_BODY_BYTES:
            return None  # no push: the endpoint refuses it (413) without this reading it first
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            envelope = http.parse_json(body)
            return str(envelope["subscription"]), str(envelope["message"]["messageId"])
        except (http.HttpError, KeyError, TypeError):
            return None

    def middleware(self, app):
        def wrapped(environ, start_response):
            if environ.get("PATH_INFO", "").startswith("/_stack/status"):
                return app(environ, start_response)  # a status poll must not count itself as work
            push = self._push_identity(environ) if self.ledger else None
            status_code = [500]
            with self._lock:
                self.in_flight += 1
                self.requests += 1

            def recording_start_response(status, headers, exc_info=None):
                status_code[0] = int(status.split()[0])
                if status_code[0] >= 400:
                    with self._lock:
                        self.failures += 1
                return start_response(status, headers, exc_info)

            try:
                return list(app(environ, recording_start_response))
            finally:
                if push:
                    self.ledger.record(push[0], push[1], status_code[0])
                with self._lock:
                    self.in_flight -= 1
                    self.last_activity = time.time()

        return wrapped

    def snapshot(self, sync: bool = False) -> dict[str, Any]:
        if sync and self.ledger:
            self.ledger.sync()
        with self._lock:
            snapshot = {
                "in_flight": self.in_flight,
                "requests": self.requests,
                "failures": self.failures,
                "idle_seconds": 0.0 if self.in_flight else round(time.time() - self.last_activity, 3),
            }
        if self.ledger:
            snapshot["pending"] = self.ledger.pending()
        return snapshot


def _stack_app(settings: Settings, activity: Activity, services: list[str]) -> flask.Flask:
    app = flask.Flask("panoptes_stack")

    @app.get("/status")
    def status():
        snapshot = activity.snapshot(sync=True)
        if settings.backend == "local":
            counts = runtime.topics(settings).counts()
            snapshot["pending"] = counts.pending + counts.in_flight
        return flask.jsonify({"backend": settings.backend, "services": services, **snapshot})

    @app.post("/dead-letter")
    def dead_letter():
        # A push endpoint like the others: the same token, size and JSON checks.
        try:
            message = decode_push_envelope(handlers.read_push(flask.request, "dead-letter")[1])
        except http.HttpError as error:
            return flask.jsonify({"error": error.msg}), error.status
        except BadMessage as error:
            return flask.jsonify({"error": str(error)}), 400
        deadletter.record_forwarded(runtime.documents(settings), data=message.data,
                                    attributes=message.attributes, message_id=message.message_id)
        if activity.ledger:
            activity.ledger.forwarded(message.attributes.get("CloudPubSubDeadLetterSourceSubscription", ""))
        return "", 204

    return app


def _index_app(settings: Settings, services: list[str]) -> flask.Flask:
    app = flask.Flask("panoptes_index")

    @app.get("/")
    def index():
        items = "".join(
            f'<li><a href="{html.escape(name)}/">{html.escape(name)}</a></li>' for name in services
        )
        return (
            "<!doctype html><title>PANOPTES Network</title><h1>PANOPTES Network (local stack)</h1>"
            f"<p>Backend: {html.escape(settings.backend)}</p><ul>{items}</ul>"
        )

    return app


def _at_its_root(app):
    """``/<service>`` served as ``/<service>/``, not redirected there.

    Deployed functions answer at ``https://.../lookup-field?...``, with no trailing slash;
    Flask would answer that with a 308, which a browser's CORS preflight cannot follow.
    """

    def at_root(environ, start_response):
        if not environ.get("PATH_INFO"):
            environ["PATH_INFO"] = "/"
        return app(environ, start_response)

    return at_root


def build_app(settings: Settings) -> tuple[Any, Activity]:
    services = available()
    ledger = None
    if settings.backend == "gcp":
        from panoptes_network.stack.gcp import PushLedger

        ledger = PushLedger(settings)
    activity = Activity(ledger)
    mounts: dict[str, Any] = {"/_stack": _stack_app(settings, activity, services)}
    for name in services:
        if name == "data-explorer":
            continue
        mounts[f"/{name}"] = _at_its_root(load_app(name))
    try:
        root = load_app("data-explorer") if "data-explorer" in services else _index_app(settings, services)
    except ServiceMissing:
        root = _index_app(settings, services)
    return activity.middleware(DispatcherMiddleware(root, mounts)), activity


def service_urls(base_url: str) -> dict[str, str]:
    return {name: f"{base_url}/" if name == "data-explorer" else f"{base_url}/{name}/"
            for name in available() if name in SERVICES}


class _QuietStatusPolls(logging.Filter):
    """drain polls /_stack/status several times a second: keep that out of the request log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/_stack/status" not in record.getMessage()


logging.getLogger("werkzeug").addFilter(_QuietStatusPolls())


class StackServer:
    """The WSGI server in a background thread (tests and ``drain``) or the foreground (``up``)."""

    def __init__(self, settings: Settings, host: str, port: int):
        self.settings = settings
        app, self.activity = build_app(settings)
        self.server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.host, self.port = host, self.server.server_port
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_background(self) -> StackServer:
        self.thread = threading.Thread(target=self.server.serve_forever, name="stack-server", daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread:
            self.thread.join(5)

    def wait_until_idle(self, settle_seconds: float = 1.0, timeout: float | None = None) -> bool:
        """Until nothing is in flight or pending, twice ``settle_seconds`` apart."""
        return wait_until_settled(lambda: self.activity.snapshot(sync=True), settle_seconds, timeout)


def wait_until_settled(snapshot, settle_seconds: float, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    settled_since = None
    while deadline is None or time.monotonic() < deadline:
        state = snapshot()
        if state is None:
            raise RuntimeError("the stack stopped answering")
        if state["in_flight"] == 0 and state.get("pending", 0) == 0:
            settled_since = settled_since or time.monotonic()
            if time.monotonic() - settled_since >= settle_seconds:
                return True
        else:
            settled_since = None
        time.sleep(0.2)
    return False


def print_urls(base_url: str) -> None:
    for name, url in service_urls(base_url).items():
        print(f"  {name:16} {url}")
    print(f"  {'status':16} {base_url}/_stack/status", flush=True)


def fetch_status(base_url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base_url}/_stack/status", timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None

