"""The two HTTP services inside the local stack (`panoptes-network up`'s server), on both
backends, as a scientist's script would use them: a frame goes through ingest, then its
header is fetched at /get-fits-header and its field looked up at /lookup-field."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from panoptes_network.stack.server import StackServer

SOLVED = "PAN001/14d3bd/20160909T081152/20160909T081434.fits.fz"


@pytest.fixture
def server(stack, monkeypatch):
    monkeypatch.setenv("LOOKUP_ONLINE", "false")
    running = stack.server or StackServer(stack.settings, "127.0.0.1", 0).start_background()
    yield running
    if running is not stack.server:
        running.shutdown()


def call(url: str, *, method: str = "GET", body: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)


def test_a_scientist_fetches_an_ingested_frames_header_and_looks_up_its_field(stack, server, pocs):
    stack.upload(pocs / "solved.fits.fz", SOLVED)
    stack.drain()

    status, found, headers = call(f"{server.url}/get-fits-header?" + urllib.parse.urlencode({"bucket_path": SOLVED}))
    assert status == 200 and found["success"] is True and found["compressed"] is True
    assert headers["Access-Control-Allow-Origin"] == "*"
    header = found["header"]

    status, field, _ = call(f"{server.url}/lookup-field/", method="POST", body={"search_string": header["FIELD"]})
    assert status == 200 and field["source"] == "exoplanet hosts"
    assert field["ra"] == pytest.approx(header["RA-MNT"], abs=1e-3)
    assert field["dec"] == pytest.approx(header["DEC-MNT"], abs=1e-3)


def test_errors_and_preflight_through_the_stack(stack, server):
    status, body, _ = call(f"{server.url}/get-fits-header/?bucket_path=PAN001/nothing.fits")
    assert status == 404 and body["success"] is False and "does not exist" in body["msg"]
    status, body, _ = call(f"{server.url}/lookup-field/?search_string=")
    assert status == 400 and body["msg"] == "search_string is required"
    status, _, headers = call(f"{server.url}/lookup-field/", method="OPTIONS")
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"
