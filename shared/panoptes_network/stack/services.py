"""The services of the repository, loaded from their own ``main.py`` as deployed.

The local stack runs exactly the handler code Cloud Functions and Cloud Run run: a
functions-framework target goes through ``functions_framework.create_app`` (the same
CloudEvent and Pub/Sub conversions as in the cloud), a Flask service is its ``app``.
"""

from __future__ import annotations

import importlib.util
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


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("image-uploaded", "function", "image_uploaded"),
        ServiceSpec("compress-fits", "flask", "app"),
        ServiceSpec("make-rgb-fits", "flask", "app"),
        ServiceSpec("plate-solve", "flask", "app"),
        ServiceSpec("process-observation", "flask", "app"),
        ServiceSpec("record-image", "function", "record_image"),
        ServiceSpec("lookup-field", "function", "lookup_field"),
        ServiceSpec("get-fits-header", "function", "get_fits_header"),
        ServiceSpec("data-explorer", "flask", "app"),
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
        else:
            app = _load_flask_app(name, source)
        _apps[name] = app
        return app
