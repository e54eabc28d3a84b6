"""Differential extinction: each star's own airmass, and the one coefficient per channel.

A star and its comparison ensemble are dimmed at their own airmasses. Across a wide field
(a full frame spans 15 x 10 degrees) a star's airmass minus its ensemble's weighted airmass,
``dX``, changes over a night by a few hundredths, and at ``k`` ~ 0.1-0.3 mag/airmass that
is a slow trend of a few tenths of a percent that follows the airmass: a false dip.

- :func:`star_airmass`: every star's airmass at every frame time, from the unit's site.
  The Earth rotation angle gives each frame's sidereal angle (no astropy, no IERS table);
  each star's altitude is then plain spherical trigonometry (as the simulator does), so it
  costs nothing per star. ICRS coordinates are taken as CIO-based ones: the precession of
  the equator since J2000 moves the whole field by a few tenths of a degree, which changes
  ``dX`` by about a percent of itself (against astropy's AltAz, airmass within 0.01 at 1.9).
- :func:`ensemble_airmass_difference`: ``dX`` for every star and frame, with the weights
  and frames the differential step really used.
- :func:`fit_extinction`: ``k`` per channel from all stars at once: each star's own slope of
  magnitude against ``dX`` (its level free, its slope not), combined over the stars with
  iterative clipping of the outlying slopes, so a transiting or variable star does not
  drive it. No slope is fitted per star into its lightcurve: that would eat transits.
"""

from __future__ import annotations

import math
import warnings
from datetime import datetime

import numpy as np

MAGNITUDE_PER_LN = 2.5 / math.log(10)  # d(mag) = 1.0857 d(flux) / flux
MIN_POINTS = 10  # a star's slope needs this many points to count
CLIP_SIGMA = 4.0  # a star whose slope is further than this (robust) from k is left out of it
CLIP_ITERATIONS = 5


def star_airmass(times_utc: list[datetime], site: tuple[float, float, float], ra, dec) -> np.ndarray:
    """(frames, stars): each star's airmass (Pickering, as the simulator's) at each time."""
    from panoptes_network.photometry.times import earth_rotation_angle, julian_date
    from panoptes_network.simulator.observatory import Site, airmass, altitude

    latitude, longitude, elevation = site
    lst = np.degrees(earth_rotation_angle(julian_date(times_utc))) + longitude
    place = Site("", "", latitude, longitude, elevation, ("", ""))
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    return airmass(altitude(place, np.asarray(lst)[:, None], ra[None, :], dec[None, :]))


def ensemble_airmass_difference(airmass: np.ndarray, good: np.ndarray, index: np.ndarray,
                                weight: np.ndarray) -> np.ndarray:
    """(frames, stars): each star's airmass minus its ensemble's, weighted as the ensemble
    was (comparison ``index``/``weight`` (stars, comparisons); only those ``good`` in a frame)."""
    safe = np.maximum(index, 0)
    present = good[:, safe] * weight[None, :, :]  # (frames, stars, comparisons)
    total = present.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ensemble = (np.nan_to_num(airmass[:, safe]) * present).sum(axis=2) / total
    return np.where(total > 0, airmass - ensemble, np.nan)


def fit_extinction(flux: np.ndarray, flux_err: np.ndarray, dx: np.ndarray,
                   usable: np.ndarray) -> tuple[float, float, int]:
    """One channel's ``k`` (mag/airmass), its 1-sigma error, and how many stars it rests on,
    from differential ``flux`` (frames, stars) against ``dx``. NaN if it cannot be fitted."""
    with np.errstate(invalid="ignore", divide="ignore"):
        magnitude = -MAGNITUDE_PER_LN * np.log(flux)
        w = (flux / (MAGNITUDE_PER_LN * flux_err)) ** 2
    use = usable & np.isfinite(magnitude) & np.isfinite(dx) & np.isfinite(w) & (w > 0)
    w = np.where(use, w, 0.0)
    m, x = np.where(use, magnitude, 0.0), np.where(use, dx, 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_centred = np.where(use, x - (w * x).sum(axis=0) / total, 0.0)
        m_centred = np.where(use, m - (w * m).sum(axis=0) / total, 0.0)
        leverage = (w * x_centred**2).sum(axis=0)
        slope = (w * x_centred * m_centred).sum(axis=0) / leverage
        variance = 1 / leverage
    star_ok = (use.sum(axis=0) >= MIN_POINTS) & np.isfinite(slope) & (leverage > 0)
    if star_ok.sum() < 3:
        return math.nan, math.nan, 0
    kept = star_ok.copy()
    k, scale = math.nan, 1.0
    for _ in range(CLIP_ITERATIONS):
        k = float(np.sum(slope[kept] / variance[kept]) / np.sum(1 / variance[kept]))
        pull = (slope - k) / np.sqrt(variance)
        scale = max(1.0, 1.4826 * float(np.median(np.abs(pull[star_ok] - np.median(pull[star_ok])))))
        now = star_ok & (np.abs(pull) <= CLIP_SIGMA * scale)
        if now.sum() < 3 or np.array_equal(now, kept):
            break
        kept = now
    pull = (slope[kept] - k) / np.sqrt(variance[kept])
    excess = max(1.0, math.sqrt(float(np.sum(pull**2)) / max(1, int(kept.sum()) - 1)))
    error = excess / math.sqrt(float(np.sum(1 / variance[kept])))
    return k, error, int(kept.sum())


def remove_extinction(flux: np.ndarray, flux_err: np.ndarray, dx: np.ndarray, k: float,
                      usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``flux`` and ``flux_err`` with ``10**(-0.4 k dX)`` divided out, each star back to median 1."""
    if not math.isfinite(k):
        return flux, flux_err
    factor = 10 ** (0.4 * k * np.where(np.isfinite(dx), dx, 0.0))
    corrected = flux * factor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a star with no usable point: level 1
        level = np.nanmedian(np.where(usable & np.isfinite(corrected), corrected, np.nan), axis=0)
    level = np.where(np.isfinite(level) & (level > 0), level, 1.0)
    return corrected / level, flux_err * factor / level
