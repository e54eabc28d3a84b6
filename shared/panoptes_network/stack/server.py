"""The local stack's web server: every service under ``/<service-name>/``, the explorer at ``/``.

It also answers ``/_stack/status`` (what is in flight, for ``drain``) and, on the gcp
backend, ``/_stack/dead-letter``, where Pub/Sub's dead-letter topic is pushed so that
messages it gave up on are recorded with the others.
"""

from __future__ import annotations

import html
import json
import threading
import time
from typing import Any

import flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, make_server

from panoptes_network import deadletter, log, runtime
from panoptes_network.config import Settings
from panoptes_network.messages import BadMessage, decode_push_envelope
from panoptes_network.stack.services import SERVICES, ServiceMissing, available, load_app


class Activity:
    """Counts requests in flight and remembers when the last one ended."""

    def __init__(self):
        self._lock = threading.Lock()
        self.in_flight = 0
        self.requests = 0
        self.failures = 0
        self.last_activity = time.time()
        self.last_errors: dict[str, str] = {}

    def middleware(self, app):
        def wrapped(environ, start_response):
            with self._lock:
                self.in_flight += 1
                self.requests += 1

            def recording_start_response(status, headers, exc_info=None):
                if not status.startswith(("1", "2", "3")):
                    with self._lock:
                        self.failures += 1
                return start_response(status, headers, exc_info)

            try:
                return list(app(environ, recording_start_response))
            finally:
                with self._lock:
                    self.in_flight -= 1
                    self.last_activity = time.time()

        return wrapped

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "in_flight": self.in_flight,
                "requests": self.requests,
                "failures": self.failures,
                "idle_seconds": 0.0 if self.in_flight else round(time.time() - self.last_activity, 3),
            }


def _stack_app(settings: Settings, activity: Activity, services: list[str]) -> flask.Flask:
    app = flask.Flask("panoptes_stack")

    @app.get("/status")
    def status():
        return flask.jsonify({"backend": settings.backend, "services": services, **activity.snapshot()})

    @app.post("/dead-letter")
    def dead_letter():
        try:
            message = decode_push_envelope(flask.request.get_json(silent=True))
        except BadMessage as error:
            return flask.jsonify({"error": str(error)}), 400
        attributes = message.attributes
        source = attributes.get("CloudPubSubDeadLetterSourceSubscription", "unknown subscription")
        attempts = attributes.get("CloudPubSubDeadLetterSourceDeliveryCount", "?")
        deadletter.record(
            runtime.documents(settings),
            service=source,
            reason=f"Pub/Sub gave up after {attempts} delivery attempts to {source}; see that service's log",
            data=message.data,
            attributes=attributes,
            message_id=message.message_id,
            subscription=source,
            attempts=int(attempts) if attempts.isdigit() else None,
        )
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


def build_app(settings: Settings) -> tuple[Any, Activity]:
    services = available()
    activity = Activity()
    mounts: dict[str, Any] = {"/_stack": _stack_app(settings, activity, services)}
    for name in services:
        if name == "data-explorer":
            continue
        mounts[f"/{name}"] = load_app(name)
    try:
        root = load_app("data-explorer") if "data-explorer" in services else _index_app(settings, services)
    except ServiceMissing:
        root = _index_app(settings, services)
    return activity.middleware(DispatcherMiddleware(root, mounts)), activity


def service_urls(base_url: str) -> dict[str, str]:
    return {name: f"{base_url}/" if name == "data-explorer" else f"{base_url}/{name}/"
            for name in available() if name in SERVICES}


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

    def wait_until_idle(self, quiet_seconds: float, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            snapshot = self.activity.snapshot()
            if snapshot["in_flight"] == 0 and snapshot["idle_seconds"] >= quiet_seconds:
                return True
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


def _log_start(settings: Settings, url: str) -> None:
    log.info("local stack serving", url=url, backend=settings.backend, data_dir=str(settings.data_dir))
