"""get-fits-header on both backends (local files; fake-gcs-server through the Google
client): the real frames' headers, every error with its status and message, CORS."""

from __future__ import annotations

import json
import subprocess

import pytest
from astropy.io import fits as astropy_fits

from panoptes_network import fits, runtime
from panoptes_network.config import settings
from tests.conftest import need_tool

SEQUENCE = "PAN001/14d3bd/20160909T081152"
SOLVED = f"{SEQUENCE}/20160909T081434.fits.fz"
TINY = f"{SEQUENCE}/20160909T081226.fits"
NOT_FITS = f"{SEQUENCE}/20160909T081226.txt"
RGB = "PAN001/14d3bd/20160909T081152/20160909T081226-r.fits"


@pytest.fixture
def frames(backend, pocs):
    current = settings()
    raw = runtime.bucket(current.raw_bucket, current)
    raw.write(SOLVED, (pocs / "solved.fits.fz").read_bytes())
    raw.write(TINY, (pocs / "tiny.fits").read_bytes())
    raw.write(NOT_FITS, b"exposure notes, not a FITS file\n" * 10)
    runtime.bucket(current.rgb_bucket, current).write(RGB, (pocs / "rotation.fits").read_bytes())
    runtime.bucket(current.temp_bucket, current).write(TINY, (pocs / "tiny.fits").read_bytes())
    return pocs


def log_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_compressed_frame_answers_the_image_header_as_funpack_restores_it(get_fits_header, frames, tmp_path, capsys):
    funpack = need_tool("funpack")
    subprocess.run([funpack, "-O", str(tmp_path / "restored.fits"), str(frames / "solved.fits.fz")], check=True)
    funpacked = astropy_fits.getheader(tmp_path / "restored.fits")

    response = get_fits_header.get("/", query_string={"bucket_path": SOLVED})

    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True and body["bucket_path"] == SOLVED and body["compressed"] is True
    assert body["header"] == fits.header_as_json(funpacked)
    assert body["header"]["NAXIS1"] == 700 and "ZBITPIX" not in body["header"] and "TFIELDS" not in body["header"]
    assert isinstance(body["header"]["HISTORY"], list)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    # Only the header was read: two range reads, a small part of the object.
    served = [line for line in log_lines(capsys.readouterr().out) if line.get("service") == "get-fits-header"]
    assert served[-1]["reads"] == 2
    assert served[-1]["bytes_read"] < (frames / "solved.fits.fz").stat().st_size / 10


def test_plain_frame_answers_typed_values(get_fits_header, frames):
    body = get_fits_header.get("/", query_string={"bucket_path": TINY}).get_json()
    expected = astropy_fits.getheader(frames / "tiny.fits")
    assert body["compressed"] is False and body["hdu"] == 0
    assert body["header"] == fits.header_as_json(expected)
    assert body["header"]["SIMPLE"] is True
    assert body["header"]["EXPTIME"] == expected["EXPTIME"] and isinstance(body["header"]["EXPTIME"], float)
    assert body["header"]["ISO"] == 100


def test_hdu_selects_another_hdu_and_cards_give_the_raw_cards(get_fits_header, frames):
    body = get_fits_header.get("/", query_string={"bucket_path": SOLVED, "hdu": "0", "format": "cards"}).get_json()
    assert body["hdu"] == 0 and body["compressed"] is False
    assert "header" not in body
    assert body["cards"][0].startswith("SIMPLE  =") and all(len(card) == 80 for card in body["cards"])
    assert any(card.startswith("NAXIS   =                    0") for card in body["cards"])


def test_post_with_a_json_body_answers_as_get_does(get_fits_header, frames):
    by_get = get_fits_header.get("/", query_string={"bucket_path": SOLVED})
    by_post = get_fits_header.post("/", json={"bucket_path": SOLVED, "hdu": 1})
    assert by_post.status_code == 200 and by_post.get_json() == by_get.get_json()


def test_the_rgb_bucket_is_allowed_by_default(get_fits_header, frames):
    body = get_fits_header.get("/", query_string={"bucket_path": RGB, "bucket_name": settings().rgb_bucket}).get_json()
    assert body["success"] is True
    assert body["header"] == fits.header_as_json(astropy_fits.getheader(frames / "rotation.fits"))


def test_the_allow_list_is_configurable(get_fits_header, frames, monkeypatch):
    temp = settings().temp_bucket
    assert get_fits_header.get("/", query_string={"bucket_path": TINY, "bucket_name": temp}).status_code == 403
    monkeypatch.setenv("FITS_HEADER_BUCKETS", f"{temp}")
    assert get_fits_header.get("/", query_string={"bucket_path": TINY, "bucket_name": temp}).status_code == 200
    refused = get_fits_header.get("/", query_string={"bucket_path": TINY})
    assert refused.status_code == 403 and temp in refused.get_json()["msg"]


@pytest.mark.parametrize(
    "params, status, says",
    [
        ({}, 400, "bucket_path is required"),
        ({"bucket_path": ""}, 400, "bucket_path is required"),
        ({"bucket_path": "/" + TINY}, 400, "absolute"),
        ({"bucket_path": f"{SEQUENCE}/../{TINY}"}, 400, "'..'"),
        ({"bucket_path": "PAN001//x.fits"}, 400, "empty"),
        ({"bucket_path": "P/" * 600 + "x.fits"}, 400, "longer than 1024"),
        ({"bucket_path": f"gs://panoptes-raw-images/{TINY}"}, 400, "bucket_name"),
        ({"bucket_path": TINY, "bucket_name": "someone-elses-bucket"}, 403, "panoptes-raw-images"),
        ({"bucket_path": f"{SEQUENCE}/20160909T999999.fits"}, 404, "does not exist"),
        ({"bucket_path": NOT_FITS}, 422, "not a readable FITS file"),
        ({"bucket_path": TINY, "hdu": "4"}, 400, "1 HDU"),
        ({"bucket_path": TINY, "hdu": "one"}, 400, "whole number"),
        ({"bucket_path": TINY, "hdu": "-1"}, 400, "between 0 and"),
        ({"bucket_path": TINY, "format": "xml"}, 400, "format must be one of json, cards"),
    ],
    ids=lambda value: value if isinstance(value, int) else None,
)
def test_every_error_has_its_status_and_says_what_to_fix(get_fits_header, frames, params, status, says):
    response = get_fits_header.get("/", query_string=params)
    body = response.get_json()
    assert response.status_code == status
    assert body["success"] is False and says in body["msg"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_a_body_that_is_not_a_json_object_is_400(get_fits_header, frames):
    for body in (b"{not json", b"[1, 2]", b'"just a string"'):
        response = get_fits_header.post("/", data=body, content_type="application/json")
        assert response.status_code == 400 and response.get_json()["success"] is False


def test_cors_preflight_and_unsupported_methods(get_fits_header, backend):
    preflight = get_fits_header.options("/", headers={"Origin": "https://example.org",
                                                      "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    refused = get_fits_header.delete("/")
    assert refused.status_code == 405 and refused.get_json()["success"] is False


def test_solved_true_merges_the_stored_plate_solution(get_fits_header, frames):
    from astropy.wcs import WCS

    from panoptes_network.pipeline.platesolve import wcs_path

    current = settings()
    solution = WCS(naxis=2)
    solution.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    solution.wcs.crval = [303.2, 46.0]
    solution.wcs.crpix = [350.5, 350.5]
    solution.wcs.cd = [[0.0, 0.00286], [0.00286, 0.0]]
    stored = astropy_fits.PrimaryHDU(header=solution.to_header())
    runtime.bucket(current.processed_bucket, current).write(wcs_path(TINY), fits_bytes(stored))

    body = get_fits_header.get("/", query_string={"bucket_path": TINY, "solved": "true"}).get_json()
    raw = get_fits_header.get("/", query_string={"bucket_path": TINY}).get_json()
    assert body["solved"] is True
    assert body["header"]["CTYPE1"] == "RA---TAN" and body["header"]["CRVAL2"] == 46.0
    assert "CTYPE1" not in raw["header"]
    assert {key: value for key, value in body["header"].items() if key in raw["header"]} == raw["header"]

    missing = get_fits_header.get("/", query_string={"bucket_path": SOLVED, "solved": "yes"})
    assert missing.status_code == 404 and "no plate solution" in missing.get_json()["msg"]
    bad = get_fits_header.get("/", query_string={"bucket_path": TINY, "solved": "maybe"})
    assert bad.status_code == 400 and "solved must be true or false" in bad.get_json()["msg"]


def fits_bytes(hdu) -> bytes:
    import io

    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()
