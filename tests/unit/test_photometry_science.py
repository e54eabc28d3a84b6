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

from panoptes_network.photometry import PhotometryParams
from panoptes_network.photometry.truth import (box_snr, check_transit, combined_flux, ensemble_share, host_candidates,
                                               independent_hosts, noise_floor, simulate_observation, truth_arrays,
                                               utc_days)
from panoptes_network.simulator import Transit

pytestmark = pytest.mark.slow

FIELD = (300.18, 22.71)  # HD 189733's field, from Mauna Loa
START = datetime(2024, 8, 10, 7, 0, tzinfo=timezone.utc)
SIZE = (700, 500)  # px: a 2.0 x 1.4 degree cut-out, ~70 catalog stars
FRAMES = 140  # 120 s every 135 s: 5.25 hours, a 2 h transit with 1.6 h before and after it, as a unit observes
CADENCE_S = 135.0
INJECTED = ((0.02, 2.0, 0.5), (0.015, 3.0, 0.5))  # depth, duration (h), mid-transit as a fraction of the night


def _hosts(count: int):
    """Unsaturated, uncrowded G 7.7-9.6 stars that are no comparison star of one another
    (a 12-frame pilot of the field), brightest first."""
    pilot = simulate_observation(*FIELD, START, 12, width=SIZE[0], height=SIZE[1], seed=10,
                                 readout=CADENCE_S - 120, params=PhotometryParams())
    chosen = independent_hosts(pilot.result, host_candidates(*FIELD, *SIZE, (7.7, 9.6)), count)
    assert len(chosen) == count
    return chosen


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
    # The median star (g channel). A single star's RMS over 140 frames scatters ~6% by itself.
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


def test_injected_transits_are_recovered_within_the_noise(clear):
    """2% (2 h) and 1.5% (3 h) transits on G 7.7-9.6 stars, fitted as a user would (r, g, b
    combined, a trapezoid on an airmass baseline): the fitted depth and mid-time lie within
    4 sigma of the truth by the fit's own errors; those errors are what the noise floor
    allows for these frames (a perfect pipeline's Fisher precision, within a factor the
    1.3x precision goal and the comparison stars' noise explain); and issue 13's tolerances
    (depth within 10%, mid-time within 3 min) hold wherever the floor makes them a
    near-certainty (>= 99.9%), which it does for the 2% transit. The full Monte Carlo over
    0.5-2% and magnitudes is in bench/photometry.py."""
    observation, signals = clear
    result = observation.result
    hosts = [result.index(str(s.star_id)) for s in signals]
    near_certain = []
    for signal, star in zip(signals, hosts):
        # neither host is a comparison star of the other: no transit leaks into another's lightcurve
        assert ensemble_share(result, star, [h for h in hosts if h != star]) == 0
        check = check_transit(observation, signal)
        fit = check.fit
        assert abs(fit.depth - signal.depth) < 4 * fit.depth_err, (signal, check)
        assert abs(check.mid_error_minutes) < 4 * check.mid_err_minutes, (signal, check)
        assert 0.8 < fit.depth_err / check.floor_depth_sigma < 1.6, (signal, check)
        assert 0.8 < check.mid_err_minutes / check.floor_mid_minutes < 1.6, (signal, check)
        if check.floor_probability >= 0.999:
            near_certain.append(signal.depth)
            assert check.goal_met, (signal, check)
    assert 0.02 in near_certain


def test_no_false_transit_on_stars_without_signal(clear):
    """The strongest 2-3 h box dip on every quiet star stays under 5 sigma (its own
    scatter), the box fitted jointly with a baseline linear in time and in the frames' FWHM;
    the same search finds the injected ones the noise floor makes unmistakable, so it can see
    a transit, and the baseline terms leave their signal. Why the baseline: bright quiet stars drift by a few 1e-3 over a night
    (slow, monotonic trends; some follow the seeing: their aperture, and the faint neighbours'
    light in it, change with it not quite as their comparisons' do), and a flat-baseline box
    reads a trend's low end as a dip: in this sequence a G 7.9 star at 5.1 sigma, and in the
    bench's 6.5 h realisations 6% of star-nights at 5 sigma or more, none with this baseline
    (two realisations checked). ``decorrelate=True`` in the pipeline removes such trends too
    but fits the in-transit points with the rest and takes ~20% of a transit's depth."""
    observation, signals = clear
    result = observation.result
    days = utc_days(result)
    baseline = np.column_stack([days, np.array(result.quality["fwhm_px"], float)])
    durations = np.array([2.0, 2.5, 3.0]) / 24

    def strongest(star, detrend=True):
        flux, _, usable = combined_flux(result, star)
        return box_snr(days[usable], flux[usable], durations, regressors=baseline[usable] if detrend else None)

    quiet = np.flatnonzero(_quiet_stars(observation, signals))
    worst = max(strongest(star) for star in quiet)
    assert worst < 5, worst
    # The injected transits the noise floor makes unmistakable (depth over 10 floor sigmas;
    # the 1.5% one on a G 9.5 host is at ~9.5, where a box search finds it near 5 or not):
    # found above 5 sigma, the baseline terms leaving them their significance.
    clear_hosts = [result.index(str(s.star_id)) for s in signals
                   if s.depth / check_transit(observation, s).floor_depth_sigma >= 10]
    assert clear_hosts
    for star in clear_hosts:
        assert strongest(star) > 5
        assert strongest(star) > 0.9 * strongest(star, detrend=False)


@pytest.fixture(scope="module")
def clear_without_signals():
    """The clear night again, the same seed (the same noise, cloud, drift), no transit."""
    return simulate_observation(*FIELD, START, FRAMES, width=SIZE[0], height=SIZE[1], seed=11,
                                readout=CADENCE_S - 120, params=PhotometryParams())


def test_a_transiting_comparison_star_leaks_no_signal_into_its_targets(clear, clear_without_signals):
    """The hosts' 2% and 1.5% transits are too shallow for the variable rejection (a star's
    RMS over twice its noise) to drop them from the ensembles, so other stars compare
    against them. The leak is the difference between the two nights' differential
    lightcurves (the same noise, so only the signal and the ensembles' reweighting differ):
    over each transit, no star's mean shifts by more than its own noise over that window
    (its RMS over the window's points, in and out). What keeps it there is the ensemble's
    size (25) and its weighting by measured scatter, which the transit raises: with an
    ensemble of 4 the same night leaks 2.1 times a star's window noise."""
    observation, signals = clear
    result, twin = observation.result, clear_without_signals.result
    assert list(twin.picid) == list(result.picid)
    hosts = [result.index(str(s.star_id)) for s in signals]
    # stars measured on at least 90% of the frames on both nights, hosts aside
    measured = (np.isfinite(result.flux[1]) & np.isfinite(twin.flux[1])).mean(axis=0) >= 0.9
    others = np.array([s for s in np.flatnonzero(measured) if s not in hosts])
    days = utc_days(result)
    leak = result.flux[1] - twin.flux[1]
    compared = 0
    for signal, host in zip(signals, hosts):
        users = [s for s in others if ensemble_share(result, s, [host]) > 0]
        compared += len(users)
        inside = np.abs(days - signal.epoch.timestamp() / 86400) < signal.duration_hours / 48
        window_noise = result.rms[1, others] * np.sqrt(1 / inside.sum() + 1 / (~inside).sum())
        shift = np.nanmean(leak[inside][:, others], axis=0) - np.nanmean(leak[~inside][:, others], axis=0)
        z = np.abs(shift) / window_noise
        assert z.max() < 1, (signal, result.picid[others[np.argmax(z)]], z.max())
    assert compared >= 10  # the hosts are comparison stars of others: the test sees a leak if there is one
