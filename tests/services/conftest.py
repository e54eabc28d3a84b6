"""The HTTP services as deployed: each service's own main.py, loaded through
functions-framework (panoptes_network.stack.services.load_app), driven with Flask's
test client. Lookups never leave the machine: online lookup is off unless a test
points it at the fake Sesame server."""

from __future__ import annotations

import pytest

from panoptes_network.lookup import sesame
from panoptes_network.stack.services import load_app


@pytest.fixture(autouse=True)
def lookups_stay_local(monkeypatch):
    monkeypatch.setenv("LOOKUP_ONLINE", "false")
    monkeypatch.delenv("LOOKUP_SESAME_URLS", raising=False)
    sesame.clear_cache()
    yield
    sesame.clear_cache()


@pytest.fixture
def get_fits_header():
    return load_app("get-fits-header").test_client()


@pytest.fixture
def lookup_field():
    return load_app("lookup-field").test_client()


@pytest.fixture
def local_backend(monkeypatch, tmp_path):
    from panoptes_network import runtime

    monkeypatch.setenv("PANOPTES_BACKEND", "local")
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(tmp_path / "data"))
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture
def stack_client(local_backend):
    """The local stack's whole web server (every service, the explorer, /_stack), in process."""
    from werkzeug.test import Client

    from panoptes_network.config import settings
    from panoptes_network.stack.server import build_app

    return Client(build_app(settings())[0])
