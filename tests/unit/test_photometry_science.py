"""The photometry's science goals (issue 13) at a size ``make test`` can afford, on
simulated observations whose truth is known. Frames are measured through the simulator's
truth WCS (plate solving is tested elsewhere). The full-size figures, the 0.5-1% transits
and the multi-night BLS period search are in bench/photometry.py.

Noise floor, in every test here: the simulator's own noise model
(``simulator.noise.aperture_noise``: photon, sky, read, digitisation, the annulus's sky
error and scintillation) for each star over the same frames, with its true electrons in
our aperture and the true sky (``photometry.truth.noise_floor``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from panoptes_network.catalog import stars_in_footprint
from panoptes_network.photometry import PhotometryParams
from panoptes_network.photometry.truth import (box_snr, combined_flux, fit_transit, noise_floor, simulate_observation,
                                               truth_arrays)
from panoptes_network.simulator import Transit, camera

pytestmark = pytest.mark.slow

FIELD = (300.18, 22.71)  # HD 189733's field, from Mauna Loa
START = datetime(2024, 8, 10, 7, 0, tzinfo=timezone.utc)
SIZE = (700, 500)  # px: a 2.0 x 1.4 degree cut-out, ~70 catalog stars
FRAMES = 110  # 120 s every 135 s: 4.1 hours
CADENCE_S = 135.0
INJECTED = ((0.02, 2.0, 0.42), (0.015, 3.0, 0.55))  # depth, duration (h), mid-transit as a fraction of the night


def _hosts(count: int):
    """Unsaturated (G 7.7-8.5), well inside, no brighter catalog star within 40 px."""
    wcs = camera.truth_wcs(*FIELD, 0.0, *SIZE)
    stars = stars_in_footprint(wcs=wcs, shape=SIZE[::-1])
    x, y = wcs.all_world2pix(stars["ra"], stars["dec"], 0)
    chosen = []
    for k in np.flatnonzero((stars["mag"] >= 7.7) & (stars["mag"] <= 8.5)):
        inside = 80 < x[k] < SIZE[0] - 80 and 80 < y[k] < SIZE[1] - 80
        crowded = ((np.hypot(x - x[k], y - y[k]) < 40) & (stars["mag"] < stars["mag"][k])).any()
        if inside and not crowded:
            chosen.append(int(stars["id"][k]))
    assert len(chosen) >= count
    return chosen[:count]


@pytest.fixture(scope="module")
def clear():
    span = timedelta(seconds=FRAMES * CADENCE_S)
    signals = tuple(Transit(star, START + span * fraction, 3.1, depth, hours)
                    for star, (depth, hours, fraction) in zip(_hosts(len(INJECTED)), INJECTED))
    observation = simulate_observation(*FIELD, START, FRAMES, width=SIZE[0], height=SIZE[1], seed=11,
                                       readout=CADENCE_S - 120, signals=signals, params=PhotometryParams())
    return observation, signals


@pytest.fixture(scope="module")
def cloudy():
    return simulate_observation(*FIELD, START, 30, width=SIZE[0], height=SIZE[1], seed=12, cloud=0.3,
                                params=PhotometryParams())


def _quiet_stars(observation, signals=()):
    """Stars of G 7-10 without an injected signal, never saturated (truth), measured
    cleanly in at least 90% of the frames."""
    result = observation.result
    saturated = truth_arrays(observation, "saturated") == 1
    hosts = {str(s.star_id) for s in signals}
    return ((result.mag >= 7) & (result.mag <= 10) & ~np.isin(result.picid, list(hosts))
            & ~saturated.any(axis=0) & (result.num_points[1] >= 0.9 * len(result.frames_used)))


def _precision(observation, signals=()):
    result = observation.result
    floor = noise_floor(observation)
    quiet = _quiet_stars(observation, signals)
    assert quiet.sum() >= 25
    return result.rms[1, quiet] / floor[1, quiet], result.plain_rms[1, quiet] / floor[1, quiet]


def test_precision_on_a_clear_night_is_within_1_3x_the_noise_floor(clear):
    observation, signals = clear
    assert observation.result.status == "complete" and len(observation.result.frames_used) == FRAMES
    ratio, plain = _precision(observation, signals)
    # The median star (g channel). A single star's RMS over 110 frames scatters ~7% by itself.
    assert np.median(ratio) <= 1.3, f"median {np.median(ratio):.2f}, 90th percentile {np.percentile(ratio, 90):.2f}"


def test_precision_under_thin_cloud_is_within_1_5x_the_noise_floor(cloudy):
    result = cloudy.result
    transparency = np.array(result.quality["transparency"])
    assert transparency.min() < 0.8  # the cloud took up to 30% of the light
    ratio, plain = _precision(cloudy)
    assert np.median(ratio) <= 1.5, f"median {np.median(ratio):.2f}"
    # the anchor: plain aperture photometry, no comparison stars, sees the cloud
    assert np.median(plain) > 3 * np.median(ratio)


def test_errors_describe_the_scatter(clear):
    """Normalised residuals (flux - 1) / flux_err of quiet stars: standard deviation 0.8-1.3."""
    observation, signals = clear
    result = observation.result
    quiet = _quiet_stars(observation, signals)
    z = ((result.flux[1] - 1) / result.flux_err[1])[:, quiet]
    z = z[(result.flags[1][:, quiet] == 0) & np.isfinite(z)]
    assert 0.8 < np.std(z) < 1.3


def test_injected_transits_are_recovered(clear):
    """2% (2 h) and 1.5% (3 h) transits on G 7.7-8.5 stars: depth within 10% of the
    truth, mid-transit within 3 minutes, found above 5 sigma (r, g, b averaged)."""
    observation, signals = clear
    result = observation.result
    days = np.array([t.timestamp() for t in result.time_utc]) / 86400
    for signal in signals:
        star = result.index(str(signal.star_id))
        flux, err, usable = combined_flux(result, star)
        fit = fit_transit(days[usable], flux[usable], err[usable], np.arange(1.5, 3.51, 0.25) / 24)
        minutes = (fit.mid - signal.epoch.timestamp() / 86400) * 1440
        assert abs(fit.depth / signal.depth - 1) <= 0.10, (signal, fit)
        assert abs(minutes) <= 3.0, (signal, fit)
        assert fit.snr > 5


def test_no_false_transit_on_stars_without_signal(clear):
    """The strongest 2-3 h box dip on every quiet star stays under 5 sigma (its own
    scatter); the same search finds the injected ones, so it can see a transit."""
    observation, signals = clear
    result = observation.result
    days = np.array([t.timestamp() for t in result.time_utc]) / 86400
    durations = np.array([2.0, 2.5, 3.0]) / 24

    def strongest(star):
        flux, _, usable = combined_flux(result, star)
        return box_snr(days[usable], flux[usable], durations)

    quiet = np.flatnonzero(_quiet_stars(observation, signals))
    worst = max(strongest(star) for star in quiet)
    assert worst < 5, worst
    assert min(strongest(result.index(str(s.star_id))) for s in signals) > 5
