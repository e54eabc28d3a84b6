"""The services of the repository, loaded from their own ``main.py`` as deployed.

The local stack runs exactly the handler code Cloud Functions and Cloud Run run: a
functions-framework target goes through ``functions_framework.create_app`` (the same
CloudEvent and Pub/Sub conversions as in the cloud), a Flask service is its ``app``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    kind: str  # "function" (functions-framework target) or "flask" (a module-level ``app``)
    target: str  # the function name, or "app"
    trigger: str = "push"  # "http" (public API), "push" (Pub/Sub push), "event" (Eventarc when deployed)


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("image-uploaded", "function", "image_uploaded", "event"),
        ServiceSpec("compress-fits", "flask", "app"),
        ServiceSpec("make-rgb-fits", "flask", "app"),
        ServiceSpec("plate-solve", "flask", "app"),
        ServiceSpec("process-observation", "flask", "app"),
        ServiceSpec("record-image", "function", "record_image", "event"),
        ServiceSpec("lookup-field", "function", "lookup_field", "http"),
        ServiceSpec("get-fits-header", "function", "get_fits_header", "http"),
        ServiceSpec("data-explorer", "flask", "app", "http"),
    )
}

_apps: dict[str, Any] = {}
_lock = threading.Lock()


class ServiceMissing(LookupError):
    pass


def repository_root() -> Path:
    """Where the service folders are: ``PANOPTES_SERVICES_DIR``, else beside ``shared/``."""
    configured = os.environ.get("PANOPTES_SERVICES_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3]


def source_of(name: str) -> Path:
    return repository_root() / name / "main.py"


def available() -> list[str]:
    return [name for name in SERVICES if source_of(name).is_file()]


def _load_flask_app(name: str, source: Path) -> flask.Flask:
    module_name = "panoptes_service_" + name.replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, source)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    folder = str(source.parent)
    if folder not in sys.path:
        sys.path.append(folder)  # as in its own container, where the folder is the working directory
    spec.loader.exec_module(module)
    return module.app


class _PushGuard:
    """The checks of every push endpoint, before functions-framework sees the request.

    Deployed, an event function is reached only through Eventarc, which delivers well-formed
    CloudEvents and is let in by IAM (the trigger's service account needs the invoker role);
    functions-framework trusts that, and answers a malformed body with a 500. On the local
    stack the same endpoints take Pub/Sub push envelopes from anyone who can reach the port,
    so they get what compress-fits checks itself (:func:`panoptes_network.handlers.read_push`:
    token when ``PUSH_AUDIENCE`` is set, size, JSON), and a body that is neither a push
    envelope nor a CloudEvent is a 400 with the reason.
    """

    def __init__(self, wsgi_app, service: str):
        self.wsgi_app, self.service = wsgi_app, service

    def __call__(self, environ, start_response):
        from panoptes_network import handlers, http
        from panoptes_network.messages import BadMessage, decode_push_envelope

        request = flask.Request(environ)
        if request.method != "POST":
            return self.wsgi_app(environ, start_response)
        try:
            body, decoded = handlers.read_push(request, self.service)
            binary_cloud_event = "ce-specversion" in request.headers
            if not binary_cloud_event and "specversion" not in decoded:
                decode_push_envelope(decoded)
        except (http.HttpError, BadMessage) as error:  # answered as compress-fits answers
            status, reason = (error.status, error.msg) if isinstance(error, http.HttpError) else (400, str(error))
            answer = flask.Response(json.dumps({"error": reason}), status, mimetype="application/json")
            return answer(environ, start_response)
        environ["wsgi.input"] = io.BytesIO(body)  # read above: hand the function the same bytes
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.wsgi_app(environ, start_response)


def load_app(name: str) -> flask.Flask:
    """The WSGI app of a service, made once per process."""
    if name not in SERVICES:
        raise ServiceMissing(f"unknown service {name!r}; services: {', '.join(SERVICES)}")
    with _lock:
        if name in _apps:
            return _apps[name]
        spec, source = SERVICES[name], source_of(name)
        if not source.is_file():
            raise ServiceMissing(f"service {name} has no handler yet ({source} is missing)")
        if spec.kind == "function":
            import functions_framework

            app = functions_framework.create_app(target=spec.target, source=str(source))
            if spec.trigger == "event":
                app.wsgi_app = _PushGuard(app.wsgi_app, name)
        else:
            app = _load_flask_app(name, source)
        _apps[name] = app
        return app
