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
