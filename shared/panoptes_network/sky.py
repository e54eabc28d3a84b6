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
        cells = _with_neighbours(found, 2**order)
        if len(cells) > MAX_CELLS:
            break
        best = Cover(order, tuple(sorted(cells)))
    if best is None:  # cannot happen: order 0 has 12 cells in all
        raise AssertionError("no HEALPix order covers the cone")
    return best


def _with_neighbours(cells, nside: int) -> set[int]:
    """The cells and the ring around them.

    astropy-healpix's cone search misses a cell the cone reaches now and then when the
    cone is smaller than a cell (found by tests/unit/test_sky.py: a 28" cone at dec 82);
    the ring around its answer never has, in every case tried, so a cover errs on the
    side of reading a few more documents, which the exact separation then filters.
    """
    from astropy_healpix import neighbours

    cells = np.asarray(cells, dtype=np.int64)
    with np.errstate(invalid="ignore"):  # a cell with only 7 neighbours reports the 8th as -1
        ring = neighbours(cells, nside, order="nested") if len(cells) else np.empty((8, 0), dtype=np.int64)
    return {int(cell) for cell in np.concatenate([cells, ring.ravel()]) if cell >= 0}


def separation(ra1, dec1, ra2, dec2):
    """Great-circle distance in degrees (Vincenty's formula, exact at every distance); numpy-friendly."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, dtype=float)) for v in (ra1, dec1, ra2, dec2))
    delta = ra2 - ra1
    sin_d1, cos_d1, sin_d2, cos_d2 = np.sin(dec1), np.cos(dec1), np.sin(dec2), np.cos(dec2)
    numerator = np.hypot(cos_d2 * np.sin(delta), cos_d1 * sin_d2 - sin_d1 * cos_d2 * np.cos(delta))
    denominator = sin_d1 * sin_d2 + cos_d1 * cos_d2 * np.cos(delta)
    return np.degrees(np.arctan2(numerator, denominator))
