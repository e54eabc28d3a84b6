"""Photometry checked against the sky simulator's truth: for tests and ``bench/photometry.py``.

- :func:`simulate_observation` renders a sequence and measures every frame through the
  simulator's *truth* WCS (plate solving is checked elsewhere), its hot pixels repaired from
  a map of the observation's own frames as the service builds it, keeping only each frame's
  truth star table (not its pixels), so long sequences fit in memory.
- :func:`noise_floor` is the simulator's noise model (:func:`simulator.noise.aperture_noise`)
  for each star over the same frames: its true electrons in our aperture (the aperture's
  encircled fraction measured as the median measured/true flux), the true sky under it,
  our aperture's and annulus's pixel counts, its airmass; RMS over the frames.
- The transit fits and their Fisher precision are product code, in ``photometry.transits``
  (:func:`fit_transit`, :func:`fit_periodic_transit`, :func:`transit_precision`); here they
  meet the truth. :func:`transit_precision` on the
  noise floor (:func:`frame_noise_floor`, the r, g, b floors combined with their shared
  scintillation by :func:`combine_channels`), what a perfect pipeline would reach, and
  :func:`goal_probability` the chance such a fit meets issue 13's tolerances.
- :func:`box_snr` is the strongest box-shaped dip's depth over its error, errors from the
  lightcurve's own scatter.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from panoptes_network.photometry.lightcurves import ObservationResult, _nanmedian, build_lightcurves
from panoptes_network.photometry.measure import (CHANNELS, FLAG_SATURATED, FrameMeasurement, frame_fwhm, measure_frame,
                                                 observation_fwhm, picid_of)
from panoptes_network.photometry.params import PhotometryParams
from panoptes_network.photometry.transits import (PeriodicTransitFit, TransitFit, choose_baseline,  # noqa: F401
                                                  choose_periodic_baseline, fit_periodic_transit, fit_transit,
                                                  night_segments,
                                                  periodic_transit_precision, transit_precision, trapezoid)


@dataclass
class SimulatedObservation:
    measurements: list[FrameMeasurement]
    truths: list  # astropy Table per frame (the simulator's truth.stars), catalog stars only
    specs: list
    result: ObservationResult | None = None
    hot_pixels: object = None  # the observation's hotpixels.HotPixelMap, as the service builds it


KEEP_FRAMES_BYTES = 1 << 30  # the first pass keeps the rendered frames up to this much; beyond, they are rendered again
HISTORY_FIELDS = 3  # the camera's other observations whose hot-pixel maps join a simulated one's
HISTORY_FRAMES = 8  # frames in each


def simulate_observation(ra: float, dec: float, start: datetime, frames: int, *,
                         params: PhotometryParams | None = None, build: bool = True,
                         history_fields: int = HISTORY_FIELDS, **sequence) -> SimulatedObservation:
    """As the service measures an observation (``process.survey_frames``): a first pass finds
    each frame's single-pixel spikes and builds the observation's own hot-pixel map
    (:mod:`hotpixels`), which the maps of ``history_fields`` other observations by the same
    camera join (:func:`camera_history`, :func:`hotpixels.camera_map`), and measures each
    frame's FWHM; the second pass measures every frame with the hot pixels' levels taken off
    and its annulus at the median FWHM. The frames of the first pass are kept for the second while they
    fit in :data:`KEEP_FRAMES_BYTES` (long sequences of full frames do not), else rendered
    again (the simulator renders a spec the same, byte for byte)."""
    from panoptes_network.catalog import stars_in_footprint
    from panoptes_network.photometry.hotpixels import SpikeCounts, camera_map, frame_spikes
    from panoptes_network.simulator import simulate_frame
    from panoptes_network.simulator.night import sequence_specs

    params = params or PhotometryParams()
    specs = sequence_specs(ra, dec, start, frames, **sequence)
    counts, kept, truths, widths = SpikeCounts(), [], [], []
    stars = None
    room = KEEP_FRAMES_BYTES
    for spec in specs:
        frame = simulate_frame(spec)
        if stars is None:  # the footprint of the first frame: drift is a few pixels
            stars = stars_in_footprint(wcs=frame.truth.wcs, shape=frame.data.shape)
        counts.add(frame.data.shape, *frame_spikes(frame.data))
        widths.append(frame_fwhm(frame.data, frame.header, frame.truth.wcs, stars, params))
        table = frame.truth.stars
        truths.append(table[table["catalog"]])
        keep = frame.data.nbytes <= room
        room -= frame.data.nbytes if keep else 0
        kept.append((frame.data, frame.header, frame.truth.wcs) if keep else None)
        del frame
    first = specs[0]
    others = camera_history(first.camera_id, first.unit_id, first.width, first.height, start, history_fields) \
        if first.hot_pixels else ()
    hot = camera_map(counts.hot_pixel_map((first.height, first.width)), others)
    sky_fwhm = observation_fwhm(widths)
    measurements = []
    for k, spec in enumerate(specs):
        if kept[k] is None:
            frame = simulate_frame(spec)
            kept[k] = (frame.data, frame.header, frame.truth.wcs)
            del frame
        data, header, wcs = kept[k]
        kept[k] = None
        measurements.append(measure_frame(data, header, wcs, stars, params, hot_pixels=hot, sky_fwhm_px=sky_fwhm))
    observation = SimulatedObservation(measurements, truths, specs, hot_pixels=hot)
    if build:
        observation.result = build_lightcurves(measurements, params)
    return observation


@functools.lru_cache(maxsize=16)
def camera_history(camera_id: str, unit_id: str, width: int, height: int, start: datetime,
                   fields: int = HISTORY_FIELDS) -> tuple[np.ndarray, ...]:
    """The own hot-pixel maps (as the service keeps them) of ``fields`` earlier observations
    by the same camera, :data:`HISTORY_FRAMES` frames each: the field at the zenith at the
    same time ``k`` nights before ``start`` (k = 1..fields), a degree of sky apart from
    one night to the next, so other stars cover other pixels while the hot pixels stay."""
    from panoptes_network.photometry.hotpixels import SpikeCounts, frame_spikes
    from panoptes_network.simulator import simulate_frame
    from panoptes_network.simulator.night import sequence_specs
    from panoptes_network.simulator.observatory import conditions, site_for

    if fields < 1:
        return ()
    site = site_for(unit_id)
    nights = [start - timedelta(days=k) for k in range(1, fields + 1)]
    maps = []
    for night, sky in zip(nights, conditions(site, nights, 0.0, 0.0)):
        specs = sequence_specs(sky.lst_deg, site.latitude, night, HISTORY_FRAMES, camera_id=camera_id,
                               unit_id=unit_id, width=width, height=height, seed=len(maps) + 1)
        counts = SpikeCounts()
        for spec in specs:
            data = simulate_frame(spec).data
            counts.add(data.shape, *frame_spikes(data))
        maps.append(counts.hot_pixel_map((height, width)))
    return tuple(maps)


def simulate_nights(ra: float, dec: float, starts, frames: int, *, params: PhotometryParams | None = None,
                    seed: int = 0, **sequence) -> SimulatedObservation:
    """One sequence of ``frames`` frames from each of ``starts`` (a night each, seed + night
    its noise), then one :func:`build_lightcurves` over every frame: the stitched
    multi-night lightcurve, one normalisation for all nights (a night mostly in transit
    keeps its depth)."""
    params = params or PhotometryParams()
    nights = [simulate_observation(ra, dec, start, frames, params=params, build=False, seed=seed + k, **sequence)
              for k, start in enumerate(starts)]
    observation = SimulatedObservation([m for n in nights for m in n.measurements],
                                       [t for n in nights for t in n.truths], [s for n in nights for s in n.specs])
    observation.result = build_lightcurves(observation.measurements, params)
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


def frame_noise_floor(observation: SimulatedObservation) -> tuple[np.ndarray, np.ndarray]:
    """((3, frames, stars), (frames, stars)): the simulator noise model's fractional error of
    each star's aperture sum on each used frame and channel (NaN where the star is flagged),
    and the part of it that is scintillation (the same draw in r, g and b)."""
    from panoptes_network.simulator.noise import aperture_noise, scintillation

    result = observation.result
    by_id = {m.image_id: m for m in observation.measurements}
    frames = [by_id[i] for i in result.frames_used]
    airmass = truth_arrays(observation, "airmass")
    exptime = np.array([m.exptime for m in frames])[:, None]
    elevation = frames[0].site[2] if frames[0].site else 0.0
    floor = np.full((3, len(frames), result.num_stars), np.nan)
    for c, channel in enumerate(CHANNELS):
        true_e = truth_arrays(observation, f"electrons_{channel}")
        sky = truth_arrays(observation, f"sky_{channel}")
        good = (result.flags[c] == 0) & np.isfinite(true_e) & (true_e > 0)
        fraction = float(np.nanmedian(np.where(good, result.raw_flux[c] / true_e, np.nan)))
        own = true_e * fraction
        # The light of uncatalogued neighbours in the aperture (what the aperture holds beyond the
        # star's own, median over frames): its photons are noise on the star too, and the
        # lightcurve is in the star's own units (the pipeline takes the blend's share out).
        blend = np.nan_to_num(_nanmedian(np.where(good, result.raw_flux[c] - own, np.nan), axis=0))
        pixels = np.array([m.aperture_pixels[c] for m in frames])[:, None]
        annulus = np.array([m.annulus_pixels[c] for m in frames])[:, None]  # as precise as a mean of these
        model = aperture_noise(own + np.maximum(blend, 0), pixels, sky, exptime, airmass, elevation,
                               background_pixels=annulus)
        floor[c] = np.where(good, model.sigma / own, np.nan)
    return floor, scintillation(exptime, airmass, elevation)


def noise_floor(observation: SimulatedObservation) -> np.ndarray:
    """(3, stars): the simulator noise model's RMS for each star over the used frames."""
    relative, _ = frame_noise_floor(observation)
    counted = np.isfinite(relative).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, np.sqrt(np.nansum(relative**2, axis=1) / np.maximum(counted, 1)), np.nan)


def combine_channels(flux: np.ndarray, err: np.ndarray, usable: np.ndarray,
                     correlated: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flux, err, usable) per frame: the best average of the r, g, b points (3, frames) whose
    errors share a part ``correlated`` (fractional rms per frame, e.g. scintillation: one
    draw for all three channels). Their covariance is diag(err^2 - s^2) + s^2, so (Sherman-
    Morrison) the weights are 1 / (err^2 - s^2) and the variance of the average
    1 / sum(1 / (err^2 - s^2)) + s^2: the shared part does not average down."""
    s2 = np.broadcast_to(np.asarray(correlated, float) ** 2, flux.shape[1:])
    own = np.maximum(err**2 - s2, 0.05 * err**2)  # the channel's independent variance
    weights = np.where(usable, 1 / np.where(usable, own, 1), 0.0)
    total = weights.sum(axis=0)
    ok = total > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (weights * np.nan_to_num(flux)).sum(axis=0) / total
        variance = 1 / total + s2
    return np.where(ok, mean, np.nan), np.where(ok, np.sqrt(variance), np.nan), ok


def combined_flux(result: ObservationResult, star: int,
                  correlated: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One star's r, g, b differential fluxes averaged (:func:`combine_channels`):
    (flux, err, usable) per frame. ``correlated``: the fractional error shared by the three
    channels on each frame (the star's scintillation; :func:`scintillation_of`), 0 to treat
    them as independent."""
    flux, err = result.flux[:, :, star], result.flux_err[:, :, star]
    usable = (result.flags[:, :, star] == 0) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    return combine_channels(flux, err, usable, correlated)


def scintillation_of(observation: SimulatedObservation) -> np.ndarray:
    """(frames,): the pipeline's own scintillation estimate for each used frame (its noise
    model's, from the exposure, airmass and site in the header): what the three channels of
    a star share."""
    by_id = {m.image_id: m for m in observation.measurements}
    return np.array([by_id[i].scintillation for i in observation.result.frames_used])


REQUIRED_SNR = 10 * 1.959964  # depth / sigma for "within 10%" of the depth with 95% probability


def goal_probability(depth: float, sigma_depth: float, sigma_mid_minutes: float, *, depth_tolerance: float = 0.10,
                     mid_tolerance_minutes: float = 3.0) -> float:
    """The chance that an unbiased fit with Gaussian errors of these sigmas lands within
    ``depth_tolerance`` (fractional) of the depth and ``mid_tolerance_minutes`` of the
    mid-time (the two errors independent, as for a symmetric dip)."""
    in_depth = math.erf(depth_tolerance * depth / sigma_depth / math.sqrt(2)) if sigma_depth > 0 else 1.0
    in_mid = math.erf(mid_tolerance_minutes / sigma_mid_minutes / math.sqrt(2)) if sigma_mid_minutes > 0 else 1.0
    return in_depth * in_mid


DURATIONS_DAYS = np.arange(1.5, 3.51, 0.25) / 24  # the fit's grid: 1.5-3.5 h


@dataclass(frozen=True)
class TransitCheck:
    """One injected transit against the fit of its star's lightcurve, and what the noise
    floor allows (:func:`check_transit`)."""

    depth: float  # the truth
    fit: TransitFit
    mid_error_minutes: float  # fitted - true
    mid_err_minutes: float  # the fit's own 1 sigma
    floor_depth_sigma: float  # a perfect pipeline's 1 sigma (the noise floor's Fisher information)
    floor_mid_minutes: float

    @property
    def depth_error(self) -> float:
        """Fractional: fitted / true - 1."""
        return self.fit.depth / self.depth - 1

    @property
    def goal_met(self) -> bool:
        return abs(self.depth_error) <= 0.10 and abs(self.mid_error_minutes) <= 3.0

    @property
    def floor_probability(self) -> float:
        """The chance a perfect pipeline meets the goal on this star and these frames."""
        return goal_probability(self.depth, self.floor_depth_sigma, self.floor_mid_minutes)


def check_transit(observation: SimulatedObservation, signal, durations_days=DURATIONS_DAYS) -> TransitCheck:
    """Fit ``signal``'s star as a pipeline user would (r, g, b combined with their shared
    scintillation, a trapezoid on a flat baseline, or one linear in the headers' airmass if
    the data ask for it: :func:`choose_baseline`)
    and set the result beside the truth and beside the noise floor's precision for the same
    frames (:func:`transit_precision` on :func:`frame_noise_floor`)."""
    result = observation.result
    star = result.index(str(signal.star_id))
    days = utc_days(result)
    airmass = np.array([np.nan if v is None else v for v in result.quality["airmass"]], float)
    flux, err, usable = combined_flux(result, star, scintillation_of(observation))
    fit = choose_baseline(*(fit_transit(days[usable], flux[usable], err[usable], durations_days, airmass=trend,
                                        ingress_fraction=signal.ingress_fraction)
                            for trend in (None, airmass[usable])))
    floor, shared = frame_noise_floor(observation)
    channels = floor[:, :, star]
    _, floor_err, floor_ok = combine_channels(np.ones_like(channels), channels, np.isfinite(channels), shared[:, star])
    true_mid = signal.epoch.timestamp() / 86400
    sigma_depth, sigma_mid = transit_precision(days[floor_ok], floor_err[floor_ok], true_mid,
                                               signal.duration_hours / 24, signal.depth,
                                               airmass=airmass[floor_ok] if fit.airmass_trend else None,
                                               ingress_fraction=signal.ingress_fraction)
    return TransitCheck(depth=signal.depth, fit=fit, mid_error_minutes=(fit.mid - true_mid) * 1440,
                        mid_err_minutes=fit.mid_err * 1440, floor_depth_sigma=sigma_depth,
                        floor_mid_minutes=sigma_mid * 1440)


def ensemble_share(result: ObservationResult, star: int, others) -> float:
    """The largest weight fraction (over channels) of ``star``'s comparison ensemble that
    falls on the stars ``others`` (indices): how much of their signals leaks into its
    differential lightcurve."""
    share = 0.0
    for c in range(len(CHANNELS)):
        index, weight = result.comparison_index[c, star], result.comparison_weight[c, star]
        total = weight[index >= 0].sum()
        if total > 0:
            share = max(share, float(weight[np.isin(index, list(others)) & (index >= 0)].sum() / total))
    return share


def host_candidates(ra: float, dec: float, width: int, height: int, mag_range=(7.5, 10.0), *,
                    margin_px: float = 80, crowding_px: float = 40) -> list[int]:
    """Catalog ids of stars fit to host an injected transit in a ``width`` x ``height``
    cut-out at (ra, dec) (the simulator's truth WCS, no rotation), brightest first: G within
    ``mag_range``, ``margin_px`` inside the edges, no brighter catalog star within ``crowding_px``."""
    from panoptes_network.catalog import stars_in_footprint
    from panoptes_network.simulator import camera

    wcs = camera.truth_wcs(ra, dec, 0.0, width, height)
    stars = stars_in_footprint(wcs=wcs, shape=(height, width))
    x, y = wcs.all_world2pix(stars["ra"], stars["dec"], 0)
    chosen = []
    for k in np.flatnonzero((stars["mag"] >= mag_range[0]) & (stars["mag"] <= mag_range[1])):
        inside = margin_px < x[k] < width - margin_px and margin_px < y[k] < height - margin_px
        crowded = ((np.hypot(x - x[k], y - y[k]) < crowding_px) & (stars["mag"] < stars["mag"][k])).any()
        if inside and not crowded:
            chosen.append((float(stars["mag"][k]), int(stars["id"][k])))
    return [star for _, star in sorted(chosen)]


def independent_hosts(pilot: ObservationResult, candidates, count: int | None = None) -> list[int]:
    """From ``candidates`` (catalog ids, in order of preference), those that are no
    comparison star of one another in ``pilot`` (a short run of the same field without
    signals): a transit on one host then cannot leak into another host's differential
    lightcurve. A comparison star with a 1.5% transit at 12% of an ensemble's weight shows
    as a 0.18% bump in its target, a tenth of a 2% depth; in the field itself, one known
    host per field, this does not arise. Unsaturated candidates measured on every frame only."""
    full = pilot.num_points.min(axis=0) >= len(pilot.frames_used)
    chosen: list[int] = []
    for star in candidates:
        try:
            k = pilot.index(str(star))
        except KeyError:
            continue
        if not full[k] or (pilot.flags[:, :, k] & FLAG_SATURATED).any():
            continue
        others = [pilot.index(str(h)) for h in chosen]
        if all(ensemble_share(pilot, k, [o]) == 0 and ensemble_share(pilot, o, [k]) == 0 for o in others):
            chosen.append(star)
            if count is not None and len(chosen) == count:
                break
    return chosen


def box_snr(t: np.ndarray, flux: np.ndarray, durations_days, step_days: float = 2 / 1440,
            regressors: np.ndarray | None = None) -> float:
    """The largest depth / error of a box dip anywhere in the lightcurve (at least half of
    the box inside the data), the error from the lightcurve's own scatter (1.4826 MAD).
    ``regressors`` (points, k), e.g. the frames' FWHM and airmass: fitted jointly with each
    box (least squares), so a slow trend that follows the seeing is not read as a dip while
    a dip the regressors cannot mimic keeps its depth; the scatter is then that of the
    regressors-only fit's residuals."""
    keep = np.isfinite(t) & np.isfinite(flux)
    if regressors is not None:
        regressors = np.asarray(regressors, float).reshape(len(t), -1)
        keep &= np.isfinite(regressors).all(axis=1)
    t, flux = t[keep], flux[keep]
    columns = [np.ones_like(t)]
    if regressors is not None:
        x = regressors[keep]
        x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1)
        columns += list(x.T)
    base = np.column_stack(columns)
    residual = flux - base @ np.linalg.lstsq(base, flux, rcond=None)[0]
    sigma = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    best = 0.0
    for duration in durations_days:
        for mid in np.arange(t.min(), t.max(), step_days):
            inside = np.abs(t - mid) < duration / 2
            count = int(inside.sum())
            if count < 3 or count > len(t) - 3:
                continue
            if (min(mid + duration / 2, t.max()) - max(mid - duration / 2, t.min())) < duration / 2:
                continue
            design = np.column_stack([base, -inside.astype(float)])
            normal = design.T @ design
            try:
                inverse = np.linalg.inv(normal)
            except np.linalg.LinAlgError:
                continue
            depth = float((inverse @ (design.T @ flux))[-1])
            error = sigma * math.sqrt(inverse[-1, -1])
            best = max(best, depth / error)
    return best


@dataclass(frozen=True)
class PeriodicCheck:
    """A periodic transit fitted over several nights against the truth, and what the noise
    floor allows from the same transits (:func:`check_periodic_transit`)."""

    depth: float  # the truth
    period: float  # the truth, days
    fit: PeriodicTransitFit
    t0_error_minutes: float  # fitted - the true mid-time of the same transit
    floor_depth_sigma: float  # a perfect pipeline's 1 sigma (the floor's Fisher information)
    floor_t0_minutes: float
    floor_period_sigma: float | None  # days

    @property
    def depth_error(self) -> float:
        """Fractional: fitted / true - 1."""
        return self.fit.depth / self.depth - 1

    @property
    def period_error(self) -> float:
        """Days: fitted - true."""
        return self.fit.period - self.period

    @property
    def goal_met(self) -> bool:
        return abs(self.depth_error) <= 0.10 and abs(self.t0_error_minutes) <= 3.0

    @property
    def floor_snr(self) -> float:
        return self.depth / self.floor_depth_sigma

    @property
    def floor_probability(self) -> float:
        return goal_probability(self.depth, self.floor_depth_sigma, self.floor_t0_minutes)


def utc_days(result: ObservationResult) -> np.ndarray:
    """The used frames' mid-exposure times in UTC days (the simulator's signals are periodic in UTC)."""
    return np.array([t.timestamp() for t in result.time_utc]) / 86400


def check_periodic_transit(observation: SimulatedObservation, signal, period: float, t0: float, duration: float, *,
                           nights: int | None = None, trend: bool | None = None) -> PeriodicCheck:
    """Fit ``signal``'s star over the first ``nights`` nights (all if None) of ``observation``
    (:func:`simulate_nights`) with :func:`fit_periodic_transit` from a period search's
    (``period``, ``t0``, ``duration``; UTC days), r, g, b combined with their shared
    scintillation, each night its own level (``trend``: linear in time; None: as BIC chooses,
    :func:`choose_periodic_baseline`), and set it beside the truth and the noise floor's
    Fisher precision for the same frames and baseline (:func:`periodic_transit_precision` on
    :func:`frame_noise_floor`). Times in UTC days, the frame the simulator's signals are
    periodic in."""
    result = observation.result
    star = result.index(str(signal.star_id))
    days = utc_days(result)
    flux, err, usable = combined_flux(result, star, scintillation_of(observation))
    labels = night_segments(days)
    chosen = labels < nights if nights is not None else np.ones(len(days), bool)
    usable = usable & chosen

    def fit(with_trend):
        return fit_periodic_transit(days[usable], flux[usable], err[usable], period, t0, duration,
                                    segments=labels[usable], ingress_fraction=signal.ingress_fraction,
                                    trend=with_trend)

    fitted = choose_periodic_baseline(fit(False), fit(True)) if trend is None else fit(trend)
    true_epoch = signal.epoch.timestamp() / 86400
    true_t0 = true_epoch + signal.period_days * round((fitted.t0 - true_epoch) / signal.period_days)
    floor, shared = frame_noise_floor(observation)
    channels = floor[:, :, star]
    _, floor_err, floor_ok = combine_channels(np.ones_like(channels), channels, np.isfinite(channels), shared[:, star])
    floor_ok &= chosen
    sigma_depth, sigma_t0, sigma_period = periodic_transit_precision(
        days[floor_ok], floor_err[floor_ok], true_t0, signal.period_days, signal.duration_hours / 24, signal.depth,
        segments=labels[floor_ok], ingress_fraction=signal.ingress_fraction,
        fit_period=fitted.period_err is not None, trend=fitted.trend)
    return PeriodicCheck(depth=signal.depth, period=signal.period_days, fit=fitted,
                         t0_error_minutes=(fitted.t0 - true_t0) * 1440, floor_depth_sigma=sigma_depth,
                         floor_t0_minutes=sigma_t0 * 1440, floor_period_sigma=sigma_period)
