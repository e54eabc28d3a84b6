"""``build_lightcurves`` on hand-made frame measurements with a known truth: no pixels,
so each behaviour of the per-observation step is pinned exactly and fast."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from panoptes_network.photometry import (COMPLETE, FLAG_SATURATED, FrameMeasurement, PhotometryParams, build_lightcurves,
                                        observation_fwhm)

START = datetime(2024, 8, 10, 7, 0, tzinfo=timezone.utc)
SITE = (19.54, -155.58, 3400.0)
NOISE = 0.003  # fractional, every star, every channel


def _measurements(frames=40, stars=30, seed=1, variable=0, trend_star=None, cloudy_frame=None):
    rng = np.random.default_rng(seed)
    mag = np.linspace(7.5, 9.5, stars)
    base = 1e5 * 10 ** (-0.4 * (mag - 7.5))
    colour = rng.uniform(0.5, 1.5, stars)
    ra = 300 + rng.uniform(-1, 1, stars)
    dec = 22 + rng.uniform(-1, 1, stars)
    out = []
    for f in range(frames):
        transparency = 1 - 0.3 * rng.random()
        if f == cloudy_frame:
            transparency = 0.2
        airmass = 1.0 + 0.5 * f / frames
        signal = np.ones(stars)
        signal[variable] = 1 + 0.05 * np.sin(2 * np.pi * f / 15)
        if trend_star is not None:
            signal[trend_star] *= 1 - 0.02 * (airmass - 1)  # a colour term the ensemble cannot remove
        flux = base[:, None] * np.array([colour, np.ones(stars), 1 / colour]).T * transparency * signal[:, None]
        flux = flux * (1 + NOISE * rng.standard_normal((stars, 3)))
        flags = np.zeros((stars, 3), np.uint8)
        if f == 3:
            flags[7] |= FLAG_SATURATED
        out.append(FrameMeasurement(
            image_id=f"PAN001_14d3bd_{f:03d}", time_utc=START + timedelta(seconds=135 * f + 60), exptime=120.0,
            site=SITE, picid=np.array([str(1000 + s) for s in range(stars)], dtype=object), ra=ra, dec=dec, mag=mag,
            x=np.linspace(100, 800, stars) + 0.05 * f, y=np.linspace(100, 500, stars), flux_e=flux,
            flux_err_e=flux * NOISE, sky_e=np.full((stars, 3), 150.0), aperture_pixels=np.array([50.0, 100.0, 50.0]),
            annulus_pixels=np.array([400.0, 800.0, 400.0]), flags=flags, fwhm_px=5.0, background_adu=80.0,
            zero_point_mag=15.2 + 2.5 * np.log10(transparency), airmass=airmass))
    return out


def test_differential_photometry_removes_the_cloud_and_keeps_the_noise():
    result = build_lightcurves(_measurements(), PhotometryParams())
    assert result.status == COMPLETE and result.num_stars == 30
    quiet = np.arange(1, 30)
    # each star's scatter is its own 0.3% plus the ensemble's (~0.3%/sqrt(25))
    assert np.median(result.rms[1, quiet]) == pytest.approx(NOISE, rel=0.25)
    assert np.median(result.plain_rms[1, quiet]) > 10 * NOISE  # the anchor sees the cloud
    assert np.allclose(np.nanmedian(result.flux[:, :, quiet], axis=1), 1, atol=1e-9)


def test_a_variable_star_is_no_comparison_for_anyone():
    result = build_lightcurves(_measurements(variable=0), PhotometryParams())
    index, weight = result.comparison_index[1], result.comparison_weight[1]
    assert not (index == 0).any()
    assert not (index == np.arange(30)[:, None]).any()  # nobody is their own comparison
    assert (weight[1:] > 0).sum(axis=1).min() >= 20  # everyone else still has an ensemble
    assert result.rms[1, 0] > 0.03  # and the variable keeps its variation


def test_frames_are_rejected_with_reasons_and_counted_once():
    measurements = _measurements(cloudy_frame=5)
    measurements.append(measurements[10])  # redelivered
    result = build_lightcurves(measurements, PhotometryParams())
    assert len(result.frames_used) == 39
    assert result.frames_rejected == [("PAN001_14d3bd_005", result.frames_rejected[0][1])]
    assert result.frames_rejected[0][1].startswith("transparency 0.2")
    assert result.time_utc == sorted(result.time_utc)
    # a flagged point keeps its flag and stays out of the statistics
    assert result.flags[1, 3, 7] & FLAG_SATURATED
    assert result.num_points[1, 7] == 38


def test_times_are_bjd_tdb_and_quality_is_per_frame():
    result = build_lightcurves(_measurements(), PhotometryParams())
    assert result.time_bjd_tdb.shape == (40, 30)
    utc_jd = np.array([t.timestamp() / 86400 + 2440587.5 for t in result.time_utc])
    offset_s = (result.time_bjd_tdb[:, 0] - utc_jd) * 86400
    assert np.all(np.abs(offset_s - 69.184) < 500)  # TT-UTC plus at most the light time across the orbit
    assert result.quality["drift_x_px"][-1] == pytest.approx(0.05 * 39)
    assert len(result.quality["transparency"]) == 40 and max(result.quality["transparency"]) <= 1.2
    lightcurve = result.lightcurve(0)
    assert set(lightcurve.channels) == {"r", "g", "b"} and lightcurve.best_rms == min(
        s["rms"] for s in lightcurve.summary.values())
    green = lightcurve.summary["g"]
    assert green["ppm_30min"] == pytest.approx(green["rms"] * np.sqrt(135 / 1800) * 1e6)
    curve = result.rms_vs_mag("g")
    assert len(curve["mag"]) == 30 and len(curve["theory_mag"]) == len(curve["theory_rms"]) >= 5


def test_decorrelation_takes_out_an_airmass_trend():
    plain = build_lightcurves(_measurements(trend_star=12), PhotometryParams())
    fitted = build_lightcurves(_measurements(trend_star=12), PhotometryParams(decorrelate=True))
    assert plain.rms[1, 12] > 1.5 * NOISE
    assert fitted.rms[1, 12] < 1.3 * NOISE


def test_documents_are_json_safe():
    import json

    measurements = _measurements()
    measurements[4].flux_e[2, 1] = np.nan  # a star off one frame
    result = build_lightcurves(measurements, PhotometryParams())
    run = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert run["num_frames_used"] == 40 and run["num_stars"] == 30 and run["frames_rejected"] == []
    assert run["rms_vs_mag"]["channel"] == "g" and len(run["quality"]["fwhm_px"]) == 40
    curve = json.loads(json.dumps(result.lightcurve(2).to_dict(), allow_nan=False))
    assert curve["picid"] == "1002" and curve["channels"]["g"]["flux"][4] is None
    assert len(curve["time_utc"]) == len(curve["time_bjd_tdb"]) == 40
    assert curve["summary"]["g"]["num_points"] == 39


def test_the_observations_fwhm_leaves_out_the_frames_that_measured_none():
    # one definition for the aperture (build_lightcurves) and the annulus (the service's first pass)
    assert observation_fwhm([3.0, np.nan, 4.0, 5.0, np.nan]) == 4.0
    assert observation_fwhm([np.nan, np.nan]) is None
    assert observation_fwhm([]) is None
