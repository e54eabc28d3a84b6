"""lookup-field over HTTP: each resolution path and its answer, the errors, CORS. The
online path runs against a local fake Sesame speaking Sesame's format."""

from __future__ import annotations

import pytest

from tests.fake_sesame import FakeSesame, closed_port_url


@pytest.fixture
def fake_sesame(monkeypatch):
    server = FakeSesame({"TOI-700": (97.0963, -65.5791, "TOI-700")}).start()
    monkeypatch.setenv("LOOKUP_ONLINE", "true")
    monkeypatch.setenv("LOOKUP_SESAME_URLS", server.url)
    yield server
    server.stop()


@pytest.mark.parametrize(
    "search_string, source, name",
    [
        ("20h06m15.4s +44d27m24.8s", "coordinates", None),
        ("l=76.7 b=6.8", "coordinates", None),
        ("m 42", "OpenNGC", "NGC1976"),
        ("vega", "IAU bright stars", "Vega"),
        ("wasp 33", "exoplanet hosts", "WASP-33"),
    ],
)
def test_offline_answers_say_which_source_answered(lookup_field, search_string, source, name):
    response = lookup_field.get("/", query_string={"search_string": search_string})
    body = response.get_json()
    assert response.status_code == 200
    assert body["success"] is True and body["search_string"] == search_string
    assert body["source"] == source and body.get("name") == name
    assert 0 <= body["ra"] < 360 and -90 <= body["dec"] <= 90
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_typed_coordinates_come_back_in_degrees(lookup_field):
    body = lookup_field.get("/", query_string={"search_string": "20:06:15.4 +44:27:24.8"}).get_json()
    assert (body["ra"], body["dec"]) == pytest.approx((301.564167, 44.456889))


def test_post_json_answers_as_get(lookup_field):
    by_post = lookup_field.post("/", json={"search_string": "M31"})
    by_get = lookup_field.get("/?search_string=M31")
    assert by_post.status_code == 200 and by_post.get_json() == by_get.get_json()


def test_online_answer_from_sesame(lookup_field, fake_sesame):
    body = lookup_field.get("/", query_string={"search_string": "TOI-700"}).get_json()
    assert body == {"success": True, "search_string": "TOI-700", "ra": pytest.approx(97.0963),
                    "dec": pytest.approx(-65.5791), "source": "online", "name": "TOI-700"}


def test_not_found_anywhere_is_404(lookup_field, fake_sesame):
    response = lookup_field.get("/", query_string={"search_string": "Planet Nine"})
    assert response.status_code == 404
    body = response.get_json()
    assert body["success"] is False and "Sesame" in body["msg"] and body["search_string"] == "Planet Nine"


def test_not_found_offline_with_online_off_is_404_and_says_so(lookup_field):
    response = lookup_field.get("/", query_string={"search_string": "TOI-700"})
    assert response.status_code == 404 and "turned off" in response.get_json()["msg"]


def test_unreachable_resolver_is_503_that_says_so_but_offline_answers_stand(lookup_field, monkeypatch):
    monkeypatch.setenv("LOOKUP_ONLINE", "true")
    monkeypatch.setenv("LOOKUP_SESAME_URLS", closed_port_url())

    unreachable = lookup_field.get("/", query_string={"search_string": "TOI-700"})
    offline = lookup_field.get("/", query_string={"search_string": "NGC 7000"})

    assert unreachable.status_code == 503
    body = unreachable.get_json()
    assert body["success"] is False and "could not be reached" in body["msg"]
    assert "Traceback" not in unreachable.get_data(as_text=True)
    assert offline.status_code == 200 and offline.get_json()["source"] == "OpenNGC"


@pytest.mark.parametrize(
    "params, says",
    [
        ({}, "search_string is required"),
        ({"search_string": "  "}, "search_string is required"),
        ({"search_string": "x" * 201}, "longer than 200"),
        ({"search_string": "301.564 95"}, "Dec must be between -90 and 90"),
    ],
)
def test_input_to_fix_is_400_with_the_reason(lookup_field, params, says):
    response = lookup_field.get("/", query_string=params)
    assert response.status_code == 400
    assert response.get_json()["success"] is False and says in response.get_json()["msg"]


def test_a_search_string_that_is_not_a_string_is_400(lookup_field):
    response = lookup_field.post("/", json={"search_string": ["M42"]})
    assert response.status_code == 400 and "must be a string" in response.get_json()["msg"]


def test_cors_preflight_answers_without_looking_anything_up(lookup_field, fake_sesame):
    preflight = lookup_field.options("/", headers={"Origin": "https://example.org",
                                                   "Access-Control-Request-Method": "POST",
                                                   "Access-Control-Request-Headers": "Content-Type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert set(preflight.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "OPTIONS"}
    assert preflight.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert fake_sesame.requests == []
