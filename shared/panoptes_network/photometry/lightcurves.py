"""Frames' measurements to lightcurves: :func:`build_lightcurves`.

1. **Frames:** those :func:`measure_frame` rejected stay out with its reason; then the
   observation's own checks reject frames whose transparency (zero point against the
   clearest frames) or FWHM (against the median) is far off. Too few left: the result's
   ``status`` is ``not_enough_frames``. Every frame's aperture is then read at
   ``aperture_fwhm`` x the observation's median FWHM (:func:`_steady_apertures`).
2. **Arrays:** every star seen on a used frame, flux per channel (frames x stars), NaN and
   flag 16 where a frame lacks the star.
3. **Differential photometry**, per channel: each star's flux over its median, divided by
   an ensemble of comparison stars chosen by a metric of brightness, colour
   (-2.5 log10 b/r measured here: the catalog has no colour) and distance on the sky, the
   star itself excluded. Comparisons are weighted by the inverse variance of their own
   differential lightcurves (at first, of the noise model); stars whose RMS exceeds
   ``variable_threshold`` times their expected noise are dropped from every ensemble, and
   the ensembles rebuilt, ``ensemble_iterations`` times.
4. **Errors:** the noise model of each point (photon, sky, read, annulus, scintillation;
   :func:`simulator.noise.aperture_noise`) plus the ensemble's own variance.
   **Differential extinction** (``correct_extinction``): each star's airmass minus its
   ensemble's, ``dX``, from the unit's site, the frame's time and the star's position; one
   ``k`` per channel fitted robustly over all stars and ``10**(-0.4 k dX)`` divided out
   (:mod:`photometry.extinction`; no slope per star, which would eat transits).
5. Optionally (``decorrelate``) a linear fit against airmass, drift and FWHM removed.
6. **Blends** (``correct_blends``): a star's aperture also holds the light of stars the
   catalog does not list (it stops at G 10; at 10.3"/px a G 10.1 star 6 px away adds 65%
   of a G 9.6 star's light), which dilutes its transits by that share. Each star's flux
   excess over what its catalog magnitude predicts (:func:`_flux_excess`: per frame
   against the field's zero point, per star the median over frames, against a fit of the
   field's level in colour) gives the share ``s = e / (1 + e)`` of its
   aperture's light that is not its own, and its flux is put in its own units:
   ``1 + (flux - 1) / (1 - s)``, its errors scaled alike. The excess is relative to the
   field's typical star, whose own share of faint light stays (the same few % for all).
7. **Anchors** kept beside: ``plain`` (each star over its own median, no comparison
   stars) and ``expected`` (the noise model alone: the theoretical limit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

import numpy as np

from panoptes_network.photometry.measure import CHANNELS, FLAG_REJECTED, FrameMeasurement, observation_fwhm
from panoptes_network.photometry.params import PIPELINE_VERSION, PhotometryParams
from panoptes_network.ports.documents import to_jsonable

COMPLETE, NOT_ENOUGH_FRAMES = "complete", "not_enough_frames"
SECONDS_30_MIN = 1800.0


@dataclass
class StarLightcurve:
    """One star's lightcurve, shaped as the ``lightcurves`` document holds it."""

    picid: str
    ra: float
    dec: float
    mag: float
    time_utc: list[datetime]
    time_bjd_tdb: np.ndarray
    channels: dict[str, dict[str, np.ndarray]]  # r|g|b: flux, flux_err, raw_flux, flags
    summary: dict[str, dict[str, float]]  # r|g|b: rms, ppm_30min, num_points
    best_rms: float | None

    def to_dict(self) -> dict[str, Any]:
        """The ``lightcurves`` document's star part (SCIENCE_SCHEMA.md; the run's own fields
        are the service's), JSON-safe (:func:`~panoptes_network.ports.documents.to_jsonable`); its arrays are :data:`ARRAY_FIELDS`."""
        return to_jsonable({"picid": self.picid, "ra": self.ra, "dec": self.dec, "mag": self.mag,
                      "time_bjd_tdb": self.time_bjd_tdb, "time_utc": self.time_utc, "channels": self.channels,
                      "summary": self.summary, "best_rms": self.best_rms})


ARRAY_FIELDS = ("time_bjd_tdb", "time_utc", "channels")  # what moves to a bucket when a document is too big


@dataclass
class ObservationResult:
    status: str
    reason: str | None
    params: PhotometryParams
    pipeline_version: str
    frames_used: list[str]
    frames_rejected: list[tuple[str, str]]
    quality: dict[str, list]  # image_id, time, fwhm_px, background_adu, zero_point_mag, transparency, drift_x_px, ...
    summary: dict[str, Any]
    time_utc: list[datetime] = field(default_factory=list)  # (frames,)
    picid: np.ndarray = field(default_factory=lambda: np.array([], object))  # (stars,)
    ra: np.ndarray = field(default_factory=lambda: np.array([]))
    dec: np.ndarray = field(default_factory=lambda: np.array([]))
    mag: np.ndarray = field(default_factory=lambda: np.array([]))
    colour: np.ndarray = field(default_factory=lambda: np.array([]))  # -2.5 log10(b / r), measured
    time_bjd_tdb: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (frames, stars)
    # (3, frames, stars), channels r, g, b:
    flux: np.ndarray = field(default_factory=lambda: np.zeros((3, 0, 0)))  # differential, median 1
    flux_err: np.ndarray = field(default_factory=lambda: np.zeros((3, 0, 0)))
    raw_flux: np.ndarray = field(default_factory=lambda: np.zeros((3, 0, 0)))  # e-
    plain_flux: np.ndarray = field(default_factory=lambda: np.zeros((3, 0, 0)))  # anchor: raw over its median
    expected: np.ndarray = field(default_factory=lambda: np.zeros((3, 0, 0)))  # noise model alone, fractional
    flags: np.ndarray = field(default_factory=lambda: np.zeros((3, 0, 0), np.uint8))
    rms: np.ndarray = field(default_factory=lambda: np.zeros((3, 0)))  # (3, stars) of the differential flux
    plain_rms: np.ndarray = field(default_factory=lambda: np.zeros((3, 0)))
    expected_rms: np.ndarray = field(default_factory=lambda: np.zeros((3, 0)))  # noise model, rms over frames
    num_points: np.ndarray = field(default_factory=lambda: np.zeros((3, 0), int))
    # (3, stars, comparisons): each star's ensemble, star indices (-1: none) and weights (0: none)
    comparison_index: np.ndarray = field(default_factory=lambda: np.zeros((3, 0, 0), int))
    comparison_weight: np.ndarray = field(default_factory=lambda: np.zeros((3, 0, 0)))
    # (3, stars): the aperture's light over what the catalog magnitude predicts, less 1 (0: no estimate)
    flux_excess: np.ndarray = field(default_factory=lambda: np.zeros((3, 0)))

    @property
    def num_stars(self) -> int:
        return len(self.picid)

    def index(self, picid) -> int:
        hits = np.flatnonzero(self.picid == str(picid))
        if not len(hits):
            raise KeyError(picid)
        return int(hits[0])

    def ppm_30min(self, rms: np.ndarray) -> np.ndarray:
        cadence = self.cadence_seconds
        return rms * math.sqrt(cadence / SECONDS_30_MIN) * 1e6 if cadence else rms * np.nan

    @property
    def cadence_seconds(self) -> float:
        if len(self.time_utc) < 2:
            return 0.0
        return float(np.median(np.diff([t.timestamp() for t in self.time_utc])))

    def lightcurve(self, star: int) -> StarLightcurve:
        channels, summary = {}, {}
        for c, name in enumerate(CHANNELS):
            channels[name] = {"flux": self.flux[c, :, star], "flux_err": self.flux_err[c, :, star],
                              "raw_flux": self.raw_flux[c, :, star], "flags": self.flags[c, :, star]}
            rms = float(self.rms[c, star])
            summary[name] = {"rms": rms, "ppm_30min": float(self.ppm_30min(np.array(rms))),
                             "num_points": int(self.num_points[c, star]),
                             "flux_excess": float(self.flux_excess[c, star])}
        finite = [s["rms"] for s in summary.values() if math.isfinite(s["rms"])]
        return StarLightcurve(picid=str(self.picid[star]), ra=float(self.ra[star]), dec=float(self.dec[star]),
                              mag=float(self.mag[star]), time_utc=list(self.time_utc),
                              time_bjd_tdb=self.time_bjd_tdb[:, star], channels=channels, summary=summary,
                              best_rms=min(finite) if finite else None)

    def to_dict(self) -> dict[str, Any]:
        """The run's figures, JSON-safe (:func:`~panoptes_network.ports.documents.to_jsonable`), in the ``processed_observations``
        document's shape (SCIENCE_SCHEMA.md) less the ids and times the service adds."""
        return to_jsonable({"status": self.status, "reason": self.reason, "pipeline_version": self.pipeline_version,
                      "params": self.params.to_dict(), **self.run_figures()})

    def run_figures(self) -> dict[str, Any]:
        """What a run document takes from the result, whatever its status."""
        return to_jsonable({"frames_used": list(self.frames_used),
                      "frames_rejected": [{"image_id": image_id, "reason": reason}
                                          for image_id, reason in self.frames_rejected],
                      "num_frames_used": len(self.frames_used), "num_stars": self.num_stars,
                      "quality": self.quality, "summary": self.summary,
                      "rms_vs_mag": self.rms_vs_mag("g") if self.num_stars else None})

    def lightcurves(self) -> Iterator[StarLightcurve]:
        for star in range(self.num_stars):
            yield self.lightcurve(star)

    def rms_vs_mag(self, channel: str = "g") -> dict[str, list]:
        """The RMS-against-magnitude diagnostic with the noise model's curve (binned medians)."""
        c = CHANNELS.index(channel)
        good = np.isfinite(self.rms[c]) & (self.num_points[c] > 0)
        theory_mag, theory_rms = [], []
        if good.any():
            edges = np.arange(math.floor(np.min(self.mag[good]) * 4) / 4, np.max(self.mag[good]) + 0.25, 0.25)
            for low in edges:
                inside = good & (self.mag >= low) & (self.mag < low + 0.25) & np.isfinite(self.expected_rms[c])
                if inside.any():
                    theory_mag.append(round(float(low + 0.125), 3))
                    theory_rms.append(float(np.median(self.expected_rms[c, inside])))
        return {"channel": channel, "picid": [str(p) for p in self.picid[good]],
                "mag": [float(v) for v in self.mag[good]], "rms": [float(v) for v in self.rms[c, good]],
                "theory_mag": theory_mag, "theory_rms": theory_rms}


def build_lightcurves(measurements: list[FrameMeasurement],
                      params: PhotometryParams | None = None) -> ObservationResult:
    params = params or PhotometryParams()
    rejected: list[tuple[str, str]] = []
    seen: set[str] = set()
    frames: list[FrameMeasurement] = []
    for m in sorted(measurements, key=lambda m: (m.time_utc is None, m.time_utc or datetime.min, m.image_id)):
        if m.image_id in seen and m.image_id:
            continue  # the same image twice (redelivery): once is enough
        seen.add(m.image_id)
        if m.rejected is not None:
            rejected.append((m.image_id, m.rejected))
        else:
            frames.append(m)
    frames, more = _observation_rejections(frames, params)
    rejected += more
    frames = _steady_apertures(frames, params)

    def empty(reason: str) -> ObservationResult:
        return ObservationResult(status=NOT_ENOUGH_FRAMES, reason=reason, params=params,
                                 pipeline_version=PIPELINE_VERSION, frames_used=[m.image_id for m in frames],
                                 frames_rejected=rejected, quality=_quality(frames, np.zeros(len(frames)),
                                                                            np.zeros((len(frames), 2))),
                                 summary={}, time_utc=[m.time_utc for m in frames])

    if len(frames) < params.min_frames:
        return empty(f"{len(frames)} usable frames, at least {params.min_frames} needed"
                     + (f" ({len(rejected)} rejected)" if rejected else ""))

    # Arrays over the union of stars.
    picid = np.array(sorted({p for m in frames for p in m.picid}), dtype=object)
    column = {p: i for i, p in enumerate(picid)}
    nf, ns = len(frames), len(picid)
    raw = np.full((3, nf, ns), np.nan)
    err = np.full((3, nf, ns), np.nan)
    flags = np.full((3, nf, ns), FLAG_REJECTED, np.uint8)
    xs, ys = np.full((nf, ns), np.nan), np.full((nf, ns), np.nan)
    ra, dec, mag = np.zeros(ns), np.zeros(ns), np.zeros(ns)
    for f, m in enumerate(frames):
        where = np.array([column[p] for p in m.picid], int)
        raw[:, f, where] = m.flux_e.T
        err[:, f, where] = m.flux_err_e.T
        flags[:, f, where] = m.flags.T
        xs[f, where], ys[f, where] = m.x, m.y
        ra[where], dec[where], mag[where] = m.ra, m.dec, m.mag
    good = (flags == 0) & np.isfinite(raw) & (raw > 0) & np.isfinite(err)
    drift = _drift(xs, ys)
    transparency = _transparency(frames)

    # Anchors: each star over its own median, and the noise model's fractional error.
    median = _nanmedian(np.where(good, raw, np.nan), axis=1)  # (3, stars)
    with np.errstate(invalid="ignore", divide="ignore"):
        plain = raw / median[:, None, :]
        expected = np.where(good, err / raw, np.nan)
        colour = -2.5 * np.log10(median[2] / median[0])
    colour = np.where(np.isfinite(colour), colour, np.nanmedian(colour) if np.isfinite(colour).any() else 0.0)

    times = [m.time_utc for m in frames]
    site = next((m.site for m in frames if m.site), None)
    ensembles, extinction = _differential_photometry(plain, expected, good, mag, colour, ra, dec, times, site, params)
    flux = np.stack([e[0] for e in ensembles])
    flux_err = np.stack([e[1] for e in ensembles])
    if params.decorrelate:
        regressors = np.column_stack([[m.airmass for m in frames], drift, [m.fwhm_px for m in frames]])
        for c in range(3):
            flux[c] = _decorrelate(flux[c], good[c] & np.isfinite(flux[c]), regressors)
    excess = _flux_excess(raw, good, mag, colour)
    if params.correct_blends:
        own = 1 - _blend_share(excess)[:, None, :]  # (3, 1, stars): the star's own part of its aperture's light
        flux, flux_err = 1 + (flux - 1) / own, flux_err / own
        plain, expected = 1 + (plain - 1) / own, expected / own

    # Outliers (flag 16) and the summary figures.
    usable = good & np.isfinite(flux) & np.isfinite(flux_err)
    deviation = np.abs(flux - 1) / np.where(usable, flux_err, np.nan)
    with np.errstate(invalid="ignore"):
        outlier = usable & (deviation > params.outlier_sigma * np.maximum(1, _robust_scale(flux, usable, flux_err)))
    flags = np.where(outlier, flags | FLAG_REJECTED, flags).astype(np.uint8)
    kept = usable & ~outlier
    rms = _rms(flux, kept)
    plain_rms = _rms(plain, kept)
    expected_rms = np.sqrt(_nanmean(np.where(kept, expected**2, np.nan), axis=1))
    num_points = kept.sum(axis=1)

    bjd = _bjd(times, site, ra, dec)
    result = ObservationResult(
        status=COMPLETE, reason=None, params=params, pipeline_version=PIPELINE_VERSION,
        frames_used=[m.image_id for m in frames], frames_rejected=rejected,
        quality=_quality(frames, transparency, drift), summary={}, time_utc=times, picid=picid, ra=ra, dec=dec,
        mag=mag, colour=colour, time_bjd_tdb=bjd, flux=flux, flux_err=flux_err, raw_flux=raw, plain_flux=plain,
        expected=expected, flags=flags, rms=rms, plain_rms=plain_rms, expected_rms=expected_rms,
        num_points=num_points, comparison_index=np.stack([e[2] for e in ensembles]),
        comparison_weight=np.stack([e[3] for e in ensembles]), flux_excess=excess)
    result.summary = _summary(result, frames)
    result.summary.update(extinction)
    return result


# --- the steps ---------------------------------------------------------------------------

def _observation_rejections(frames: list[FrameMeasurement], params: PhotometryParams):
    if not frames:
        return frames, []
    rejected = []
    transparency = _transparency(frames)
    median_fwhm = observation_fwhm([m.fwhm_px for m in frames])
    kept = []
    for m, clear in zip(frames, transparency):
        if np.isfinite(clear) and clear < params.min_transparency:
            rejected.append((m.image_id, f"transparency {clear:.2f} of the clearest frames is under "
                                         f"{params.min_transparency:g} (cloud)"))
        elif median_fwhm is not None and m.fwhm_px > params.max_fwhm_ratio * median_fwhm:
            rejected.append((m.image_id, f"FWHM {m.fwhm_px:.1f} px is over {params.max_fwhm_ratio:g}x the "
                                         f"observation's median {median_fwhm:.1f}"))
        else:
            kept.append(m)
    return kept, rejected


def _steady_apertures(frames: list[FrameMeasurement], params: PhotometryParams) -> list[FrameMeasurement]:
    """Every frame's aperture at ``aperture_fwhm`` x the observation's median FWHM, as far as
    the bracket it was summed at reaches (:meth:`FrameMeasurement.at_aperture_radius`).

    Each frame's own FWHM is a measurement: even on noise-free frames of a constant PSF it
    wanders 0.3% rms, slowly, with the field's drift and the sky, and an aperture following it
    took a neighbour at its edge in and out by as much, a false 2-3 h dip of 5 sigma on a
    quiet star. A seeing that truly changes by more than the bracket is still followed
    beyond it (each frame's radius stays within its bracket)."""
    median_fwhm = observation_fwhm([m.fwhm_px for m in frames])
    if median_fwhm is None:
        return frames
    return [m.at_aperture_radius(params.aperture_fwhm * median_fwhm) for m in frames]


def _transparency(frames: list[FrameMeasurement]) -> np.ndarray:
    """Each frame's light relative to the clearest frames (the 90th percentile zero point)."""
    zero_points = np.array([m.zero_point_mag for m in frames], float)
    if not np.isfinite(zero_points).any():
        return np.full(len(frames), np.nan)
    return 10 ** (-0.4 * (np.nanpercentile(zero_points, 90) - zero_points))


def _drift(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(frames, 2): the field's median move on the sensor since the first frame."""
    first = np.argmax(np.isfinite(xs).sum(axis=1) > 0)
    with np.errstate(invalid="ignore"):
        dx = _nanmedian(xs - xs[first], axis=1)
        dy = _nanmedian(ys - ys[first], axis=1)
    return np.column_stack([dx, dy])


def _metric_space(mag, colour, ra, dec, params: PhotometryParams) -> np.ndarray:
    """(stars, 4): brightness, colour and place on the sky (tangent plane about the
    field's centre, degrees), each in its unit, so that the ensemble metric is the
    Euclidean distance and a k-d tree finds the nearest comparisons."""
    from panoptes_network.catalog import standard_coordinates

    centre_ra = float(np.degrees(np.arctan2(np.mean(np.sin(np.radians(ra))), np.mean(np.cos(np.radians(ra))))))
    xi, eta, _ = standard_coordinates(centre_ra % 360, float(np.mean(dec)), ra, dec)
    return np.column_stack([mag / params.comparison_mag_scale, colour / params.comparison_colour_scale,
                            xi / params.comparison_distance_scale_deg, eta / params.comparison_distance_scale_deg])


def _differential(plain, expected, good, mag, colour, ra, dec, params: PhotometryParams):
    """One channel: (flux, flux_err, comparison index, comparison weight); flux (frames,
    stars) over each star's ensemble; index and weight (stars, comparisons)."""
    from scipy.spatial import cKDTree

    nf, ns = plain.shape
    space = _metric_space(mag, colour, ra, dec, params)
    coverage = good.mean(axis=0) if nf else np.zeros(ns)
    candidate = coverage >= params.comparison_min_coverage
    f = np.where(good, plain, 0.0)
    e2 = np.where(good, expected**2, 0.0)
    mask = good.astype(float)
    expected_rms = np.sqrt(_nanmean(np.where(good, expected**2, np.nan), axis=0))
    noise = expected_rms.copy()  # a star's own scatter: the model first, then measured
    size = max(1, params.comparisons)
    flux = np.full_like(plain, np.nan)
    flux_err = np.full_like(plain, np.nan)
    index = np.full((ns, size), -1)
    weight = np.zeros((ns, size))
    for _ in range(max(1, params.ensemble_iterations)):
        usable = np.flatnonzero(candidate & np.isfinite(noise) & (noise > 0))
        index = np.full((ns, size), -1)
        weight = np.zeros((ns, size))
        if len(usable) >= 2:
            k = min(size + 1, len(usable))  # one more: a candidate finds itself first
            _, found = cKDTree(space[usable]).query(space, k=k)
            found = usable[np.asarray(found).reshape(ns, k)]
            mine = found == np.arange(ns)[:, None]
            # the star itself (if it is a candidate) moved last, then the nearest `size` others kept
            found = np.take_along_axis(found, np.argsort(mine, axis=1, kind="stable"), axis=1)[:, :k - 1]
            index[:, :k - 1] = found if k - 1 <= size else found[:, :size]
            present = index >= 0
            weight = np.where(present, 1.0 / noise[np.maximum(index, 0)] ** 2, 0.0)
        safe = np.maximum(index, 0)
        w = weight[None, :, :]  # (1, stars, comparisons)
        total = (mask[:, safe] * w).sum(axis=2)  # (frames, stars): the weight present in each frame
        with np.errstate(invalid="ignore", divide="ignore"):
            reference = (f[:, safe] * mask[:, safe] * w).sum(axis=2) / total
            reference_var = (e2[:, safe] * mask[:, safe] * w**2).sum(axis=2) / total**2
            ratio = np.where(good & (total > 0), plain / reference, np.nan)
        level = _nanmedian(ratio, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            flux = ratio / level
            flux_err = flux * np.sqrt(np.where(good, expected**2, np.nan) + reference_var)
        measured = _rms(flux[None], (good & np.isfinite(flux))[None])[0]
        noise = np.where(np.isfinite(measured), measured, noise)
        with np.errstate(invalid="ignore"):
            limit = params.variable_threshold * np.sqrt(expected_rms**2 + _nanmedian(reference_var, axis=0))
            variable = measured > limit
        candidate = candidate & ~variable
    return flux, flux_err, index, weight


def _differential_photometry(plain, expected, good, mag, colour, ra, dec, times, site, params: PhotometryParams):
    """Per channel, the ensembles (:func:`_differential`: flux, flux_err, index, weight) and,
    with ``correct_extinction``, the differential extinction taken out: ``k`` fitted from every
    star's differential flux against its airmass minus its ensemble's (dX), then the ensembles
    built again from fluxes with that extinction divided out (so no star is rejected as a
    variable for its airmass trend), ``k`` refined on them and the rest divided out.
    Returns (ensembles, the summary's extinction figures)."""
    from panoptes_network.photometry.extinction import remove_extinction, star_airmass

    ensembles = [_differential(plain[c], expected[c], good[c], mag, colour, ra, dec, params) for c in range(3)]
    if not params.correct_extinction or site is None or any(t is None for t in times):
        return ensembles, {}
    airmass = star_airmass(times, site, ra, dec)
    relative = airmass - _nanmedian(np.where(good.any(axis=0), airmass, np.nan), axis=0)  # each star's own change
    k, k_err, k_stars = {}, {}, {}
    for c, name in enumerate(CHANNELS):
        first = _fit_channel(ensembles[c], airmass, good[c])[0]
        if math.isfinite(first):
            steady = plain[c] * 10 ** (0.4 * first * relative)
            ensembles[c] = _differential(steady, expected[c], good[c], mag, colour, ra, dec, params)
        else:
            first = 0.0
        rest, k_err[name], k_stars[name], dx, usable = _fit_channel(ensembles[c], airmass, good[c])
        flux, flux_err, index, weight = ensembles[c]
        flux, flux_err = remove_extinction(flux, flux_err, dx, rest, usable)
        ensembles[c] = (flux, flux_err, index, weight)
        k[name] = first + rest if math.isfinite(rest) else math.nan
    return ensembles, {"extinction_k": k, "extinction_k_err": k_err, "extinction_k_stars": k_stars}


def _fit_channel(ensemble, airmass, good):
    """(k, its error, stars it rests on, dX, usable) of one channel's ensemble fluxes."""
    from panoptes_network.photometry.extinction import ensemble_airmass_difference, fit_extinction

    flux, flux_err, index, weight = ensemble
    dx = ensemble_airmass_difference(airmass, good, index, weight)
    usable = good & np.isfinite(flux) & np.isfinite(flux_err)
    return (*fit_extinction(flux, flux_err, dx, usable), dx, usable)


def _decorrelate(flux: np.ndarray, good: np.ndarray, regressors: np.ndarray) -> np.ndarray:
    """Each star's flux with a linear fit to the (standardised) regressors divided out."""
    x = regressors - np.nanmean(regressors, axis=0)
    scale = np.nanstd(x, axis=0)
    x = np.where(scale > 0, x / np.where(scale > 0, scale, 1), 0.0)
    design = np.column_stack([np.ones(len(x)), np.nan_to_num(x)])
    out = flux.copy()
    for star in range(flux.shape[1]):
        use = good[:, star]
        if use.sum() < design.shape[1] * 3:
            continue
        coefficients, *_ = np.linalg.lstsq(design[use], flux[use, star], rcond=None)
        model = design @ coefficients
        out[:, star] = flux[:, star] / model * coefficients[0]
    return out


# The field's level against which a star's excess is read: a constant, and a colour term when the
# stars allow (about ten a parameter, the blends themselves clipped).
BLEND_FIT_TERMS = ((20, 2), (5, 1))  # (at least this many stars, this many terms)
MAX_BLEND_SHARE = 0.8  # beyond it (4x the star's light) the star is lost in the blend: left as measured


def _flux_excess(raw, good, mag, colour) -> np.ndarray:
    """(3, stars): each star's aperture flux over what its catalog magnitude predicts, less 1.

    Per frame, ``raw * 10**(0.4 G)`` over its median across stars (the frame's zero point:
    transparency and airmass drop out); per star, the median over its good frames (a
    transit moves it by a fraction of its depth); then against the field's level fitted in
    log space on the measured colour (the catalog's G is not the camera's r, g or b),
    clipped at 3 robust sigma so the blends themselves do not pull it. Not in position: a
    quadratic surface, fitted mostly to the many faint stars, put a G 7.8 star's excess 3.2%
    from the truth (0.3% without; 0.4-0.5% rms over G 7-10), likely because what varies across
    the field is additive (the sky's error, some electrons: a large share of a faint star's
    light, a small one of a bright star's). 0 where a star or the field gives no estimate."""
    _, _, ns = raw.shape
    excess = np.zeros((3, ns))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        design = np.column_stack([np.ones(ns), colour])
        for c in range(3):
            ratio = np.where(good[c], raw[c] * 10 ** (0.4 * mag), np.nan)
            ratio = ratio / _nanmedian(ratio, axis=1)[:, None]
            level = np.log(_nanmedian(ratio, axis=0))
            fit = np.isfinite(level) & np.isfinite(design).all(axis=1)
            columns = next((terms for least, terms in BLEND_FIT_TERMS if fit.sum() >= least), 0)
            if not columns:
                continue
            kept = fit.copy()
            for _ in range(5):
                coefficients = np.linalg.lstsq(design[kept, :columns], level[kept], rcond=None)[0]
                residual = level - design[:, :columns] @ coefficients
                centre = np.median(residual[fit])
                spread = 1.4826 * np.median(np.abs(residual[fit] - centre))
                kept = fit & (np.abs(residual - centre) <= 3 * max(spread, 1e-3))
            excess[c] = np.where(fit, np.expm1(residual), 0.0)
    return excess


def _blend_share(excess: np.ndarray) -> np.ndarray:
    """The share of an aperture's light that is not the star's own, ``e / (1 + e)``; negative
    where the aperture holds less than the typical star's (its sky read high); 0 past
    :data:`MAX_BLEND_SHARE` either way."""
    share = excess / (1 + excess)
    return np.where(np.abs(share) <= MAX_BLEND_SHARE, share, 0.0)


def _robust_scale(flux, usable, flux_err) -> np.ndarray:
    """Per star, how much the normalised residuals actually scatter (1.4826 MAD), so an
    underestimated error does not flag half a lightcurve as outliers."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(usable, (flux - 1) / flux_err, np.nan)
    return (1.4826 * _nanmedian(np.abs(z - _nanmedian(z, axis=-2)[..., None, :]), axis=-2))[..., None, :]


def _rms(flux: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """(..., stars): standard deviation over frames of the kept points."""
    values = np.where(kept, flux, np.nan)
    count = kept.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(values, axis=-2) / count
        variance = np.nansum((values - mean[..., None, :]) ** 2, axis=-2) / np.maximum(count - 1, 1)
    return np.where(count >= 3, np.sqrt(variance), np.nan)


def _nanmedian(values, axis):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=axis)


def _nanmean(values, axis):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _bjd(times, site, ra, dec) -> np.ndarray:
    from panoptes_network.photometry.times import bjd_tdb

    if site is None:
        raise ValueError("no frame says where the unit is (LAT-OBS/LONG-OBS or a known OBSERVER): no BJD_TDB")
    return bjd_tdb(times, site, ra, dec)


def _quality(frames: list[FrameMeasurement], transparency, drift) -> dict[str, list]:
    def clean(values):
        return [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v) for v in values]

    return {"image_id": [m.image_id for m in frames],
            "time": [m.time_utc.isoformat() if m.time_utc else None for m in frames],
            "fwhm_px": clean(m.fwhm_px for m in frames),
            "background_adu": clean(m.background_adu for m in frames),
            "zero_point_mag": clean(m.zero_point_mag for m in frames),
            "transparency": clean(transparency),
            "drift_x_px": clean(drift[:, 0]), "drift_y_px": clean(drift[:, 1]),
            "airmass": clean(m.airmass for m in frames)}


def _summary(result: ObservationResult, frames: list[FrameMeasurement]) -> dict[str, Any]:
    def median(values):
        values = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
        return float(np.median(values)) if len(values) else None

    g = CHANNELS.index("g")
    bright = (result.mag <= 10) & np.isfinite(result.rms[g])
    return {"median_fwhm_px": median(m.fwhm_px for m in frames),
            "median_background_adu": median(m.background_adu for m in frames),
            "median_zero_point_mag": median(m.zero_point_mag for m in frames),
            "median_transparency": median(result.quality["transparency"]),
            "median_airmass": median(m.airmass for m in frames),
            "cadence_seconds": result.cadence_seconds,
            "median_rms_g": median(result.rms[g, bright]),
            "median_plain_rms_g": median(result.plain_rms[g, bright]),
            "median_expected_rms_g": median(result.expected_rms[g, bright])}
