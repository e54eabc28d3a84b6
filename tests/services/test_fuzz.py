"""Malformed input of every kind at both services: the answer is JSON, and a 4xx when
anything is wrong; never a 5xx. Properties checked by hypothesis on the local backend
(the handlers are the same on both; the gcp side is covered by the example tests)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from panoptes_network import runtime
from panoptes_network.config import settings
from panoptes_network.fits import BLOCK
from tests.fake_sesame import closed_port_url

FUZZ = hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TINY = "PAN001/14d3bd/20160909T081152/20160909T081226.fits"
MUTANT = "PAN001/14d3bd/20160909T081152/mutant.fits"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=6,
)
# Text that looks like what users send, and text that does not.
path_like = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="PAN0123456789abcdef/._-T%~ ", max_size=80),
    st.sampled_from(["", "/", "..", "a/../b", "a//b", TINY, "/" + TINY, TINY + "/", "gs://x/y", "x" * 1100]),
)
coordinate_like = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="0123456789+-.:hmsd ,°'\"lbgaRADECra=", max_size=40),
    st.builds(lambda a, b: f"{a} {b}", st.floats(allow_nan=True, allow_infinity=True), st.floats()),
    st.sampled_from(["M", "NGC", "IC 99999", "HD", "WASP-", "l= b=", "galactic", "ra= dec="]),
)
header_params = st.fixed_dictionaries(
    {},
    optional={
        "bucket_path": path_like | json_values,
        "bucket_name": st.sampled_from(["panoptes-raw-images", "panoptes-rgb-images", "other", ""]) | json_values,
        "hdu": st.integers(-5, 2000) | st.text(max_size=8) | json_values,
        "format": st.sampled_from(["json", "cards", "CARDS", "xml", ""]) | json_values,
        "extra": json_values,
    },
)
lookup_params = st.fixed_dictionaries(
    {}, optional={"search_string": coordinate_like | json_values, "extra": json_values}
)


def query_of(params: dict) -> dict[str, str]:
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in params.items()}


def check_answer(response) -> dict:
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("success"), bool)
    assert body["success"] is (response.status_code == 200)
    if response.status_code >= 400:
        assert 400 <= response.status_code < 500 and body["msg"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    return body


@pytest.fixture
def local_frames(monkeypatch, tmp_path, pocs):
    monkeypatch.setenv("PANOPTES_BACKEND", "local")
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(tmp_path / "data"))
    runtime.reset()
    raw = runtime.bucket(settings().raw_bucket)
    raw.write(TINY, (pocs / "tiny.fits").read_bytes())
    yield raw
    runtime.reset()


@FUZZ
@given(params=header_params, method=st.sampled_from(["GET", "POST"]))
def test_get_fits_header_never_answers_5xx_to_any_parameters(get_fits_header, local_frames, params, method):
    if method == "GET":
        response = get_fits_header.get("/", query_string=query_of(params))
    else:
        response = get_fits_header.post("/", json=params)
    check_answer(response)


@FUZZ
@given(body=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_any_body_bytes_are_a_4xx_or_an_answer(get_fits_header, lookup_field, local_frames, body, content_type):
    for client in (get_fits_header, lookup_field):
        check_answer(client.post("/", data=body, content_type=content_type))


@FUZZ
@given(
    cut=st.integers(0, 3 * BLOCK),
    flips=st.lists(st.tuples(st.integers(0, 2 * BLOCK - 1), st.integers(0, 255)), max_size=12),
    hdu=st.none() | st.integers(0, 3),
)
def test_damaged_fits_files_are_422_or_read_never_5xx(get_fits_header, local_frames, cut, flips, hdu):
    data = bytearray(local_frames.read(TINY))
    for position, value in flips:
        data[position] = value
    damaged = bytes(data[: len(data) - cut])
    local_frames.write(MUTANT, damaged)
    params = {"bucket_path": MUTANT} if hdu is None else {"bucket_path": MUTANT, "hdu": hdu}
    response = get_fits_header.get("/", query_string=params)
    check_answer(response)
    assert response.status_code in (200, 400, 422)


@FUZZ
@given(params=lookup_params, method=st.sampled_from(["GET", "POST"]))
def test_lookup_field_never_answers_5xx_offline(lookup_field, params, method):
    if method == "GET":
        response = lookup_field.get("/", query_string=query_of(params))
    else:
        response = lookup_field.post("/", json=params)
    check_answer(response)
    assert response.status_code in (200, 400, 404)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(search_string=coordinate_like)
def test_lookup_field_with_sesame_unreachable_answers_200_400_404_or_503(lookup_field, monkeypatch, search_string):
    monkeypatch.setenv("LOOKUP_ONLINE", "true")
    monkeypatch.setenv("LOOKUP_SESAME_URLS", closed_port_url())
    response = lookup_field.get("/", query_string={"search_string": search_string})
    assert response.status_code in (200, 400, 404, 503), response.get_data(as_text=True)[:300]
    assert response.get_json()["success"] is (response.status_code == 200)
