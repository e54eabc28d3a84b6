"""The local stack answers at the URL shapes of the deployed services."""

from __future__ import annotations

import pytest

PREFLIGHT = {"Origin": "http://localhost:8000", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type"}


@pytest.mark.parametrize("service", ["lookup-field", "get-fits-header"])
@pytest.mark.parametrize("slash", ["", "/"])
def test_http_functions_answer_with_and_without_the_trailing_slash(stack_client, service, slash):
    # Deployed: https://REGION-PROJECT.cloudfunctions.net/lookup-field?... (no slash). A
    # redirect would break a browser's CORS preflight, which cannot follow one.
    url = f"/{service}{slash}"
    preflight = stack_client.options(url, headers=PREFLIGHT)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]

    answer = stack_client.get(url, query_string={"search_string": "", "bucket_path": ""})
    assert answer.status_code == 400 and answer.get_json()["msg"].endswith("is required")
    posted = stack_client.post(url, json={"search_string": "", "bucket_path": ""})
    assert posted.status_code == 400 and posted.get_json()["msg"].endswith("is required")


def test_a_lookup_at_the_production_url_shape_answers(stack_client, monkeypatch):
    monkeypatch.setenv("LOOKUP_ONLINE", "false")
    found = stack_client.get("/lookup-field", query_string={"search_string": "M42"})
    assert found.status_code == 200 and found.get_json()["success"] is True
    assert found.headers["Access-Control-Allow-Origin"] == "*"
