"""The periodic (folded) transit fit, ``photometry.transits.fit_periodic_transit``: on
lightcurves of known white noise (its Fisher precision is then exactly the floor), and on a
six-night simulated observation through the whole photometry (issue 13's transit goal,
depth within 10% and mid-time within 3 min, for a 0.5% transit on a bright host). The
Monte Carlo over depths, durations, magnitudes and numbers of transits is in
``bench/photometry.py --only fold``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from panoptes_network.photometry.transits import (NoTransitCovered, fit_periodic_transit, periodic_transit_precision,
                                                  trapezoid)

PERIOD, DURATION, DEPTH, INGRESS = 1.37, 2.5 / 24, 0.005, 0.15
EPOCH = 100.3  # days


def _nights(count: int, hours: float = 6.5, cadence_s: float = 135.0) -> np.ndarray:
    return np.concatenate([100 + night + np.arange(0, hours / 24, cadence_s / 86400) for night in range(count)])


def _transit(t: np.ndarray, depth: float = DEPTH) -> np.ndarray:
    phase = (t - EPOCH + PERIOD / 2) % PERIOD - PERIOD / 2
    return 1 - depth * trapezoid(phase, 0.0, DURATION, INGRESS)


def _true_t0(fitted_t0: float) -> float:
    return EPOCH + PERIOD * round((fitted_t0 - EPOCH) / PERIOD)


def test_night_levels_do_not_leak_into_the_depth_and_errors_are_the_fisher_floor():
    """Eight 6.5 h nights, three of them holding a transit (0.5%, 2.5 h), white noise 0.4%
    per point (floor S/N ~10), and each night's level off by up to 2% (four depths). Started
    off the truth (period +0.05%, T0 +15 min, duration +10%), as a period search leaves it.
    The fit lands within 4 of its sigmas of the truth, its sigmas are the Fisher precision
    for these points (the floor here, the noise being exactly white) times the honest
    scaling (>= 1: the reduced chi^2 and the red-noise factor, each within a few % of 1 on
    white noise), and T0 is the covered transit nearest the data's middle. The same fit
    with one level for all nights is off by many sigmas: the per-night level is what keeps
    the offsets out of the depth."""
    rng = np.random.default_rng(7)
    t = _nights(8)
    night = np.floor(t - 100).astype(int)
    sigma = np.full(len(t), 0.004)
    levels = 1 + rng.uniform(-0.02, 0.02, 8)
    flux = _transit(t) * levels[night] + rng.normal(0, sigma)
    fit = fit_periodic_transit(t, flux, sigma, PERIOD * 1.0005, EPOCH + 15 / 1440, DURATION * 1.1)
    true_t0 = _true_t0(fit.t0)
    assert fit.transits_covered == 3 and fit.period_err is not None
    # the covered transits are numbers 0, 2 and 5 from EPOCH: the middle one is number 2
    assert round((true_t0 - EPOCH) / PERIOD) == 2 and fit.transit_numbers == (-2, 0, 3)
    assert abs(fit.depth - DEPTH) < 4 * fit.depth_err
    assert abs(fit.t0 - true_t0) < 4 * fit.t0_err
    assert abs(fit.period - PERIOD) < 4 * fit.period_err
    floor_depth, floor_t0, floor_period = periodic_transit_precision(t, sigma, true_t0, PERIOD, DURATION, DEPTH,
                                                                      segments=night)
    assert 1.0 <= fit.error_scale < 1.15
    assert fit.depth_err == pytest.approx(floor_depth * fit.error_scale, rel=0.05)
    # The timing sigmas scale with 1 / depth and the root of the ingress: at S/N ~10 the floor
    # taken at the truth and at the fitted depth and duration differ by ~10%; at the fitted
    # parameters they are the same up to the nights' levels (within 2% of 1).
    _, at_fit_t0, at_fit_period = periodic_transit_precision(t, sigma, fit.t0, fit.period, fit.duration, fit.depth,
                                                             segments=night)
    assert fit.t0_err == pytest.approx(at_fit_t0 * fit.error_scale, rel=0.03)
    assert fit.period_err == pytest.approx(at_fit_period * fit.error_scale, rel=0.03)
    assert 0.75 < fit.t0_err / floor_t0 < 1.33 and 0.75 < fit.period_err / floor_period < 1.33
    one_level = fit_periodic_transit(t, flux, sigma, PERIOD * 1.0005, EPOCH + 15 / 1440, DURATION * 1.1,
                                     segments=np.zeros(len(t)))
    assert abs(one_level.depth - DEPTH) > 4 * fit.depth_err


def test_a_drift_within_each_night_is_fitted_when_asked_and_costs_little():
    """Each night drifting by 0.3% from start to end (as this pipeline's stars can): the
    linear-level fit lands within 4 sigma of the truth with white residuals (red-noise
    factor ~1); the constant-level fit's residuals carry the drift, which its red-noise
    factor sees and widens its errors for (honestly: beyond the linear fit's); AIC picks
    the slopes. Their cost on the floor is < 30% here (a slope is odd about a night's
    middle; two of these transits are near a night's end)."""
    from panoptes_network.photometry.transits import choose_periodic_baseline

    rng = np.random.default_rng(8)
    t = _nights(8)
    night = np.floor(t - 100).astype(int)
    middle = np.array([t[night == k].mean() for k in range(8)])
    drift = 1 - 0.003 * (t - middle[night]) / (6.5 / 24)
    sigma = np.full(len(t), 0.002)
    flux = _transit(t) * drift + rng.normal(0, sigma)
    level = fit_periodic_transit(t, flux, sigma, PERIOD, EPOCH, DURATION)
    linear = fit_periodic_transit(t, flux, sigma, PERIOD, EPOCH, DURATION, trend=True)
    assert abs(linear.depth - DEPTH) < 4 * linear.depth_err
    assert abs(_true_t0(linear.t0) - linear.t0) < 4 * linear.t0_err
    assert linear.red_noise < 1.2 < 1.5 < level.red_noise and linear.depth_err < level.depth_err
    assert choose_periodic_baseline(level, linear) is linear and linear.trend
    floor_level = periodic_transit_precision(t, sigma, EPOCH, PERIOD, DURATION, DEPTH, segments=night)[0]
    floor_linear = periodic_transit_precision(t, sigma, EPOCH, PERIOD, DURATION, DEPTH, segments=night, trend=True)[0]
    assert floor_level < floor_linear < 1.3 * floor_level


def test_correlated_noise_widens_the_errors():
    """Noise correlated over an hour, as large as the white noise: the red-noise factor
    (time-averaging) is well above 1 and the errors carry it."""
    rng = np.random.default_rng(9)
    t = _nights(8)
    sigma = np.full(len(t), 0.003)
    kernel = np.exp(-0.5 * (np.arange(-60, 61) * 135 / 3600 / 0.5) ** 2)  # 30 min gaussian smoothing
    red = np.convolve(rng.normal(0, 1, len(t)), kernel / np.sqrt(np.sum(kernel**2)), mode="same") * 0.003
    fit = fit_periodic_transit(t, _transit(t) + red + rng.normal(0, sigma), sigma, PERIOD, EPOCH, DURATION)
    assert fit.red_noise > 1.5 and fit.error_scale >= fit.red_noise


def test_one_transit_leaves_the_period_alone_and_no_transit_is_refused():
    rng = np.random.default_rng(10)
    t = _nights(1)
    sigma = np.full(len(t), 0.002)
    fit = fit_periodic_transit(t, _transit(t) + rng.normal(0, sigma), sigma, PERIOD, EPOCH, DURATION)
    assert fit.transits_covered == 1 and fit.period_err is None and fit.period == PERIOD
    assert abs(fit.depth - DEPTH) < 4 * fit.depth_err
    with pytest.raises(NoTransitCovered):  # the ephemeris puts every transit between the nights
        fit_periodic_transit(t, np.ones(len(t)), sigma, 1.0, 100.6, DURATION)


FIELD = (300.18, 22.71)  # HD 189733's field, from Mauna Loa
START = datetime(2024, 8, 10, 7, 0, tzinfo=timezone.utc)
SIZE = (400, 300)  # px: the smallest cut-out holding a bright unsaturated host and its comparison stars
NIGHTS, FRAMES, CADENCE_S = 6, 133, 135.0  # 5 h a night, 120 s every 135 s


@pytest.mark.slow
def test_a_half_percent_transit_folded_over_six_nights_meets_the_goal():
    """A 0.5%, 3 h transit on a G 7.8 host, every 1.003 d (one a night, 4.3 min later each
    night, centred in a 5 h sequence), six nights through the whole photometry (one
    build_lightcurves over all frames). The explorer's search (0.7-3 d: with a transit every
    night P/2 fits as well) then the periodic fit, r, g, b combined, each night its own level.

    Noise floor: the simulator's noise model for this star on these frames (photon, sky,
    read, annulus, scintillation), through the same fit's Fisher information
    (``periodic_transit_precision``): its depth sigma is 4.9% of the depth (S/N 20.3; one
    such transit alone gives ~8). "Within 10%" with 95% probability needs S/N >= 19.6, so
    the goal is in reach here and (with the 3 min on T0, floor sigma 1.6 min) met with ~90%
    probability by a perfect pipeline. Asserted: the floor S/N (the premise); depth, T0
    and period within 4 of the fit's own sigmas; the fit's sigma within the precision goal's
    1.3x of the floor's; and issue 13's goal itself."""
    from panoptes_network.explorer.stars import _box_least_squares
    from panoptes_network.photometry.truth import (REQUIRED_SNR, check_periodic_transit, combined_flux,
                                                   host_candidates, scintillation_of, simulate_nights, utc_days)
    from panoptes_network.simulator import Transit

    host = host_candidates(*FIELD, *SIZE, (7.5, 8.25))[0]
    signal = Transit(host, START + timedelta(seconds=FRAMES * CADENCE_S / 2), 1.003, 0.005, 3.0)
    observation = simulate_nights(*FIELD, [START + timedelta(days=n) for n in range(NIGHTS)], FRAMES,
                                  width=SIZE[0], height=SIZE[1], seed=50, readout=CADENCE_S - 120, signals=(signal,))
    result = observation.result
    star = result.index(str(host))
    assert 7.5 <= result.mag[star] <= 8.25 and not result.flags[:, :, star].any()
    days = utc_days(result)
    flux, err, usable = combined_flux(result, star, scintillation_of(observation))
    best = _box_least_squares({"time": days[usable], "flux": flux[usable], "flux_err": err[usable]}, 0.7, 3.0)["best"]
    assert best["period"] == pytest.approx(signal.period_days, rel=0.01)
    check = check_periodic_transit(observation, signal, best["period"], best["t0_bjd_tdb"], best["duration_days"])
    fit = check.fit
    assert fit.transits_covered == NIGHTS and fit.period_err is not None
    assert check.floor_snr >= REQUIRED_SNR, check
    assert abs(fit.depth - signal.depth) < 4 * fit.depth_err, check
    assert abs(check.t0_error_minutes) < 4 * fit.t0_err * 1440, check
    assert abs(check.period_error) < 4 * fit.period_err, check
    assert 0.8 < fit.depth_err / fit.error_scale / check.floor_depth_sigma < 1.3, check
    assert check.goal_met, check
