"""Photometry checked against the sky simulator's truth: for tests and ``bench/photometry.py``.

- :func:`simulate_observation` renders a sequence and measures every frame through the
  simulator's *truth* WCS (plate solving is checked elsewhere), keeping only each frame's
  truth star table (not its pixels), so long sequences fit in memory.
- :func:`noise_floor` is the simulator's noise model (:func:`simulator.noise.aperture_noise`)
  for each star over the same frames: its true electrons in our aperture (the aperture's
  encircled fraction measured as the median measured/true flux), the true sky under it,
  our aperture's and annulus's pixel counts, its airmass; RMS over the frames.
- :func:`fit_transit` fits a trapezoid (ingress ``ingress_fraction`` of the duration, as
  :class:`simulator.Transit`) on a grid of mid-times and durations with the depth and the
  baseline linear; :func:`box_snr` is the strongest box-shaped dip's depth over its error,
  errors from the lightcurve's own scatter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from panoptes_network.photometry.lightcurves import ObservationResult, build_lightcurves
from panoptes_network.photometry.measure import CHANNELS, FrameMeasurement, measure_frame, picid_of
from panoptes_network.photometry.params import PhotometryParams


@dataclass
class SimulatedObservation:
    measurements: list[FrameMeasurement]
    truths: list  # astropy Table per frame (the simulator's truth.stars), catalog stars only
    specs: list
    result: ObservationResult | None = None


def simulate_observation(ra: float, dec: float, start: datetime, frames: int, *,
                         params: PhotometryParams | None = None, **sequence) -> SimulatedObservation:
    from panoptes_network.catalog import stars_in_footprint
    from panoptes_network.simulator import simulate_frame
    from panoptes_network.simulator.night import sequence_specs

    params = params or PhotometryParams()
    specs = sequence_specs(ra, dec, start, frames, **sequence)
    measurements, truths = [], []
    stars = None
    for spec in specs:
        frame = simulate_frame(spec)
        if stars is None:  # the footprint of the first frame: drift is a few pixels
            stars = stars_in_footprint(wcs=frame.truth.wcs, shape=frame.data.shape)
        measurements.append(measure_frame(frame.data, frame.header, frame.truth.wcs, stars, params))
        table = frame.truth.stars
        truths.append(table[table["catalog"]])
        del frame
    observation = SimulatedObservation(measurements, truths, specs)
    observation.result = build_lightcurves(measurements, params)
    return observation


def truth_arrays(observation: SimulatedObservation, column: str) -> np.ndarray:
    """(frames used, stars of the result): a truth column per used frame and result star (NaN if absent)."""
    result = observation.result
    used = {image_id: k for k, image_id in enumerate(result.frames_used)}
    out = np.full((len(result.frames_used), result.num_stars), np.nan)
    position = {p: i for i, p in enumerate(result.picid)}
    for m, table in zip(observation.measurements, observation.truths):
        if m.image_id not in used:
            continue
        for star_id, value in zip(table["id"], table[column]):
            i = position.get(picid_of(star_id))
            if i is not None:
                out[used[m.image_id], i] = value
    return out


def noise_floor(observation: SimulatedObservation) -> np.ndarray:
    """(3, stars): the simulator noise model's RMS for each star over the used frames."""
    from panoptes_network.simulator.noise import aperture_noise
    from panoptes_network.photometry.measure import MEDIAN_EFFICIENCY

    result = observation.result
    by_id = {m.image_id: m for m in observation.measurements}
    frames = [by_id[i] for i in result.frames_used]
    airmass = truth_arrays(observation, "airmass")
    floor = np.full((3, result.num_stars), np.nan)
    for c, channel in enumerate(CHANNELS):
        true_e = truth_arrays(observation, f"electrons_{channel}")
        sky = truth_arrays(observation, f"sky_{channel}")
        good = (result.flags[c] == 0) & np.isfinite(true_e) & (true_e > 0)
        fraction = float(np.nanmedian(np.where(good, result.raw_flux[c] / true_e, np.nan)))
        pixels = np.array([m.aperture_pixels[c] for m in frames])[:, None]
        annulus = np.array([m.annulus_pixels[c] for m in frames])[:, None] * MEDIAN_EFFICIENCY
        exptime = np.array([m.exptime for m in frames])[:, None]
        elevation = frames[0].site[2] if frames[0].site else 0.0
        model = aperture_noise(true_e * fraction, pixels, sky, exptime, airmass, elevation, background_pixels=annulus)
        relative = np.where(good, model.relative, np.nan)
        counted = np.isfinite(relative).sum(axis=0)
        floor[c] = np.where(counted > 0, np.sqrt(np.nansum(relative**2, axis=0) / np.maximum(counted, 1)), np.nan)
    return floor


def combined_flux(result: ObservationResult, star: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The r, g, b differential fluxes of one star averaged with inverse-variance weights:
    (flux, err, usable) per frame."""
    flux, err = result.flux[:, :, star], result.flux_err[:, :, star]
    usable = (result.flags[:, :, star] == 0) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    weights = np.where(usable, 1 / np.where(usable, err, 1) ** 2, 0.0)
    total = weights.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (weights * np.nan_to_num(flux)).sum(axis=0) / total
    return mean, 1 / np.sqrt(np.maximum(total, 1e-30)), total > 0


def _trapezoid(t: np.ndarray, mid: float, duration: float, ingress_fraction: float) -> np.ndarray:
    half = duration / 2
    ingress = ingress_fraction * duration
    distance = np.abs(t - mid)
    shape = np.clip((half - distance) / ingress, 0, 1) if ingress > 0 else (distance < half).astype(float)
    return shape  # 1 at full depth, 0 outside


@dataclass(frozen=True)
class TransitFit:
    depth: float
    depth_err: float
    mid: float  # days, the time axis given
    duration: float  # days
    snr: float


def fit_transit(t: np.ndarray, flux: np.ndarray, err: np.ndarray, durations_days, *,
                ingress_fraction: float = 0.15, step_days: float = 0.25 / 1440) -> TransitFit:
    """The best trapezoid dip: grid over mid-time (inside the data) and duration, depth and
    baseline by weighted least squares; the depth's error scaled by the fit's reduced chi^2
    when that exceeds 1."""
    keep = np.isfinite(t) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    t, flux, err = t[keep], flux[keep], err[keep]
    w = 1 / err**2
    best = None
    for duration in durations_days:
        for mid in np.arange(t.min() + duration * 0.25, t.max() - duration * 0.25, step_days):
            shape = _trapezoid(t, mid, duration, ingress_fraction)
            a = np.column_stack([np.ones_like(t), -shape])
            normal = a.T @ (a * w[:, None])
            try:
                coefficients = np.linalg.solve(normal, a.T @ (w * flux))
            except np.linalg.LinAlgError:
                continue
            chi2 = float(np.sum(w * (flux - a @ coefficients) ** 2))
            if best is None or chi2 < best[0]:
                covariance = np.linalg.inv(normal)
                best = (chi2, coefficients, covariance, mid, duration)
    chi2, coefficients, covariance, mid, duration = best
    scale = max(1.0, chi2 / max(len(t) - 4, 1))
    depth = coefficients[1] / coefficients[0]
    depth_err = math.sqrt(covariance[1, 1] * scale) / coefficients[0]
    return TransitFit(depth=float(depth), depth_err=float(depth_err), mid=float(mid), duration=float(duration),
                      snr=float(depth / depth_err) if depth_err > 0 else 0.0)


def box_snr(t: np.ndarray, flux: np.ndarray, durations_days, step_days: float = 2 / 1440) -> float:
    """The largest depth / error of a box dip anywhere in the lightcurve (at least half of
    the box inside the data), the error from the lightcurve's own scatter (1.4826 MAD)."""
    keep = np.isfinite(t) & np.isfinite(flux)
    t, flux = t[keep], flux[keep]
    sigma = 1.4826 * float(np.median(np.abs(flux - np.median(flux))))
    best = 0.0
    for duration in durations_days:
        for mid in np.arange(t.min(), t.max(), step_days):
            inside = np.abs(t - mid) < duration / 2
            count = int(inside.sum())
            if count < 3 or count > len(t) - 3:
                continue
            if (min(mid + duration / 2, t.max()) - max(mid - duration / 2, t.min())) < duration / 2:
                continue
            depth = float(np.mean(flux[~inside]) - np.mean(flux[inside]))
            error = sigma * math.sqrt(1 / count + 1 / (len(t) - count))
            best = max(best, depth / error)
    return best
