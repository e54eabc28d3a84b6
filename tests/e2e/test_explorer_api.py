"""The explorer's JSON API on both backends, over observations the pipeline recorded from
the real POCS frames and from generated ones."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from astropy.io import fits as astropy_fits

from panoptes_network import sky
from panoptes_network.explorer import previews, stats
from panoptes_network.explorer.search import naive_search, parse
from panoptes_network.stack.services import load_app
from tests.explorer_data import (
    FRAMES_PER_SEQUENCE,
    KIC_IMAGES,
    KIC_SEQUENCE_ID,
    POLE_SEQUENCE_ID,
    get_json,
    record_observations,
    sequence_id,
)


@pytest.fixture
def explorer(stack, pocs):
    sequences = record_observations(stack, pocs)
    stats._cache.clear()
    client = load_app("data-explorer").test_client()
    return client, stack, sequences


def test_observations_carry_their_healpix_cells(explorer):
    client, stack, sequences = explorer
    kic = stack.documents.get("observations", KIC_SEQUENCE_ID)
    # The plate-solved centre of solved.fits.fz, not the mount's pointing, is indexed.
    assert kic["healpix"] == sky.cells_of(kic["ra"], kic["dec"])
    generated = stack.documents.get("observations", sequence_id(sequences[0]))
    position = sky.position_of(generated)
    assert generated["healpix"] == sky.cells_of(position.ra, position.dec)


def test_search_by_name_finds_the_kic_observation_and_nothing_far_away(explorer):
    client, stack, sequences = explorer
    payload = get_json(client, "/api/observations?target=KIC%208462852&radius=5")
    ids = [row["sequence_id"] for row in payload["observations"]]
    assert KIC_SEQUENCE_ID in ids
    assert payload["cone"]["resolved_by"] == "exoplanet hosts"
    for row in payload["observations"]:
        assert row["separation"] <= 5
        assert sky.separation(301.5644, 44.4569, row["ra"], row["dec"]) <= 5.001
    kic = next(row for row in payload["observations"] if row["sequence_id"] == KIC_SEQUENCE_ID)
    assert kic["num_images"] == 2 and kic["total_minutes"] == pytest.approx(240.8 / 60, abs=0.01)
    assert kic["position_source"] == "plate-solved"
    assert kic["separation"] == pytest.approx(float(sky.separation(301.56439, 44.456875, 303.206422334,
                                                                   46.0173987483)), abs=1e-3)


@pytest.mark.parametrize("ra, dec, radius", [(301.5, 44.4, 5), (38.5, 89.0, 2), (0.0, 90.0, 30), (180, -30, 90),
                                             (10, 0, 180)])
def test_cone_search_returns_exactly_what_a_full_scan_finds(explorer, ra, dec, radius):
    client, stack, sequences = explorer
    payload = get_json(client, f"/api/observations?ra={ra}&dec={dec}&radius={radius}&per_page=500&sort=sequence_id")
    expected = naive_search(stack.documents, parse({"ra": ra, "dec": dec, "radius": radius, "sort": "sequence_id"}))
    assert [row["sequence_id"] for row in payload["observations"]] == [row["sequence_id"] for row in expected]
    assert payload["total"] == len(expected)
    if (ra, dec) == (38.5, 89.0):
        assert [row["sequence_id"] for row in payload["observations"]] == [POLE_SEQUENCE_ID]


def test_filters_dates_units_minimum_images_sorting_and_pages(explorer):
    client, stack, sequences = explorer
    everything = get_json(client, "/api/observations?per_page=500")
    assert everything["total"] == 2 + len(sequences)  # two POCS sequences and the generated ones
    times = [row["time"] for row in everything["observations"]]
    assert times == sorted(times, reverse=True)

    unit = sequences[0].site.unit_id
    by_unit = get_json(client, f"/api/observations?unit={unit}&per_page=500")
    assert {row["unit_id"] for row in by_unit["observations"]} == {unit}
    assert by_unit["total"] == sum(s.site.unit_id == unit for s in sequences) + (2 if unit == "PAN001" else 0)

    in_2016 = get_json(client, "/api/observations?start=2016-09-09&end=2016-09-09")
    assert [row["sequence_id"] for row in in_2016["observations"]] == [KIC_SEQUENCE_ID]
    whole_sky = get_json(client, "/api/observations?ra=0&dec=0&radius=180&start=2024-01-01&per_page=500")
    assert whole_sky["total"] == len(sequences)

    at_least_two = get_json(client, "/api/observations?min_images=2&per_page=500")
    assert {row["sequence_id"] for row in at_least_two["observations"]} == (
        {KIC_SEQUENCE_ID} | {sequence_id(s) for s in sequences})  # the pole sequence has one frame

    first = get_json(client, "/api/observations?per_page=2&page=1&sort=sequence_id&order=asc")
    second = get_json(client, "/api/observations?per_page=2&page=2&sort=sequence_id&order=asc")
    assert first["pages"] == second["pages"] == -(-everything["total"] // 2)
    listed = [row["sequence_id"] for row in first["observations"] + second["observations"]]
    assert listed == sorted(row["sequence_id"] for row in everything["observations"])[:4]


def test_observation_images_units_and_stats(explorer):
    client, stack, sequences = explorer
    observation = get_json(client, f"/api/observations/{KIC_SEQUENCE_ID}")["observation"]
    assert observation["field_name"] == "KIC 8462852" and "healpix" not in observation
    images = get_json(client, f"/api/observations/{KIC_SEQUENCE_ID}/images")["images"]
    assert [image["image_id"] for image in images] == list(KIC_IMAGES)
    assert images[0]["airmass"] == pytest.approx(1.131062349864597)
    generated = get_json(client, f"/api/observations/{sequence_id(sequences[0])}/images")["images"]
    assert len(generated) == FRAMES_PER_SEQUENCE
    assert [image["airmass"] for image in generated] == pytest.approx(sequences[0].airmass)
    assert [image["moonsep"] for image in generated] == pytest.approx(sequences[0].moon_separation)

    units = {unit["unit_id"]: unit for unit in get_json(client, "/api/units")["units"]}
    assert set(units) == {"PAN001"} | {s.site.unit_id for s in sequences}
    assert units["PAN001"]["location"] == {"latitude": 19.54, "longitude": -155.58}
    site = sequences[0].site
    assert units[site.unit_id]["elevation"] == site.elevation
    unit = get_json(client, f"/api/units/{site.unit_id}")
    assert sequence_id(sequences[0]) in [row["sequence_id"] for row in unit["observations"]]

    overview = get_json(client, "/api/stats?year=2024")
    all_rows = get_json(client, "/api/observations?per_page=500")["observations"]
    assert overview["totals"]["observations"] == len(all_rows)
    assert overview["totals"]["images"] == sum(row["num_images"] for row in all_rows) == 3 + 2 * len(sequences)
    assert overview["totals"]["exposure_hours"] == pytest.approx(sum(r["total_exptime"] for r in all_rows) / 3600,
                                                                 abs=0.01)
    assert overview["years"] == [2016, 2017, 2024]
    weekly = overview["weekly"]
    assert sum(sum(series["observations"]) for series in weekly["units"].values()) == len(sequences)
    assert sum(sum(series["images"]) for series in weekly["units"].values()) == 2 * len(sequences)
    assert overview["recent"][0]["time"] == max(row["time"] for row in all_rows)

    get_json(client, "/api/observations/PAN001_14d3bd_20990101T000000", status=404)
    get_json(client, "/api/units/PAN999", status=404)


def test_csv_and_json_downloads_hold_every_result(explorer):
    client, stack, sequences = explorer
    response = client.get("/api/observations?format=csv&per_page=1")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 2 + len(sequences)  # every result, not one page
    kic = next(row for row in rows if row["sequence_id"] == KIC_SEQUENCE_ID)
    assert kic["field_name"] == "KIC 8462852" and float(kic["ra"]) == pytest.approx(303.206422334)
    assert kic["time"] == "2016-09-09T08:11:52Z"
    document = client.get("/api/observations?format=json&target=KIC%208462852").get_json()
    assert document["total"] == len(document["observations"]) >= 1
    assert document["query"]["target"] == "KIC 8462852"


def test_frame_header_comes_from_get_fits_header(explorer, pocs):
    client, stack, sequences = explorer
    payload = get_json(client, f"/api/images/{KIC_IMAGES[1]}/header")
    expected = astropy_fits.getheader(pocs / "tiny.fits")
    header = payload["header"]
    assert header["FIELD"] == expected["FIELD"] and header["AIRMASS"] == pytest.approx(1.133153126390357)
    assert header["NAXIS1"] == 700  # the image's own header, restored from the compressed table
    assert list(header)[:3] == ["SIMPLE", "BITPIX", "NAXIS"]  # card order kept
    get_json(client, "/api/images/PAN001_14d3bd_20990101T000000/header", status=404)


def test_preview_is_made_once_then_served_from_the_bucket(explorer, monkeypatch):
    client, stack, sequences = explorer
    decompressions = []
    real = previews.binned_pixels
    monkeypatch.setattr(previews, "binned_pixels", lambda file: decompressions.append(1) or real(file))
    url = f"/api/images/{KIC_IMAGES[1]}/preview.png"
    first = client.get(url)
    assert first.status_code == 200 and first.mimetype == "image/png"
    assert first.headers["X-Preview-Cache"] == "made"
    from PIL import Image

    picture = Image.open(io.BytesIO(first.data))
    assert picture.size == (350, 350)  # 700 x 700 Bayer pixels -> one grey pixel per 2 x 2 cell
    assert 10 < np.asarray(picture).mean() < 245  # stretched, neither black nor white
    second = client.get(url)
    assert second.headers["X-Preview-Cache"] == "hit" and second.data == first.data
    assert decompressions == [1]
    cached = [info.name for info in stack.bucket(stack.settings.temp_bucket).list("previews/")]
    assert cached == ["previews/PAN001/14d3bd/20160909T081152/20160909T081434.fits.fz.png"]


@pytest.mark.parametrize("query, parameter, message", [
    ("ra=10&dec=20&radius=500", "radius", "radius must be between 0 and 180"),
    ("ra=10&dec=20&radius=0", "radius", "radius must be between 0 and 180"),
    ("ra=abc&dec=20", "ra", "ra must be a number"),
    ("ra=10&dec=95", "dec", "dec must be between -90 and 90"),
    ("ra=10", "dec", "dec is needed too"),
    ("start=2020-13-01", "start", "start must be a date"),
    ("start=2021-01-02&end=2021-01-01", "end", "is before start"),
    ("unit=XYZ", "unit", "unit 'XYZ' is not a unit id"),
    ("min_images=-1", "min_images", "min_images must be between 0 and"),
    ("sort=colour", "sort", "sort must be one of"),
    ("sort=separation", "sort", "needs a cone search"),
    ("order=up", "order", "order must be asc or desc"),
    ("page=0", "page", "page must be between 1"),
    ("per_page=100000", "per_page", "per_page must be between 1 and 500"),
    ("format=xml", "format", "format must be csv or json"),
    ("target=no%20such%20object%20anywhere%2042", "target", "could not be resolved"),
])
def test_invalid_parameters_are_400_naming_the_parameter(explorer, monkeypatch, query, parameter, message):
    client, stack, sequences = explorer
    monkeypatch.setenv("LOOKUP_ONLINE", "false")  # an unknown name must not wait for the network
    payload = get_json(client, f"/api/observations?{query}", status=400)
    assert payload["parameter"] == parameter
    assert message in payload["msg"] and parameter in payload["msg"]


def test_bad_ids_in_urls_are_400(explorer):
    client, stack, sequences = explorer
    assert get_json(client, "/api/observations/not-a-sequence", status=400)["parameter"] == "sequence_id"
    assert get_json(client, "/api/images/PAN001/header", status=400)["parameter"] == "image_id"
    assert get_json(client, "/api/units/pan1", status=400)["parameter"] == "unit_id"
    assert get_json(client, "/api/stats?year=twenty", status=400)["parameter"] == "year"


def test_reindex_makes_observations_recorded_without_the_index_searchable(explorer):
    from panoptes_network.pipeline.record import reindex_observations

    client, stack, sequences = explorer
    search = "/api/observations?target=KIC%208462852&radius=5"
    # As recorded before the index existed (or by older software): no cells, or wrong ones.
    kic = stack.documents.get("observations", KIC_SEQUENCE_ID)
    stack.documents.set("observations", KIC_SEQUENCE_ID,
                        {key: value for key, value in kic.items() if key != sky.INDEX_FIELD}, merge=False)
    other = sequence_id(sequences[0])
    stack.documents.set("observations", other, {sky.INDEX_FIELD: sky.cells_of(0.0, -89.0)}, merge=True)
    stack.documents.set("observations", "PAN999_000000_20200101T000000", {"unit_id": "PAN999"}, merge=False)
    assert KIC_SEQUENCE_ID not in [row["sequence_id"] for row in get_json(client, search)["observations"]]

    counts = reindex_observations(stack.settings)

    assert counts["updated"] == 2 and counts["without_position"] == 1
    assert counts["observations"] == stack.documents.count("observations")
    assert stack.documents.get("observations", KIC_SEQUENCE_ID)[sky.INDEX_FIELD] == sky.cells_of(kic["ra"], kic["dec"])
    position = sky.position_of(stack.documents.get("observations", other))
    assert stack.documents.get("observations", other)[sky.INDEX_FIELD] == sky.cells_of(position.ra, position.dec)
    stats._cache.clear()
    assert KIC_SEQUENCE_ID in [row["sequence_id"] for row in get_json(client, search)["observations"]]
    assert reindex_observations(stack.settings)["updated"] == 0  # safe to repeat


def test_the_search_page_takes_the_units_alias_the_api_takes(explorer):
    client, stack, sequences = explorer
    page = client.get("/search?units=PAN001")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="results"' in html and 'value="PAN001" selected' in html


def test_a_star_postage_stamp_is_cut_where_the_wcs_puts_it(explorer, pocs):
    """The plate-solved POCS frame's own WCS; a frame without one uses the plate solution in the
    processed bucket; a star off the frame is a 422, not a picture of somewhere else."""
    from io import BytesIO

    from astropy.wcs import WCS
    from PIL import Image

    from panoptes_network.pipeline.platesolve import wcs_path
    from panoptes_network.stars import COLLECTION

    client, stack, sequences = explorer
    with astropy_fits.open(pocs / "solved.fits.fz") as hdus:  # KIC_IMAGES[1] as uploaded
        header = next(hdu.header for hdu in hdus if hdu.is_image and hdu.shape)
    ra, dec = WCS(header, naxis=2).all_pix2world([[350.0, 250.0]], 0)[0]
    stack.documents.set(COLLECTION, "111", {"ra": float(ra), "dec": float(dec), "mag": 8.0}, merge=False)
    stack.documents.set(COLLECTION, "222", {"ra": float(ra) + 20, "dec": float(dec), "mag": 8.0}, merge=False)
    response = client.get(f"/api/stars/111/stamp.png?image_id={KIC_IMAGES[1]}")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert Image.open(BytesIO(response.data)).size == (previews.STAMP_SIZE, previews.STAMP_SIZE)
    off = client.get(f"/api/stars/222/stamp.png?image_id={KIC_IMAGES[1]}")
    assert off.status_code == 422 and "not on this frame" in off.get_json()["msg"]

    unsolved = stack.documents.get("images", KIC_IMAGES[0])
    assert client.get(f"/api/stars/111/stamp.png?image_id={KIC_IMAGES[0]}").status_code == 422  # no WCS yet
    # A plate solution for the 200 x 200 frame, centred on the star, stored as plate-solve stores it.
    solution = WCS(naxis=2)
    solution.wcs.ctype, solution.wcs.crval = ["RA---TAN", "DEC--TAN"], [float(ra), float(dec)]
    solution.wcs.crpix, solution.wcs.cdelt = [100.5, 100.5], [-0.01, 0.01]
    buffer = BytesIO()
    astropy_fits.PrimaryHDU(header=solution.to_header()).writeto(buffer)
    stack.bucket(stack.settings.processed_bucket).write(wcs_path(unsolved["bucket_path"]), buffer.getvalue())
    stamped = client.get(f"/api/stars/111/stamp.png?image_id={KIC_IMAGES[0]}")
    assert stamped.status_code == 200 and Image.open(BytesIO(stamped.data)).size == (64, 64)
