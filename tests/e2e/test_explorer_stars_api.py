"""The explorer's star and lightcurve API on both backends, over processed data of the agreed
shape (tests/explorer_star_data.py): a hot-Jupiter host with a known transit, neighbours,
one lightcurve's arrays in the processed bucket."""

from __future__ import annotations

import base64
import csv
import io
import warnings

import numpy as np
import pytest
from astropy.io import fits as astropy_fits

from panoptes_network import sky
from panoptes_network.explorer import stars
from panoptes_network.stack.services import load_app
from tests.explorer_data import get_json
from tests.explorer_star_data import (
    BUCKET_STAR,
    DEPTH,
    DURATION_HOURS,
    HOST_DEC,
    HOST_PICID,
    HOST_RA,
    PERIOD_DAYS,
    TRANSIT_NUMBERS,
    write_processed_on,
)


@pytest.fixture
def explorer(stack):
    return load_app("data-explorer").test_client(), stack, write_processed_on(stack)


def typed_array(spec: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype="<" + spec["dtype"])


def assert_plot_matches(plot: dict, curves: list[dict]) -> None:
    """The star page's plot data holds every lightcurve's times and fluxes, as stored, with its
    flagged points NaN (the page leaves those out)."""
    assert [row["lightcurve_id"] for row in plot["lightcurves"]] == [curve["lightcurve_id"] for curve in curves]
    assert [series["lightcurve_id"] for series in plot["series"]] == [curve["lightcurve_id"] for curve in curves]
    flagged = 0
    for series, curve in zip(plot["series"], curves):
        assert series["time"]["dtype"] == "f8"  # a BJD needs float64: float32 would be off by minutes
        assert np.array_equal(typed_array(series["time"]), np.asarray(curve["time_bjd_tdb"]) - 2457000)
        assert sorted(series["channels"]) == sorted(curve["channels"]) == ["b", "g", "r"]
        for channel, values in curve["channels"].items():
            flux = typed_array(series["channels"][channel])
            bad = (np.asarray(values["flags"]) & stars.BAD_FLAGS) != 0
            assert np.isnan(flux[bad]).all() and not np.isnan(flux[~bad]).any()
            assert np.array_equal(flux[~bad], np.asarray(values["flux"], dtype=np.float32)[~bad])
            flagged += bad.sum()
    assert flagged >= len(curves)  # the data has a rejected frame in every run


def assert_one_channel_plotted(client, picid: str, channel: str) -> None:
    """With ``channel``, the plot data holds that channel's fluxes only, the same as in the whole."""
    whole = get_json(client, f"/api/stars/{picid}/lightcurves?format=plot")
    one = get_json(client, f"/api/stars/{picid}/lightcurves?format=plot&channel={channel}")
    assert one["lightcurves"] == whole["lightcurves"]
    assert [series["channels"] for series in one["series"]] == [
        {channel: series["channels"][channel]} for series in whole["series"]]
    assert [series["time"] for series in one["series"]] == [series["time"] for series in whole["series"]]


def test_a_host_found_by_name_and_the_measured_stars_listed(explorer):
    client, stack, written = explorer
    payload = get_json(client, "/api/stars?target=HD%20209458")
    assert [row["picid"] for row in payload["stars"]] == [HOST_PICID]
    assert payload["cone"]["resolved_by"] == "exoplanet hosts"
    assert payload["stars"][0]["num_lightcurves"] == len(TRANSIT_NUMBERS)
    listed = get_json(client, "/api/stars?sort=mag&order=asc")
    # Only measured stars without a cone: the unmeasured catalog star is not listed.
    assert [row["mag"] for row in listed["stars"]] == sorted(row["mag"] for row in listed["stars"])
    assert "420814999" not in [row["picid"] for row in listed["stars"]] and listed["total"] == 4
    by_rms = get_json(client, "/api/stars?sort=best_rms&per_page=2&page=2")
    assert by_rms["pages"] == 2 and len(by_rms["stars"]) == 2
    everything = [row["best_rms"] for row in get_json(client, "/api/stars?sort=best_rms")["stars"]]
    assert [row["best_rms"] for row in by_rms["stars"]] == sorted(everything)[2:]


def test_cone_and_magnitude_search_match_a_full_scan(explorer):
    client, stack, written = explorer
    payload = get_json(client, f"/api/stars?ra={HOST_RA}&dec={HOST_DEC}&radius=0.45&mag_min=8&mag_max=10&per_page=500")
    expected = sorted(doc.id for doc in stack.documents.query("stars")
                      if sky.separation(HOST_RA, HOST_DEC, doc.data["ra"], doc.data["dec"]) <= 0.45
                      and 8 <= doc.data["mag"] <= 10)
    assert sorted(row["picid"] for row in payload["stars"]) == expected
    assert "420814999" in expected and HOST_PICID not in expected  # unmeasured but in the cone; host too bright
    downloaded = client.get(f"/api/stars?ra={HOST_RA}&dec={HOST_DEC}&radius=0.45&mag_min=8&mag_max=10&format=csv")
    rows = list(csv.DictReader(io.StringIO(downloaded.get_data(as_text=True))))
    assert sorted(row["picid"] for row in rows) == expected and downloaded.mimetype == "text/csv"
    as_json = client.get(f"/api/stars?ra={HOST_RA}&dec={HOST_DEC}&radius=0.6&format=json").get_json()
    assert as_json["total"] == len(as_json["stars"]) == 5


def test_the_star_its_lightcurves_observations_and_runs(explorer):
    client, stack, written = explorer
    payload = get_json(client, f"/api/stars/{HOST_PICID}")
    assert payload["star"]["ids"]["hip"] == "108859"
    assert sorted(row["lightcurve_id"] for row in payload["lightcurves"]) == sorted(
        i for i in written.lightcurve_ids if i.endswith(HOST_PICID))
    assert {row["sequence_id"] for row in payload["observations"]} >= set(written.sequence_ids)
    assert all(row["processing_state"] == "processed" for row in payload["observations"] if row["measured"])
    curves = get_json(client, f"/api/stars/{HOST_PICID}/lightcurves")["lightcurves"]
    assert all(len(curve["time_bjd_tdb"]) == len(curve["channels"]["g"]["flux"]) > 100 for curve in curves)
    assert [row["num_points"] for row in payload["lightcurves"]] == [len(curve["time_bjd_tdb"]) for curve in curves]
    assert_plot_matches(get_json(client, f"/api/stars/{HOST_PICID}/lightcurves?format=plot"), curves)
    assert_one_channel_plotted(client, HOST_PICID, "g")
    run = get_json(client, f"/api/processed_observations/{written.run_ids[0]}")["run"]
    assert run["rms_vs_mag"]["picid"][0] == HOST_PICID and run["frames_rejected"][0]["reason"]
    observation = get_json(client, f"/api/observations/{written.sequence_ids[0]}")["observation"]
    assert observation["processing_state"] == "processed" and observation["latest_run_id"] == written.run_ids[0]


def test_arrays_moved_to_a_bucket_are_read_from_it(explorer):
    client, stack, written = explorer
    document = stack.documents.get("lightcurves", f"{written.run_ids[0]}_{BUCKET_STAR}")
    assert document["arrays"]["path"] and "channels" not in document
    curves = get_json(client, f"/api/stars/{BUCKET_STAR}/lightcurves")["lightcurves"]
    assert len(curves) == len(TRANSIT_NUMBERS)
    assert all(len(curve["channels"]["r"]["flux"]) == len(curve["time_bjd_tdb"]) > 100 for curve in curves)
    assert_plot_matches(get_json(client, f"/api/stars/{BUCKET_STAR}/lightcurves?format=plot"), curves)
    assert_one_channel_plotted(client, BUCKET_STAR, "r")
    table = client.get(f"/api/stars/{BUCKET_STAR}/lightcurves?format=csv").get_data(as_text=True)
    assert len(table.splitlines()) == 1 + 3 * sum(len(curve["time_bjd_tdb"]) for curve in curves)


def test_the_period_search_finds_the_injected_period_and_is_cached(explorer):
    client, stack, written = explorer
    first = get_json(client, f"/api/stars/{HOST_PICID}/periodogram")
    # Refined around its peaks: within 1e-4 (the single 8,000-period grid it replaced found 1.3e-4 here).
    # Against the noise: the fit's own period sigma on this white noise is 2.5e-5 (5 transits over 7
    # periods, 0.2% a point), so 1e-4 is 4 of them, and ten times tighter than issue 13's 0.1% goal.
    assert first["best"]["period"] == pytest.approx(PERIOD_DAYS, rel=1e-4)
    assert first["best"]["depth"] == pytest.approx(0.015, rel=0.2)
    assert len(first["period"]) == len(first["power"]) <= stars.MAX_PERIODS and first["cached"] is False
    # The peak fitted as a periodic transit (a level per lightcurve): the truth within 4 of its
    # own sigmas (white noise of known sigma here), every transit observed counted.
    fit = first["fit"]
    observed = [number for number in TRANSIT_NUMBERS if float(number).is_integer()]
    # the nights without a transit (where the aliases would put one) are far from any: not fitted
    assert fit["transits_covered"] == fit["lightcurves"] == len(observed)
    epoch = written.transit.epoch.timestamp() / 86400 + 2440587.5 + 0.004  # BJD_TDB, as written
    number = round((fit["t0_bjd_tdb"] - epoch) / PERIOD_DAYS)
    # T0 is the observed transit nearest the middle of those observed, so it and the period are least correlated
    assert number == min(observed, key=lambda n: abs(n - np.mean(observed)))
    # issue 13's tolerances (10%, 3 min) hold beyond doubt at this S/N
    assert abs(fit["t0_bjd_tdb"] - (epoch + number * PERIOD_DAYS)) < 4 * fit["t0_err_days"] < 3 / 1440
    assert abs(fit["depth"] - DEPTH) < 4 * fit["depth_err"] < 0.1 * DEPTH
    assert abs(fit["period"] - PERIOD_DAYS) < 4 * fit["period_err"]
    assert abs(fit["duration_days"] - DURATION_HOURS / 24) < 4 * fit["duration_err_days"]
    again = get_json(client, f"/api/stars/{HOST_PICID}/periodogram")
    assert again["cached"] is True and again["best"] == first["best"] and again["fit"] == fit
    flat = get_json(client, "/api/stars/420814600/periodogram")
    assert flat["best"]["power"] < first["best"]["power"] / 3  # a flat star has no transit of that strength


def test_fits_lightcurve_has_the_layout_lightkurve_reads(explorer):
    client, stack, written = explorer
    response = client.get(f"/api/stars/{HOST_PICID}/lightcurves?format=fits")
    assert response.status_code == 200 and response.mimetype == "application/fits"
    with astropy_fits.open(io.BytesIO(response.data)) as hdus:
        primary, table = hdus[0].header, hdus[1]
        assert primary["TELESCOP"] == "PANOPTES" and primary["TICID"] == int(HOST_PICID)
        assert primary["RA_OBJ"] == pytest.approx(HOST_RA) and "CREATOR" not in primary and primary["ORIGIN"]
        assert table.name == "LIGHTCURVE" and table.header["BJDREFI"] == 2457000 and table.header["TIMESYS"] == "TDB"
        time = table.data["TIME"]
        assert np.all(np.diff(time) > 0) and 3000 < time[0] < 4000
        assert set(table.columns.names) >= {"TIME", "FLUX", "FLUX_ERR", "QUALITY"}


def test_lightkurve_reads_the_fits_download_and_folds_it(explorer, tmp_path):
    lightkurve = pytest.importorskip("lightkurve", reason="lightkurve is in requirements-dev.txt")
    client, stack, written = explorer
    path = tmp_path / "lightcurve.fits"
    path.write_bytes(client.get(f"/api/stars/{HOST_PICID}/lightcurves?format=fits").data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curve = lightkurve.read(str(path))
        epoch = written.transit.epoch.timestamp() / 86400 + 2440587.5 + 0.004 - 2457000  # BTJD, as written
        in_transit_mask = np.abs(((curve.time.value - epoch + PERIOD_DAYS / 2) % PERIOD_DAYS) - PERIOD_DAYS / 2) < 0.07
        folded = curve.flatten(window_length=101, mask=in_transit_mask).fold(period=PERIOD_DAYS, epoch_time=epoch)
    assert int(curve.meta["TICID"]) == int(HOST_PICID) and len(curve) > 1000
    assert curve.time.format == "btjd"
    phase = folded.time.value  # days from mid-transit
    inside, outside = folded.flux.value[np.abs(phase) < 0.04], folded.flux.value[np.abs(phase) > 0.1]
    assert len(folded) == len(curve)
    assert np.median(outside) - np.median(inside) == pytest.approx(0.015, abs=0.003)


INVALID = [
    ("/api/stars?mag_min=bright", "mag_min"), ("/api/stars?mag_min=9&mag_max=8", "mag_max"),
    ("/api/stars?ra=10", "dec"), ("/api/stars?radius=50&ra=1&dec=1", "radius"), ("/api/stars?sort=colour", "sort"),
    ("/api/stars?sort=separation", "sort"), ("/api/stars?per_page=0", "per_page"), ("/api/stars?format=xls", "format"),
    ("/api/stars/not-a-star", "picid"), ("/api/stars/420814525/lightcurves?format=votable", "format"),
    ("/api/stars/420814525/lightcurves?format=fits&channel=u", "channel"),
    ("/api/stars/420814525/periodogram?min_period=0.01", "min_period"),
    ("/api/stars/420814525/periodogram?min_period=5&max_period=2", "max_period"),
    ("/api/stars/420814525/stamp.png", "image_id"), ("/api/processed_observations/x;y", "run_id"),

]


def test_invalid_parameters_are_400s_naming_them(explorer):
    client, stack, written = explorer  # one data set for every case: each would cost a fixture
    for url, parameter in INVALID:
        payload = get_json(client, url, 400)
        assert (payload["parameter"], parameter in payload["msg"]) == (parameter, True), url


def test_unknown_stars_and_runs_are_404s(explorer):
    client, stack, written = explorer
    assert "not in the catalog" in get_json(client, "/api/stars/1234567", 404)["msg"]
    get_json(client, "/api/processed_observations/PAN001_14d3bd_20160909T081152_0123456789ab", 404)
