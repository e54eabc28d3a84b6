"""Malformed input of every kind at every endpoint: the answer is a 4xx with the reason
when anything is wrong; never a 5xx (a 5xx from a push endpoint means "retry" to Pub/Sub).
Properties checked by hypothesis on the local backend (the handlers are the same on both;
the gcp side is covered by the example tests)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from panoptes_network import http, runtime
from panoptes_network.config import settings
from panoptes_network.fits import BLOCK
from panoptes_network.messages import encode_push_envelope
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


# --- every endpoint of the local stack -------------------------------------------------------

PUSH_ENDPOINTS = ["/compress-fits/", "/make-rgb-fits/", "/record-image/", "/image-uploaded/", "/_stack/dead-letter"]
API_ENDPOINTS = ["/lookup-field/", "/lookup-field", "/get-fits-header/", "/get-fits-header"]
EXPLORER_ENDPOINTS = ["/", "/search", "/api/observations", "/api/units", "/api/stats", "/api/resolve",
                      "/api/observations/PAN001_14d3bd_20160909T081152", "/api/units/PAN001"]
ENDPOINTS = PUSH_ENDPOINTS + API_ENDPOINTS + EXPLORER_ENDPOINTS


def envelope_of(data: bytes, **fields) -> str:
    envelope = encode_push_envelope(data, subscription="projects/p/subscriptions/s")
    envelope["message"].update(fields)
    return json.dumps(envelope)


# Each of these answered a 500 somewhere before (issue 11): recursion, encoding, conversion.
HOSTILE_BODIES = {
    "lone surrogate in a value": '{"search_string": "\\ud800", "bucket_path": "PAN001/\\ud800"}',
    "lone surrogate in a key": '{"\\udfff": 1}',
    "lone surrogate in an envelope field": envelope_of(b"{}", messageId="\\ud800").replace("\\\\ud800", "\\ud800"),
    "list nested 5,000 deep": "[" * 5000 + "]" * 5000,
    "object nested 5,000 deep": '{"a":' * 5000 + "1" + "}" * 5000,
    "nested 500 deep (within json's recursion limit)": "[" * 500 + "]" * 500,
    "a list": "[1]",
    "a string": '"x"',
    "a number": "1",
    "null": "null",
    "not UTF-8": b'{"search_string": "\xff\xfe"}',
    "not JSON": "{",
    "a legacy background event": '{"context": 1, "data": 1}',
}


def assert_a_4xx_with_a_message(response, what: str) -> None:
    text = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {text[:300]}"
    if response.mimetype == "application/json":
        body = response.get_json()
        assert body.get("msg") or body.get("error"), f"{what}: no message in {text[:300]}"
    else:
        assert text.strip(), f"{what}: an empty {response.status_code}"


@pytest.mark.parametrize("kind", HOSTILE_BODIES)
def test_hostile_json_is_a_4xx_with_a_message_at_every_endpoint(stack_client, kind):
    for endpoint in ENDPOINTS:
        response = stack_client.post(endpoint, data=HOSTILE_BODIES[kind], content_type="application/json")
        assert_a_4xx_with_a_message(response, f"{kind} to {endpoint}")


def test_the_reason_is_given(stack_client):
    for endpoint in PUSH_ENDPOINTS + API_ENDPOINTS:
        deep = stack_client.post(endpoint, data="[" * 5000 + "]" * 5000, content_type="application/json")
        assert "nests deeper than" in deep.get_data(as_text=True), endpoint
        surrogate = stack_client.post(endpoint, data=HOSTILE_BODIES["lone surrogate in a value"],
                                      content_type="application/json")
        assert "lone surrogate" in surrogate.get_data(as_text=True), endpoint
        listed = stack_client.post(endpoint, data="[1]", content_type="application/json")
        assert "not an object" in listed.get_data(as_text=True), endpoint


def test_a_push_larger_than_a_pubsub_message_is_413_at_every_push_endpoint(stack_client):
    too_large = b'{"message": {"data": "' + b"A" * http.MAX_PUSH_BODY_BYTES + b'"}}'
    for endpoint in PUSH_ENDPOINTS:
        response = stack_client.post(endpoint, data=too_large, content_type="application/json")
        assert response.status_code == 413, endpoint
        assert str(http.PUBSUB_MAX_MESSAGE_BYTES) in response.get_data(as_text=True), endpoint


def test_a_push_of_the_largest_pubsub_message_passes_the_size_check(stack_client):
    # Pub/Sub's largest message, base64 in its envelope, is no 413: it gets as far as the
    # envelope check (its attributes are made wrong so that no job runs on 10 MB).
    body = envelope_of(b"x" * http.PUBSUB_MAX_MESSAGE_BYTES, attributes=["not", "an", "object"])
    assert len(body) <= http.MAX_PUSH_BODY_BYTES
    for endpoint in PUSH_ENDPOINTS:
        response = stack_client.post(endpoint, data=body, content_type="application/json")
        assert response.status_code == 400, endpoint
        assert "message.attributes is not an object" in response.get_data(as_text=True), endpoint


lone_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
hostile_text = st.text(alphabet=st.characters() | lone_surrogates, max_size=20)
hostile_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(value=hostile_json, depth=st.integers(0, 60), endpoint=st.sampled_from(ENDPOINTS),
       as_message_data=st.booleans())
def test_no_endpoint_answers_5xx_to_any_json(stack_client, value, depth, endpoint, as_message_data):
    nested = value
    for _ in range(depth):
        nested = [nested]
    body = json.dumps(nested)  # lone surrogates as \ud800 escapes, as an attacker would send them
    if as_message_data:  # a well-formed push whose message data is the hostile JSON
        body = envelope_of(body.encode())
    response = stack_client.post(endpoint, data=body, content_type="application/json")
    assert response.status_code < 500, f"{endpoint}: {response.status_code} {response.get_data(as_text=True)[:300]}"


HOSTILE_QUERIES = [
    "year=%ED%A0%80", "year=%FF", "year=٢٠٢٤", "unit=PAN%00", "unit=PAN١٢٣", "target=%ED%A0%80", "target=%00%01",
    "ra=1e400&dec=0", "ra=nan&dec=0", "radius=inf&ra=1&dec=1", "page=99999999999999999999", "per_page=-1",
    "start=%ED%A0%80", "sort=%FF", "units=" + "PAN001," * 2000,
    "start=9999-12-31&end=9999-12-31", "start=0001-01-01", "end=9999-12-31",  # end + 1 day overflowed: 500
    "search_string=%ED%A0%80", "bucket_path=%ED%A0%80", "hdu=%FF",
]
GET_PATHS = API_ENDPOINTS + EXPLORER_ENDPOINTS + [
    "/observations/%ED%A0%80", "/units/%FF", "/api/observations/PAN١٢٣_14d3bd_20160909T081152",
    "/api/images/%ED%A0%80/preview.png", "/api/images/PAN001_14d3bd_20160909T081152/header",
]


def test_hostile_queries_are_never_5xx_at_any_endpoint(stack_client):
    for path in GET_PATHS:
        for query in HOSTILE_QUERIES:
            response = stack_client.get(f"{path}?{query}")
            assert response.status_code < 500, f"{path}?{query[:60]}: {response.get_data(as_text=True)[:300]}"


def test_dates_beyond_the_calendar_are_a_400_naming_the_parameter(stack_client):
    response = stack_client.get("/api/observations?start=9999-12-31&end=9999-12-31")
    assert response.status_code == 400 and response.get_json()["parameter"] == "start"
    assert "between 1900-01-01 and 2199-12-31" in response.get_json()["msg"]


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["ra", "dec", "radius", "target", "start", "end", "unit", "units",
                                               "min_images", "sort", "order", "page", "per_page", "year", "format"]),
                              st.text(max_size=30) | st.sampled_from(["9999-12-31", "0001-01-01", "1e309", "-0"]),
                              max_size=5),
       path=st.sampled_from(["/api/observations", "/search", "/", "/api/units"]))
def test_the_explorer_never_answers_5xx_to_any_query(stack_client, params, path):
    response = stack_client.get(path, query_string=params)
    assert response.status_code < 500, f"{path} {params}: {response.get_data(as_text=True)[:300]}"
