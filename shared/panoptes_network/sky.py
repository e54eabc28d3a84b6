"""Where an observation points, and a spatial index so a cone search reads only nearby documents.

An observation's position is its plate-solved centre (``ra``/``dec``) when a frame was
solved, else the mount's pointing (``ra_mnt``/``dec_mnt``). record-image stores, with
that position, the HEALPix cell (nested scheme, astropy-healpix) holding it at several
orders, as a map ``healpix = {"order0": ..., "order2": ..., ..., "order10": ...}``.

A cone search covers the cone with the cells of one order (every cell that overlaps it)
and asks the document store for ``healpix.orderK in [cells]``, then keeps the candidates
whose exact separation is within the radius. The order is the finest whose cover has at
most :data:`MAX_CELLS` cells, Firestore's limit on ``in``; order 0 has 12 cells, so every
cone, up to the whole sky, has a cover. The documents read are those in the cover, about
1-3 times the cone's area, whatever the size of the collection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

ORDERS = (0, 2, 4, 6, 8, 10)  # nside 1 .. 1024: cells of 59 deg down to 3.4 arcmin
MAX_CELLS = 30  # Firestore's limit on the values of one ``in`` filter
BOUNDARY_STEPS = 16  # samples per cell edge when checking whether a neighbour reaches a cone
EDGE_LENGTH_BOUND = 2.0  # a HEALPix cell edge is shorter than twice the cell's mean size
INDEX_FIELD = "healpix"


def field_for(order: int) -> str:
    return f"{INDEX_FIELD}.order{order}"


@dataclass(frozen=True)
class Position:
    ra: float  # degrees, ICRS
    dec: float
    source: str  # "plate-solved" or "mount"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def valid(ra: float | None, dec: float | None) -> bool:
    return ra is not None and dec is not None and 0 <= ra <= 360 and -90 <= dec <= 90


def position_of(observation: Mapping[str, Any]) -> Position | None:
    """The observation's position on the sky: plate-solved centre first, else the mount's."""
    for ra_key, dec_key, source in (("ra", "dec", "plate-solved"), ("ra_mnt", "dec_mnt", "mount")):
        ra, dec = _number(observation.get(ra_key)), _number(observation.get(dec_key))
        if valid(ra, dec):
            return Position(ra % 360.0, dec, source)
    return None


def cells_of(ra: float, dec: float) -> dict[str, int]:
    """The HEALPix cell holding (ra, dec) at each indexed order, as stored on an observation."""
    from astropy_healpix import lonlat_to_healpix
    import astropy.units as u

    return {
        f"order{order}": int(lonlat_to_healpix(ra * u.deg, dec * u.deg, 2**order, order="nested"))
        for order in ORDERS
    }


def cells_of_many(ra, dec) -> dict[str, np.ndarray]:
    """:func:`cells_of` for arrays of positions (a catalog's worth at once): the finest
    order's cells, and each coarser order's by the nested scheme's parent (a shift)."""
    from astropy_healpix import lonlat_to_healpix
    import astropy.units as u

    finest = max(ORDERS)
    cells = np.asarray(lonlat_to_healpix(np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg,
                                         2**finest, order="nested"), dtype=np.int64)
    return {f"order{order}": cells >> (2 * (finest - order)) for order in ORDERS}


def index_fields(observation: Mapping[str, Any]) -> dict[str, Any]:
    """The index fields for an observation as it will be stored (``{}`` if it has no position)."""
    position = position_of(observation)
    return {INDEX_FIELD: cells_of(position.ra, position.dec)} if position else {}


@dataclass(frozen=True)
class Cover:
    """The cells of one order that together contain a cone."""

    order: int
    cells: tuple[int, ...]

    @property
    def field(self) -> str:
        return field_for(self.order)

    def filter(self) -> tuple[str, str, list[int]]:
        return (self.field, "in", list(self.cells))


def cone_cover(ra: float, dec: float, radius: float) -> Cover:
    """The finest indexed order whose cover of the cone has at most :data:`MAX_CELLS` cells."""
    from astropy_healpix.core import healpix_cone_search
    import astropy.units as u

    best: Cover | None = None
    # Coarse to fine: the cost of a cover grows with its number of cells, so stop at the
    # first order that needs too many rather than computing the (huge) finest covers.
    for order in ORDERS:
        radius_deg = min(float(radius), 180.0)
        found = healpix_cone_search(ra * u.deg, dec * u.deg, radius_deg * u.deg, 2**order, order="nested")
        if len(found) > MAX_CELLS:
            break
        cells = {int(cell) for cell in found} | _neighbours_reaching(found, ra, dec, radius_deg, 2**order)
        if len(cells) > MAX_CELLS:
            break
        best = Cover(order, tuple(sorted(cells)))
    if best is None:  # cannot happen: order 0 has 12 cells in all
        raise AssertionError("no HEALPix order covers the cone")
    return best


def _neighbours_reaching(cells, ra: float, dec: float, radius: float, nside: int) -> set[int]:
    """The cells around ``cells`` that the cone reaches after all.

    astropy-healpix's cone search misses, now and then, a cell a cone smaller than a cell
    reaches (found by tests/unit/test_sky.py: a 28" cone at dec 82; over 20,000 random
    cones, 820 misses, all with a radius under 0.52 of the cell size). A missed cell
    touches the answer, so each neighbour is checked: its boundary, sampled every
    1/BOUNDARY_STEPS of an edge, coming within the radius plus that spacing means it may
    reach into the cone. A superset, so nothing in the cone is missed, and the exact
    separation filter drops the rest.
    """
    from astropy_healpix import boundaries_lonlat, neighbours, nside_to_pixel_resolution
    import astropy.units as u

    cells = np.asarray(cells, dtype=np.int64)
    with np.errstate(invalid="ignore"):  # a cell with only 7 neighbours reports the 8th as -1
        ring = np.unique(neighbours(cells, nside, order="nested").ravel())
    ring = np.setdiff1d(ring[ring >= 0], cells)
    if not len(ring):
        return set()
    longitudes, latitudes = boundaries_lonlat(ring, BOUNDARY_STEPS, nside, order="nested")
    spacing = EDGE_LENGTH_BOUND * nside_to_pixel_resolution(nside).to_value(u.deg) / BOUNDARY_STEPS
    nearest = separation(ra, dec, longitudes.to_value(u.deg), latitudes.to_value(u.deg)).min(axis=1)
    return {int(cell) for cell in ring[nearest <= radius + spacing]}


def separation(ra1, dec1, ra2, dec2):
    """Great-circle distance in degrees (Vincenty's formula, exact at every distance); numpy-friendly."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, dtype=float)) for v in (ra1, dec1, ra2, dec2))
    delta = ra2 - ra1
    sin_d1, cos_d1, sin_d2, cos_d2 = np.sin(dec1), np.cos(dec1), np.sin(dec2), np.cos(dec2)
    numerator = np.hypot(cos_d2 * np.sin(delta), cos_d1 * sin_d2 - sin_d1 * cos_d2 * np.cos(delta))
    denominator = sin_d1 * sin_d2 + cos_d1 * cos_d2 * np.cos(delta)
    return np.degrees(np.arctan2(numerator, denominator))
