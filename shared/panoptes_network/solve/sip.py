"""Fitting a TAN-SIP WCS to matched stars, and matching catalog stars to detections.

The fit is linear least squares. Round a fixed tangent point (CRVAL) at a fixed
reference pixel (CRPIX, the image centre), the standard coordinates (xi, eta) of a star
are a polynomial in the pixel offsets (u, v) from CRPIX; its linear part is the CD
matrix and the higher terms, taken back through CD, are SIP's A and B. The tangent point
is then moved to where the fit puts CRPIX and the fit repeated, so the constant terms
vanish. The inverse polynomials (AP, BP) are fitted on a grid over the frame.

Pixel coordinates here are 0-based (numpy's), as ``all_pix2world(..., 0)`` takes them.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.wcs import WCS

from panoptes_network.catalog import standard_coordinates

INVERSE_GRID = 40  # points a side of the grid the inverse SIP polynomials are fitted on


def _terms(u: np.ndarray, v: np.ndarray, degree: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    powers = [(p, q) for total in range(degree + 1) for p in range(total + 1) for q in [total - p]]
    return np.stack([u**p * v**q for p, q in powers], axis=1), powers


def _least_squares(design: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Coefficients minimising |design @ c - targets|, by the normal equations on columns
    scaled to at most 1 (well conditioned for these low-order polynomials, and far quicker
    than an SVD on a busy machine)."""
    scale = np.abs(design).max(axis=0)
    scale[scale == 0] = 1.0
    scaled = design / scale
    return np.linalg.solve(scaled.T @ scaled, scaled.T @ targets) / scale[:, None]


def _fit_standard(u, v, xi, eta, degree: int):
    design, powers = _terms(u, v, degree)
    return _least_squares(design, np.stack([xi, eta], axis=1)), powers


def fit_tan_sip(x, y, ra, dec, shape: tuple[int, int], degree: int = 3, crval: tuple[float, float] | None = None,
                inverse: bool = True) -> WCS:
    """A TAN(-SIP) WCS mapping 0-based pixels ``(x, y)`` to ``(ra, dec)`` degrees.

    ``degree`` 1 is a plain TAN solution; 2 or more adds SIP terms up to that order.
    ``shape`` is (rows, columns): CRPIX is the centre of the frame. ``inverse=False``
    leaves out the inverse polynomials (AP, BP): ``all_pix2world`` does not use them, and
    a fit only checked that way (an outlier-clipping pass) need not pay for them; see
    :func:`with_inverse`.
    """
    x, y, ra, dec = (np.asarray(values, dtype=float) for values in (x, y, ra, dec))
    rows, columns = shape
    crpix = ((columns + 1) / 2.0, (rows + 1) / 2.0)  # 1-based, FITS's convention
    u, v = x + 1 - crpix[0], y + 1 - crpix[1]
    if crval is None:
        crval = _mean_direction(ra, dec)
    for _ in range(3):
        xi, eta, _ = standard_coordinates(*crval, ra, dec)
        coefficients, powers = _fit_standard(u, v, xi, eta, degree)
        constant = coefficients[powers.index((0, 0))]
        if math.hypot(*constant) < 1e-9:  # degrees: the tangent point is at CRPIX
            break
        # Move the tangent point to where the fit puts CRPIX, and fit again.
        fitted_at, crval = crval, _deproject(crval, *constant)
    else:
        crval = fitted_at  # the coefficients are those fitted round the previous tangent point
    return _wcs(crval, crpix, coefficients, powers, degree, shape, inverse)


def _deproject(crval: tuple[float, float], xi: float, eta: float) -> tuple[float, float]:
    """The sky position of standard coordinates (xi, eta) (degrees) about ``crval``: the
    inverse gnomonic projection."""
    ra0, dec0 = math.radians(crval[0]), math.radians(crval[1])
    x, y = math.radians(xi), math.radians(eta)
    rho = math.hypot(x, y)
    if rho == 0:
        return crval[0] % 360.0, crval[1]
    c = math.atan(rho)
    dec = math.asin(math.cos(c) * math.sin(dec0) + y * math.sin(c) * math.cos(dec0) / rho)
    ra = ra0 + math.atan2(x * math.sin(c), rho * math.cos(dec0) * math.cos(c) - y * math.sin(dec0) * math.sin(c))
    return math.degrees(ra) % 360.0, math.degrees(dec)


def _mean_direction(ra, dec) -> tuple[float, float]:
    ra_r, dec_r = np.radians(ra), np.radians(dec)
    vector = np.array([np.cos(dec_r) * np.cos(ra_r), np.cos(dec_r) * np.sin(ra_r), np.sin(dec_r)]).mean(axis=1)
    vector /= np.linalg.norm(vector)
    return float(np.degrees(np.arctan2(vector[1], vector[0])) % 360.0), float(np.degrees(np.arcsin(vector[2])))


def _wcs(crval, crpix, coefficients, powers, degree: int, shape, inverse: bool = True) -> WCS:
    index = {power: row for row, power in enumerate(powers)}
    cd = np.array([[coefficients[index[(1, 0)], 0], coefficients[index[(0, 1)], 0]],
                   [coefficients[index[(1, 0)], 1], coefficients[index[(0, 1)], 1]]])
    wcs = WCS(naxis=2)
    wcs.wcs.crpix = crpix
    wcs.wcs.crval = crval
    wcs.wcs.cd = cd
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.pixel_shape = (shape[1], shape[0])
    if degree < 2:
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.set()
        return wcs
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    inverse_cd = np.linalg.inv(cd)
    a = np.zeros((degree + 1, degree + 1))
    b = np.zeros((degree + 1, degree + 1))
    for (p, q), row in index.items():
        if p + q < 2:
            continue  # the constant and linear terms are CRVAL's and CD's
        a[p, q], b[p, q] = inverse_cd @ coefficients[row]
    from astropy.wcs import Sip

    ap, bp = _inverse_sip(a, b, crpix, shape) if inverse else (None, None)
    wcs.sip = Sip(a, b, ap, bp, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def _inverse_sip(a: np.ndarray, b: np.ndarray, crpix, shape) -> tuple[np.ndarray, np.ndarray]:
    """SIP's inverse polynomials (AP, BP), one order above the forward ones, fitted on a
    grid over the frame."""
    degree = a.shape[0] - 1
    rows, columns = shape
    gx, gy = np.meshgrid(np.linspace(-0.5, columns - 0.5, INVERSE_GRID), np.linspace(-0.5, rows - 0.5, INVERSE_GRID))
    gu, gv = gx.ravel() + 1 - crpix[0], gy.ravel() + 1 - crpix[1]
    design, inverse_powers = _terms(gu, gv, degree)
    forward_u = gu + design @ np.array([a[p, q] for p, q in inverse_powers])
    forward_v = gv + design @ np.array([b[p, q] for p, q in inverse_powers])
    inverse_design, _ = _terms(forward_u, forward_v, degree + 1)
    solution = _least_squares(inverse_design, np.stack([gu - forward_u, gv - forward_v], axis=1))
    _, inverse_powers = _terms(gu[:1], gv[:1], degree + 1)
    ap = np.zeros((degree + 2, degree + 2))
    bp = np.zeros((degree + 2, degree + 2))
    for row, (p, q) in enumerate(inverse_powers):
        ap[p, q], bp[p, q] = solution[row]
    return ap, bp


def with_inverse(wcs: WCS, shape: tuple[int, int]) -> WCS:
    """``wcs`` with SIP's inverse polynomials, if it has forward ones and no inverse (a
    fit made with ``inverse=False``); a plain TAN WCS as it is."""
    if wcs.sip is None or wcs.sip.ap is not None:
        return wcs
    from astropy.wcs import Sip

    ap, bp = _inverse_sip(wcs.sip.a, wcs.sip.b, wcs.wcs.crpix, shape)
    wcs.sip = Sip(wcs.sip.a, wcs.sip.b, ap, bp, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def match(detected_x, detected_y, predicted_x, predicted_y, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (detection index, catalog index) that are each other's nearest within ``radius`` pixels."""
    from scipy.spatial import cKDTree

    detected = np.column_stack([detected_x, detected_y])
    predicted = np.column_stack([predicted_x, predicted_y])
    finite = np.isfinite(predicted).all(axis=1)
    if not len(detected) or not finite.any():
        return np.array([], int), np.array([], int)
    catalog_index = np.flatnonzero(finite)
    distance, nearest = cKDTree(predicted[finite]).query(detected, distance_upper_bound=radius)
    close = np.isfinite(distance)
    detections = np.flatnonzero(close)
    candidates = catalog_index[nearest[close]]
    # Keep a catalog star only for the detection nearest to it.
    order = np.argsort(distance[close])
    _, first = np.unique(candidates[order], return_index=True)
    keep = order[first]
    return detections[keep], candidates[keep]


def sky_error_arcsec(wcs: WCS, truth: WCS, shape: tuple[int, int], points_a_side: int = 10) -> np.ndarray:
    """Distances (arcsec) between where two WCSs put a grid of points over the frame,
    corners included (``points_a_side``² points)."""
    from panoptes_network.sky import separation

    rows, columns = shape
    gx, gy = np.meshgrid(np.linspace(0, columns - 1, points_a_side), np.linspace(0, rows - 1, points_a_side))
    ra1, dec1 = wcs.all_pix2world(gx.ravel(), gy.ravel(), 0)
    ra2, dec2 = truth.all_pix2world(gx.ravel(), gy.ravel(), 0)
    return separation(ra1, dec1, ra2, dec2) * 3600.0
