"""Transit fits: one transit on one night, and a periodic transit over many nights.

Product code (the explorer's period search reports :func:`fit_periodic_transit` beside its
BoxLeastSquares peak); ``photometry.truth`` checks both fits against the simulator's truth.
numpy only at import (scipy is imported by :func:`fit_transit` alone; the explorer's image
does not install it).

- :func:`trapezoid`: the dip's shape, :class:`simulator.Transit`'s (linear ingress and egress,
  each ``ingress_fraction`` of the duration).
- :func:`fit_transit`: one transit on a baseline flat or linear in airmass
  (:func:`choose_baseline`), errors from its Jacobian; :func:`transit_precision` is the same
  fit's Fisher information on given errors (on the noise floor: what a perfect pipeline reaches).
- :func:`fit_periodic_transit`: a transit repeating with a period on a stitched multi-night
  lightcurve: one depth, duration, mid-time T0 and period for all transits, each night (or
  lightcurve: ``segments``) with its own normalisation, so night-to-night offsets do not leak
  into the depth. :func:`periodic_transit_precision` is its Fisher information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def trapezoid(t: np.ndarray, mid: float, duration: float, ingress_fraction: float) -> np.ndarray:
    """1 at full depth, 0 outside, linear in ingress and egress (:class:`simulator.Transit`'s shape)."""
    half = duration / 2
    ingress = ingress_fraction * duration
    distance = np.abs(t - mid)
    return np.clip((half - distance) / ingress, 0, 1) if ingress > 0 else (distance < half).astype(float)


def _model_and_jacobian(t, x, p, ingress_fraction):
    """The transit model (c0 + c1 x)(1 - depth trapezoid) and its derivatives by
    (c0, c1, depth, mid, duration), analytic (the trapezoid is piecewise linear)."""
    c0, c1, depth, mid, duration = p
    ingress = ingress_fraction * duration
    distance = np.abs(t - mid)
    ramp_value = (duration / 2 - distance) / ingress
    shape = np.clip(ramp_value, 0, 1)
    on_ramp = (ramp_value > 0) & (ramp_value < 1)
    d_mid = np.where(on_ramp, np.sign(t - mid) / ingress, 0.0)
    d_duration = np.where(on_ramp, distance / (ingress_fraction * duration**2), 0.0)
    baseline = c0 + c1 * x
    model = baseline * (1 - depth * shape)
    jacobian = np.column_stack([1 - depth * shape, x * (1 - depth * shape), -baseline * shape,
                                -baseline * depth * d_mid, -baseline * depth * d_duration])
    return model, jacobian


@dataclass(frozen=True)
class TransitFit:
    depth: float
    depth_err: float
    mid: float  # days, the time axis given
    mid_err: float  # days
    duration: float  # days
    snr: float
    chi2: float
    points: int
    airmass_trend: bool  # the baseline had an airmass term


def fit_transit(t: np.ndarray, flux: np.ndarray, err: np.ndarray, durations_days, *,
                airmass: np.ndarray | None = None, ingress_fraction: float = 0.15,
                step_days: float = 1 / 1440) -> TransitFit:
    """The best trapezoid dip (ingress ``ingress_fraction`` of the duration, the shape the
    simulator injects) on a baseline linear in airmass (if given): a grid over mid-time
    (inside the data) and duration with the baseline and depth by weighted least squares,
    then all five parameters together (scipy's least_squares, analytic Jacobian). Errors
    from the Jacobian, scaled by the fit's reduced chi^2 when that exceeds 1."""
    from scipy.optimize import least_squares

    keep = np.isfinite(t) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    if airmass is not None:
        keep &= np.isfinite(airmass)
    origin = float(np.mean(t[keep]))
    t, flux, err = t[keep] - origin, flux[keep], err[keep]
    x = (airmass[keep] - np.mean(airmass[keep])) if airmass is not None else np.zeros_like(t)
    w = 1 / err**2
    columns = [np.ones_like(t)] + ([x] if airmass is not None else [])
    best = None
    for duration in durations_days:
        for mid in np.arange(t.min() + duration * 0.25, t.max() - duration * 0.25, step_days):
            a = np.column_stack(columns + [-trapezoid(t, mid, duration, ingress_fraction)])
            normal = a.T @ (a * w[:, None])
            try:
                coefficients = np.linalg.solve(normal, a.T @ (w * flux))
            except np.linalg.LinAlgError:
                continue
            chi2 = float(np.sum(w * (flux - a @ coefficients) ** 2))
            if best is None or chi2 < best[0]:
                best = (chi2, coefficients, mid, duration)
    _, coefficients, mid, duration = best
    c1 = coefficients[1] if airmass is not None else 0.0
    start = np.array([coefficients[0], c1, coefficients[-1] / coefficients[0], mid, duration])
    free = [0, 1, 2, 3, 4] if airmass is not None else [0, 2, 3, 4]

    def full(q):
        p = start.copy()
        p[free] = q
        return p

    def residuals(q):
        return (flux - _model_and_jacobian(t, x, full(q), ingress_fraction)[0]) / err

    def jacobian(q):
        return -_model_and_jacobian(t, x, full(q), ingress_fraction)[1][:, free] / err[:, None]

    fitted = least_squares(residuals, start[free], jac=jacobian, x_scale="jac", method="lm")
    p = full(fitted.x)
    chi2 = float(np.sum(fitted.fun**2))
    reduced = chi2 / max(len(t) - len(free), 1)
    j = jacobian(fitted.x)
    covariance = np.linalg.pinv(j.T @ j) * max(1.0, reduced)
    depth_err = math.sqrt(covariance[free.index(2), free.index(2)])
    mid_err = math.sqrt(covariance[free.index(3), free.index(3)])
    depth = float(p[2])
    return TransitFit(depth=depth, depth_err=depth_err, mid=float(p[3] + origin), mid_err=mid_err,
                      duration=float(p[4]), snr=depth / depth_err if depth_err > 0 else 0.0, chi2=chi2, points=len(t),
                      airmass_trend=airmass is not None)


def choose_baseline(flat: TransitFit, with_airmass: TransitFit) -> TransitFit:
    """The fit with an airmass term in its baseline only if the data ask for it (BIC: its
    chi^2 lower by more than ln N). A field near the meridian mid-transit has an airmass
    curve shaped like the dip itself, so the extra term costs much of the depth's precision
    (in the unit test's field, 0.09% against 0.05%); differential photometry removes the
    extinction common to a star and its comparisons, and a term the data show no sign of
    only adds noise."""
    return with_airmass if flat.chi2 - with_airmass.chi2 > math.log(flat.points) else flat


def transit_precision(t: np.ndarray, sigma: np.ndarray, mid: float, duration: float, depth: float, *,
                      airmass: np.ndarray | None = None, ingress_fraction: float = 0.15) -> tuple[float, float]:
    """(sigma of the depth, of the mid-time in days) that the fit of :func:`fit_transit` would
    reach on points of error ``sigma`` (Fisher information of the same model at the truth):
    with ``sigma`` the noise floor, what a perfect pipeline achieves."""
    keep = np.isfinite(t) & np.isfinite(sigma) & (sigma > 0)
    if airmass is not None:
        keep &= np.isfinite(airmass)
    origin = float(np.mean(t[keep]))
    t, sigma = t[keep] - origin, sigma[keep]
    x = (airmass[keep] - np.mean(airmass[keep])) if airmass is not None else np.zeros_like(t)
    free = [0, 1, 2, 3, 4] if airmass is not None else [0, 2, 3, 4]
    _, jac = _model_and_jacobian(t, x, np.array([1.0, 0.0, depth, mid - origin, duration]), ingress_fraction)
    j = jac[:, free] / sigma[:, None]
    covariance = np.linalg.inv(j.T @ j)
    return math.sqrt(covariance[free.index(2), free.index(2)]), math.sqrt(covariance[free.index(3), free.index(3)])


# --- a periodic transit over many nights --------------------------------------------------------

GAP_DAYS = 0.25  # a gap this long starts a new night (segment) when none are given


class NoTransitCovered(ValueError):
    """The lightcurve holds no point inside any transit of the starting ephemeris (or too few points)."""


def night_segments(t: np.ndarray, gap_days: float = GAP_DAYS) -> np.ndarray:
    """An integer label per point: a new segment wherever the times (in any order) have a gap
    longer than ``gap_days``: one per night for a ground-based unit."""
    t = np.asarray(t, float)
    order = np.argsort(t, kind="stable")
    labels = np.empty(len(t), dtype=np.int64)
    labels[order] = np.concatenate([[0], np.cumsum(np.diff(t[order]) > gap_days)]) if len(t) else []
    return labels


def _periodic_model(t, segment, x, levels, slopes, depth, t0, duration, period, ingress_fraction, *, jacobian=True):
    """The model (levels + slopes x)[segment] * (1 - depth * trapezoid(distance to the nearest
    transit)), ``x`` each point's time from its segment's mean; the shape, the transit number
    of each point (0 at ``t0``), and (if ``jacobian``) the derivatives by (levels...,
    slopes..., depth, t0, duration, period), analytic: the trapezoid is piecewise linear."""
    number = np.round((t - t0) / period)
    u = t - t0 - number * period  # signed distance to the nearest mid-transit
    ingress = ingress_fraction * duration
    ramp = (duration / 2 - np.abs(u)) / ingress
    shape = np.clip(ramp, 0, 1)
    level = levels[segment] + slopes[segment] * x
    model = level * (1 - depth * shape)
    if not jacobian:
        return model, shape, number, None
    on_ramp = (ramp > 0) & (ramp < 1)
    d_shape_d_t0 = np.where(on_ramp, np.sign(u) / ingress, 0.0)
    d_shape_d_duration = np.where(on_ramp, np.abs(u) / (ingress_fraction * duration**2), 0.0)
    by_level = np.zeros((len(t), len(levels)))
    by_level[np.arange(len(t)), segment] = 1 - depth * shape
    by_slope = np.zeros((len(t), len(levels)))
    by_slope[np.arange(len(t)), segment] = x * (1 - depth * shape)
    jac = np.column_stack([by_level, by_slope, -level * shape, -level * depth * d_shape_d_t0,
                           -level * depth * d_shape_d_duration, -level * depth * number * d_shape_d_t0])
    return model, shape, number, jac


def _segment_residual(y, w, segment, count, x):
    """``y`` less its weighted least-squares fit per segment: a constant, or a line in ``x`` if given."""
    total = np.bincount(segment, w, count)
    total = np.where(total > 0, total, 1.0)
    if x is None:
        return y - (np.bincount(segment, w * y, count) / total)[segment]
    s1, s2 = np.bincount(segment, w * x, count), np.bincount(segment, w * x * x, count)
    y0, y1 = np.bincount(segment, w * y, count), np.bincount(segment, w * x * y, count)
    det = total * s2 - s1 * s1
    det = np.where(det > 0, det, np.inf)
    return y - ((s2 * y0 - s1 * y1) / det)[segment] - ((total * y1 - s1 * y0) / det)[segment] * x


def _profiled_gain(shape, flux, w, segment, count, x=None):
    """For a dip of this shape with every segment's own level (and slope in ``x``, if given)
    profiled out (the linearised model level_k [+ slope_k x] - a * shape): (the fall in chi^2, a)."""
    q = _segment_residual(shape, w, segment, count, x)
    r = _segment_residual(flux, w, segment, count, x)
    sqq = float(np.sum(w * q * q))
    if sqq <= 0:
        return 0.0, 0.0
    srq = float(np.sum(w * r * q))
    return srq * srq / sqq, -srq / sqq


def _red_noise_factor(t, segment, z, duration, ingress, min_bins=10):
    """beta of the time-averaging method (Pont et al. 2006; Winn et al. 2008): the residuals
    (in units of their errors) averaged in bins of a few widths from the ingress to half the
    duration, within each segment; beta = the rms of the bin means, times sqrt(points per
    bin), over the rms of the residuals (1 for white noise, more when the noise is
    correlated on the transit's time scales); the median over the widths, at least 1."""
    sigma = float(np.sqrt(np.mean(z**2)))
    if sigma <= 0:
        return 1.0
    start = np.full(int(segment.max()) + 1, np.inf)
    np.minimum.at(start, segment, t)
    ratios = []
    for width in (ingress, duration / 4, duration / 2):
        if width <= 0:
            continue
        key = segment * 1_000_000 + np.floor((t - start[segment]) / width).astype(np.int64)
        _, which, count = np.unique(key, return_inverse=True, return_counts=True)
        mean = np.bincount(which, z) / count
        full = count >= 2
        if full.sum() < min_bins:
            continue
        ratios.append(math.sqrt(float(np.mean(count[full] * mean[full] ** 2))) / sigma)
    return max(1.0, float(np.median(ratios))) if ratios else 1.0


def _normal_matrix(jac: np.ndarray) -> np.ndarray:
    """J^T J by einsum, not BLAS: for these tall, narrow matrices a multithreaded BLAS spent
    6x the CPU (28 ms against 4.6 ms for 4560 x 42) on a busy 2-core machine."""
    return np.einsum("ij,ik->jk", jac, jac)


@dataclass(frozen=True)
class PeriodicTransitFit:
    """A transit repeating with a period, fitted over every night at once (:func:`fit_periodic_transit`).
    Times in the lightcurve's own (BJD_TDB days for the explorer); errors 1 sigma."""

    depth: float  # fractional
    depth_err: float
    t0: float  # the mid-time of the covered transit nearest the data's weighted middle
    t0_err: float
    duration: float  # days, first to fourth contact
    duration_err: float
    period: float  # days
    period_err: float | None  # None: one transit covered, the period is the starting one, not fitted
    transits_covered: int  # transit epochs with at least MIN_IN_TRANSIT points between first and fourth contact
    transit_numbers: tuple[int, ...]  # those epochs, counted from t0
    segments: int  # nights (or lightcurves) near a transit, each with its own level: those fitted
    points: int  # their points
    trend: bool  # each segment's level linear in time (else constant)
    chi2: float
    reduced_chi2: float
    red_noise: float  # beta (:func:`_red_noise_factor`)
    error_scale: float  # the factor on the Jacobian's errors: sqrt(max(1, reduced chi^2)) * beta (errors unknown: sqrt(reduced chi^2) * beta)

    @property
    def snr(self) -> float:
        return self.depth / self.depth_err if self.depth_err > 0 else 0.0


MIN_IN_TRANSIT = 3


def fit_periodic_transit(t: np.ndarray, flux: np.ndarray, err: np.ndarray | None, period: float, t0: float,
                         duration: float, *, segments: np.ndarray | None = None, ingress_fraction: float = 0.15,
                         fit_period: bool = True, trend: bool = False, max_iterations: int = 60) -> PeriodicTransitFit:
    """One depth, duration, mid-time and period for every transit of a stitched lightcurve,
    each segment (``segments``: a label per point, e.g. the lightcurve it came from; by
    default :func:`night_segments`) with its own normalisation (``trend``: a level linear in
    time, for a pipeline whose stars drift within a night), starting from a period
    search's (``period``, ``t0``, ``duration``: BoxLeastSquares').

    1. The reference epoch: the covered transit nearest the in-transit points' weighted mean
       transit number (the data's middle, as the transits weigh it), so the mid-time T0 and
       the period are least correlated.
    2. A grid around the start, every segment's level profiled out: T0 within half a
       duration, the period so far that the farthest transit moves by half a duration, the
       duration 0.8-1.25x (steps of a sixth of the duration: the ingress is 0.15 of it).
    3. Every parameter at once (Levenberg-Marquardt, numpy; analytic Jacobian). The period is
       fitted only if two transits or more are covered (and ``fit_period``). Segments with no
       point near a transit are left out: their levels are their own, they say nothing of the dip.

    Errors: the Jacobian's covariance (on ``err``), times max(1, reduced chi^2) (the errors
    given are taken as a lower bound: more scatter than they say widens them, less never
    narrows them), times the red-noise factor beta squared (:func:`_red_noise_factor`: noise
    correlated on the transit's time scales averages down more slowly than white noise).
    Without errors (``err`` None or not all positive and finite), every point gets the
    residuals' scatter: the covariance is scaled by the reduced chi^2 itself.
    """
    if ingress_fraction <= 0:
        raise ValueError("the periodic fit needs a trapezoid (ingress_fraction > 0): a box has no gradient in time")
    t = np.asarray(t, float)
    flux = np.asarray(flux, float)
    known = err is not None and bool(np.all(np.isfinite(err) & (np.asarray(err, float) > 0)))
    err = np.asarray(err, float) if known else np.ones_like(flux)
    labels = night_segments(t) if segments is None else np.asarray(segments)
    keep = np.isfinite(t) & np.isfinite(flux)
    t, flux, err, labels = t[keep], flux[keep], err[keep], labels[keep]
    if len(t) < 10:
        raise NoTransitCovered(f"{len(t)} points: too few for a transit fit")
    _, segment = np.unique(labels, return_inverse=True)
    count = int(segment.max()) + 1
    w = 1 / err**2

    # 1. the reference epoch
    number = np.round((t - t0) / period)
    inside = np.abs(t - t0 - number * period) < duration / 2
    if inside.sum() < MIN_IN_TRANSIT:
        raise NoTransitCovered("no point inside a transit of the starting ephemeris")
    epochs = np.unique(number[inside])
    middle = np.average(number[inside], weights=w[inside])
    t0 = t0 + period * float(epochs[np.argmin(np.abs(epochs - middle))])
    number = np.round((t - t0) / period)
    covered = np.unique(number[np.abs(t - t0 - number * period) < duration / 2])
    fit_period = fit_period and len(covered) >= 2
    # Only the segments near a transit inform it: elsewhere a segment's level is fitted to its
    # own points alone, and the dip's parameters not at all. Near: within 1.5 durations, what
    # the grid below can move a transit's edge by.
    near = np.abs(t - t0 - number * period) < 1.5 * duration
    used = np.isin(segment, np.unique(segment[near]))
    t, flux, err, w, number = t[used], flux[used], err[used], w[used], number[used]
    _, segment = np.unique(segment[used], return_inverse=True)
    count = int(segment.max()) + 1
    x = t - (np.bincount(segment, t, count) / np.bincount(segment, minlength=count))[segment]
    ones, zeros = np.ones(count), np.zeros(count)

    # 2. the grid, levels profiled out
    best = None
    reach = float(np.abs(covered).max()) if fit_period else 0.0
    period_steps = np.linspace(-1, 1, 7) * (duration / 2 / reach) if reach > 0 else [0.0]
    for trial_duration in duration * np.array([0.8, 1.0, 1.25]):
        for dp in period_steps:
            for dt in np.linspace(-0.5, 0.5, 7) * duration:
                shape = _periodic_model(t, segment, x, ones, zeros, 1.0, t0 + dt, trial_duration, period + dp,
                                        ingress_fraction, jacobian=False)[1]
                gain, a = _profiled_gain(shape, flux, w, segment, count, x if trend else None)
                if a > 0 and (best is None or gain > best[0]):
                    best = (gain, a, t0 + dt, trial_duration, period + dp)
    if best is None:
        raise NoTransitCovered("no dip near the starting ephemeris")
    _, a, t0, duration, period = best
    shape = _periodic_model(t, segment, x, ones, zeros, 1.0, t0, duration, period, ingress_fraction,
                            jacobian=False)[1]
    total = np.bincount(segment, w, count)
    levels = (np.bincount(segment, w * (flux + a * shape), count)) / total
    depth = a / float(np.median(levels))

    # 3. every parameter at once: p = (levels, slopes, depth, t0, duration, period)
    k = 2 * count  # where the dip's parameters start
    free = np.r_[np.arange(count), count + np.arange(count) if trend else [], k + np.arange(4 if fit_period else 3)]
    free = free.astype(int)
    p = np.r_[levels, zeros, depth, t0, duration, period]

    def evaluate(q):
        model, _, _, jac = _periodic_model(t, segment, x, q[:count], q[count:k], q[k], q[k + 1], q[k + 2], q[k + 3],
                                           ingress_fraction)
        return (flux - model) / err, -jac[:, free] / err[:, None]

    def allowed(q):
        return 0 < q[k + 2] < q[k + 3] / 2

    residual, jac = evaluate(p)
    chi2 = float(residual @ residual)
    damping = 1e-3
    for _ in range(max_iterations):
        normal = _normal_matrix(jac)
        gradient = jac.T @ residual
        diagonal = np.where(np.diag(normal) > 0, np.diag(normal), 1.0)
        improved = False
        while damping < 1e12:
            try:
                step = np.linalg.solve(normal + damping * np.diag(diagonal), -gradient)
            except np.linalg.LinAlgError:
                damping *= 10
                continue
            trial = p.copy()
            trial[free] += step
            if allowed(trial):
                trial_residual, trial_jac = evaluate(trial)
                trial_chi2 = float(trial_residual @ trial_residual)
                if trial_chi2 <= chi2:
                    converged = chi2 - trial_chi2 < 1e-9 * max(chi2, 1.0)
                    p, residual, jac, chi2 = trial, trial_residual, trial_jac, trial_chi2
                    damping = max(damping / 10, 1e-12)
                    improved = True
                    break
            damping *= 10
        if not improved or converged:
            break

    depth, t0, duration, period = p[k], p[k + 1], p[k + 2], p[k + 3]
    dof = max(len(t) - len(free), 1)
    reduced = chi2 / dof
    number = np.round((t - t0) / period)
    in_transit = np.abs(t - t0 - number * period) < duration / 2
    epochs, points_in = np.unique(number[in_transit], return_counts=True)
    beta = _red_noise_factor(t, segment, residual, duration, ingress_fraction * duration)
    scale2 = (max(1.0, reduced) if known else reduced) * beta**2
    covariance = np.linalg.pinv(_normal_matrix(jac)) * scale2
    sigma = dict(zip(free.tolist(), np.sqrt(np.diag(covariance))))
    return PeriodicTransitFit(
        depth=float(depth), depth_err=float(sigma[k]), t0=float(t0), t0_err=float(sigma[k + 1]),
        duration=float(duration), duration_err=float(sigma[k + 2]), period=float(period),
        period_err=float(sigma[k + 3]) if fit_period else None,
        transits_covered=int(np.sum(points_in >= MIN_IN_TRANSIT)),
        transit_numbers=tuple(int(n) for n, c in zip(epochs, points_in) if c >= MIN_IN_TRANSIT),
        segments=count, points=len(t), trend=trend, chi2=chi2, reduced_chi2=float(reduced), red_noise=float(beta),
        error_scale=float(math.sqrt(scale2)))


def choose_periodic_baseline(level: PeriodicTransitFit, trend: PeriodicTransitFit) -> PeriodicTransitFit:
    """The fit whose segments' levels drift linearly in time if the data ask for it (AIC: its
    chi^2 lower by more than 2 per added slope). AIC, not the BIC of :func:`choose_baseline`:
    here the extra terms cost little (a slope is odd about a night's middle, a centred dip
    even: 2% of the depth's floor sigma in the unit test) while a drift left in biases the
    depth (this pipeline's stars drift by a few 1e-3 in a night; in the unit test's six nights
    +12% of the depth, 2 sigma, with a constant level, +7% with the slopes, which BIC refused)."""
    return trend if level.chi2 - trend.chi2 > 2 * trend.segments else level


def periodic_transit_precision(t: np.ndarray, sigma: np.ndarray, t0: float, period: float, duration: float,
                               depth: float, *, segments: np.ndarray | None = None, ingress_fraction: float = 0.15,
                               fit_period: bool = True, trend: bool = False) -> tuple[float, float, float | None]:
    """(sigma of the depth, of T0, of the period; days) that :func:`fit_periodic_transit`
    reaches on points of error ``sigma`` (its Fisher information at the truth, every
    segment's level free): with ``sigma`` the noise floor, what a perfect pipeline achieves
    from these transits. :func:`transit_precision` for several transits."""
    t = np.asarray(t, float)
    sigma = np.asarray(sigma, float)
    labels = night_segments(t) if segments is None else np.asarray(segments)
    keep = np.isfinite(t) & np.isfinite(sigma) & (sigma > 0)
    t, sigma, labels = t[keep], sigma[keep], labels[keep]
    _, segment = np.unique(labels, return_inverse=True)
    count = int(segment.max()) + 1
    x = t - (np.bincount(segment, t, count) / np.bincount(segment, minlength=count))[segment]
    jac = _periodic_model(t, segment, x, np.ones(count), np.zeros(count), depth, t0, duration, period,
                          ingress_fraction)[3]
    k = 2 * count
    free = np.r_[np.arange(count), count + np.arange(count) if trend else [], k + np.arange(4 if fit_period else 3)]
    free = free.astype(int)
    j = jac[:, free] / sigma[:, None]
    errors = dict(zip(free.tolist(), np.sqrt(np.diag(np.linalg.pinv(_normal_matrix(j))))))
    return float(errors[k]), float(errors[k + 1]), float(errors[k + 3]) if fit_period else None
