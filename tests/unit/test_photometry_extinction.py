"""Differential extinction across a wide field: a star and its comparisons are dimmed at
their own airmasses, so the uncorrected differential lightcurve trends with the star's
airmass minus its ensemble's (dX). ``build_lightcurves`` fits one k per channel over all
stars and divides it out. Hand-made measurements (no pixels, so it is fast) with the
simulator's extinction coefficients and each star's airmass from astropy's AltAz: the
truth the pipeline never sees."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from panoptes_network.photometry import FrameMeasurement, PhotometryParams, build_lightcurves
from panoptes_network.photometry.extinction import ensemble_airmass_difference, star_airmass
from panoptes_network.simulator.atmosphere import extinction

START = datetime(2024, 8, 10, 7, 0, tzinfo=timezone.utc)
SITE = (19.54, -155.58, 3400.0)  # Mauna Loa
NOISE = 0.0015  # fractional, every star and channel
FRAMES, STARS = 50, 60
TRANSITING = 5  # a 1.5% box in the middle of the night: it must not drive k
K_TRUE = extinction(SITE[2])  # r, g, b


@pytest.fixture(scope="module")
def sequence():
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    from panoptes_network.simulator.observatory import offline_astropy

    rng = np.random.default_rng(7)
    times = [START + timedelta(minutes=7 * f) for f in range(FRAMES)]  # 5.7 h, airmass 1.0-1.9
    ra = 300 + rng.uniform(-7.5, 7.5, STARS)  # a full frame's 15 x 10 degrees
    dec = 22 + rng.uniform(-5, 5, STARS)
    with offline_astropy():
        place = EarthLocation.from_geodetic(SITE[1] * u.deg, SITE[0] * u.deg, SITE[2] * u.m)
        frame = AltAz(obstime=Time(times)[:, None], location=place)
        true_airmass = SkyCoord(ra[None, :] * u.deg, dec[None, :] * u.deg).transform_to(frame).secz.value
    mag = rng.uniform(7.5, 9.5, STARS)
    colour = rng.uniform(0.7, 1.3, STARS)
    base = 1e5 * 10 ** (-0.4 * (mag - 7.5))
    measurements = []
    for f, time in enumerate(times):
        transparency = 1 - 0.2 * rng.random()
        signal = np.ones(STARS)
        if 20 <= f < 32:
            signal[TRANSITING] = 0.985
        dimming = 10 ** (-0.4 * K_TRUE[None, :] * true_airmass[f][:, None])  # (stars, 3)
        flux = (base[:, None] * np.array([colour, np.ones(STARS), 1 / colour]).T * dimming
                * transparency * signal[:, None] * (1 + NOISE * rng.standard_normal((STARS, 3))))
        measurements.append(FrameMeasurement(
            image_id=f"PAN001_14d3bd_{f:03d}", time_utc=time, exptime=120.0, site=SITE,
            picid=np.array([str(1000 + s) for s in range(STARS)], dtype=object), ra=ra, dec=dec, mag=mag,
            x=np.linspace(100, 5000, STARS), y=np.linspace(100, 3000, STARS), flux_e=flux, flux_err_e=flux * NOISE,
            sky_e=np.full((STARS, 3), 150.0), aperture_pixels=np.array([50.0, 100.0, 50.0]),
            annulus_pixels=np.array([400.0, 800.0, 400.0]), flags=np.zeros((STARS, 3), np.uint8), fwhm_px=5.0,
            background_adu=80.0, zero_point_mag=15.2, airmass=float(np.median(true_airmass[f]))))
    corrected = build_lightcurves(measurements, PhotometryParams())
    uncorrected = build_lightcurves(measurements, PhotometryParams(correct_extinction=False))
    return corrected, uncorrected, true_airmass


def _slope_pull(flux, dx):
    """A star's slope of magnitude against dX over its error at the noise floor."""
    magnitude = -2.5 * np.log10(flux)
    x = dx - dx.mean()
    slope = np.sum(x * (magnitude - magnitude.mean())) / np.sum(x**2)
    return slope / (1.0857 * NOISE * np.sqrt(2) / np.sqrt(np.sum(x**2)))  # star and ensemble: ~sqrt(2) x NOISE


def test_each_star_gets_its_own_airmass():
    times = [START + timedelta(hours=h) for h in (0, 3)]
    ra, dec = np.array([293.0, 307.0]), np.array([17.0, 27.0])
    airmass = star_airmass(times, SITE, ra, dec)
    assert airmass.shape == (2, 2) and np.all(airmass >= 1) and airmass[0, 0] != airmass[0, 1]


def test_differential_extinction_is_fitted_and_divided_out(sequence):
    corrected, uncorrected, true_airmass = sequence
    quiet = np.array([s for s in range(STARS) if s != TRANSITING])
    order = [corrected.index(str(1000 + s)) for s in range(STARS)]
    true_airmass = true_airmass[:, np.argsort(order)]  # columns in the result's star order
    for c, name in enumerate("rgb"):
        # k per channel: the simulator's within the fit's own error (and a sane error)
        k, k_err = corrected.summary["extinction_k"][name], corrected.summary["extinction_k_err"][name]
        assert abs(k - K_TRUE[c]) < 3 * k_err, (name, k, K_TRUE[c], k_err)
        assert 0 < k_err < 0.2 * K_TRUE[c]
        # the true dX of each star against the ensemble the pipeline used
        index, weight = corrected.comparison_index[c], corrected.comparison_weight[c]
        good = np.isfinite(uncorrected.flux[c])
        dx = ensemble_airmass_difference(true_airmass, good, index, weight)
        stars = [corrected.index(str(1000 + s)) for s in quiet]
        before = np.array([_slope_pull(uncorrected.flux[c, :, s], dx[:, s]) for s in stars])
        after = np.array([_slope_pull(corrected.flux[c, :, s], dx[:, s]) for s in stars])
        assert np.max(np.abs(before)) > 8, name  # uncorrected: quiet stars trend with dX
        assert np.max(np.abs(after)) < 4.5, (name, np.max(np.abs(after)))  # corrected: within the noise
        assert np.median(np.abs(after)) < 1.2
        # no quiet star is rejected as a variable for its airmass trend: all serve as comparisons
        assert len(np.unique(index[weight > 0])) >= len(quiet) - 2, name
    # the transit survives: its depth is not eaten by the correction
    star = corrected.index(str(1000 + TRANSITING))
    flux = corrected.flux[1, :, star]
    depth = np.median(np.r_[flux[:20], flux[32:]]) - np.median(flux[20:32])
    assert depth == pytest.approx(0.015, abs=0.002)
