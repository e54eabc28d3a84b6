"""panoptes_network.http: the conventions both public services share."""

from __future__ import annotations

import json

import flask
import pytest

from panoptes_network import http


def app_answering(respond) -> flask.testing.FlaskClient:
    app = flask.Flask("probe")
    app.add_url_rule("/", "probe", lambda: http.serve_json(flask.request, "probe", respond),
                     methods=["GET", "POST", "OPTIONS", "PUT"])
    return app.test_client()


def test_query_parameters_and_json_body_merge_the_body_winning():
    client = app_answering(lambda params: {"seen": params})
    body = client.post("/?a=1&b=2", json={"b": 3, "c": [4]}).get_json()
    assert body == {"success": True, "seen": {"a": "1", "b": 3, "c": [4]}}


def test_an_unexpected_error_is_a_json_500_without_the_trace_and_the_log_has_it(capsys):
    def broken(params):
        raise RuntimeError("disk on fire")

    response = app_answering(broken).get("/")

    assert response.status_code == 500
    body = response.get_json()
    assert body["success"] is False and "RuntimeError" in body["msg"] and "disk on fire" not in body["msg"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert logged[-1]["severity"] == "ERROR" and "disk on fire" in logged[-1]["traceback"]


def test_an_oversized_body_is_413():
    response = app_answering(lambda params: {}).post("/", data=b"{" + b" " * http.MAX_BODY_BYTES + b"}",
                                                     content_type="application/json")
    assert response.status_code == 413 and response.get_json()["success"] is False


@pytest.mark.parametrize("value, expected", [(3, 3), ("3", 3), (" 12 ", 12), (None, None), ("", None)])
def test_whole_numbers_as_numbers_or_digits(value, expected):
    assert http.int_param({"hdu": value}, "hdu") == expected


@pytest.mark.parametrize("value", [True, 1.5, "1.5", "x", [1], "99999999999999", "١"])
def test_anything_else_is_not_a_whole_number(value):
    with pytest.raises(http.HttpError) as raised:
        http.int_param({"hdu": value}, "hdu")
    assert raised.value.status == 400


def test_parse_json_takes_any_text_and_nesting_up_to_the_limit():
    assert http.parse_json('{"name": "\\u00e9toile \\ud83d\\ude00"}') == {"name": "étoile 😀"}  # a valid pair
    nested = "[" * http.MAX_JSON_DEPTH + "]" * http.MAX_JSON_DEPTH
    assert http.parse_json(nested) is not None


@pytest.mark.parametrize("body, reason", [
    ('{"a": "\\ud800"}', "lone surrogate"),
    ('{"\\udc00": 1}', "lone surrogate"),
    ('["ok", ["\\ude00x"]]', "lone surrogate"),
    ("[" * (http.MAX_JSON_DEPTH + 1) + "]" * (http.MAX_JSON_DEPTH + 1), "nests deeper than"),
    ('{"a":' * 5000 + "1" + "}" * 5000, "nests deeper than"),
    (b"\xff\xfe{", "not JSON"),
])
def test_parse_json_refuses_what_later_code_would_fail_on(body, reason):
    with pytest.raises(http.HttpError, match=reason) as refused:
        http.parse_json(body)
    assert refused.value.status == 400
