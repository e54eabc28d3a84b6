"""The stars in a frame: the bundled catalog, a colour for each, and the faint ones below it.

- **Catalog stars:** the bundled Gaia DR3 (+ Hipparcos) catalog,
  :func:`panoptes_network.catalog.bundled_stars` (482,176 stars to G < 10), moved by
  their proper motions from Gaia's epoch J2016.0 to the frame's date. A star's ``id`` is
  its Gaia DR3 source id, or minus its Hipparcos number for the 70 brightest, which have
  no Gaia id.
- **Colour:** the catalog has no colour, so each star gets a Gaia BP-RP drawn from a
  mixture shaped like that of bright field stars (60% dwarfs around 0.80, 40% giants
  around 1.25, each with 0.25 mag spread, clipped to -0.3..3.0), seeded by the star's
  id: a star has the same colour in every frame.
- **Channels:** a star of magnitude G and colour c gives, above the atmosphere,
  ``ZERO_POINT_G * 10**(-0.4 G)`` electrons per second in a detector all of green
  pixels, and that times :func:`channel_ratios` in an all-red or all-blue one (redder
  stars are brighter in red, fainter in blue). The zero point is the photon rate of a
  60.7 mm pupil through a Bayer filter, tuned so the dark sky gives the ~160 e-/px of the
  real ``unsolved.fits``.
- **Faint stars** (G from the catalog's limit to :data:`FAINT_LIMIT`): per HEALPix cell
  of order 5 (3.4 deg^2), a Poisson number whose mean extrapolates the catalog's own
  count of G < 10 stars around that cell with ``dN/dG ~ 10**(0.4 G)`` (the slope of
  Gaia's counts between G 10 and 13), so the galactic plane is crowded and the poles
  sparse. Positions are uniform in the cell and everything is seeded by the cell, so a
  faint star is at the same place in every frame. Their ids are
  ``-(FAINT_ID_BASE + cell * 10**6 + n)``, below any Hipparcos id.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CATALOG_EPOCH_YEAR = 2016.0  # Gaia DR3
CATALOG_LIMIT = 10.0  # G
FAINT_LIMIT = 13.0  # G: the faintest field star rendered
FAINT_SLOPE = 0.4  # d log10 N / dG
FAINT_HEALPIX_ORDER = 5
FAINT_SALT = 0x5EED_F417
FAINT_ID_BASE = 10**10

ZERO_POINT_G = 3.0e6  # e-/s from a G = 0 star in the green channel, above the atmosphere
SOLAR_BP_RP = 0.82


@dataclass
class Stars:
    """Stars as columns: id (Gaia DR3 source id; -HIP; or a faint field star's), ra,
    dec (degrees, ICRS, at the frame's epoch), mag (G), bp_rp (the drawn colour)."""

    id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    bp_rp: np.ndarray

    def __len__(self) -> int:
        return len(self.id)

    def take(self, keep) -> "Stars":
        return Stars(self.id[keep], self.ra[keep], self.dec[keep], self.mag[keep], self.bp_rp[keep])

    @staticmethod
    def join(parts: list["Stars"]) -> "Stars":
        return Stars(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("id", "ra", "dec", "mag", "bp_rp")))


@lru_cache(maxsize=1)
def _catalog_vectors() -> np.ndarray:
    from panoptes_network.catalog import bundled_stars

    stars = bundled_stars()
    return _unit_vectors(stars["ra"], stars["dec"])


def _unit_vectors(ra, dec) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def catalog_stars(ra: float, dec: float, radius_deg: float, year: float) -> Stars:
    """Catalog stars within ``radius_deg`` of (ra, dec), at their positions in ``year``
    (to 0.01 yr: a frame of a sequence reuses the last frame's list)."""
    return _catalog_stars(round(ra, 6), round(dec, 6), round(radius_deg, 4), round(year, 2))


@lru_cache(maxsize=8)
def _catalog_stars(ra: float, dec: float, radius_deg: float, year: float) -> Stars:
    from panoptes_network.catalog import bundled_stars

    catalog = bundled_stars()
    near = np.flatnonzero(_catalog_vectors() @ _unit_vectors(ra, dec) >= np.cos(np.radians(radius_deg)))
    found = catalog[near]
    years = year - CATALOG_EPOCH_YEAR
    dec_now = found["dec"] + found["pmdec"] * years / 3.6e6  # mas/yr -> deg
    cos_dec = np.maximum(np.cos(np.radians(found["dec"])), 1e-6)
    ra_now = (found["ra"] + found["pmra"] * years / 3.6e6 / cos_dec) % 360  # Gaia's pmra carries cos(dec)
    ids = np.where(found["id"] != 0, found["id"], -found["hip"].astype(np.int64)).astype(np.int64)
    return Stars(ids, ra_now, np.clip(dec_now, -90, 90), found["mag"].astype(float), colours(ids))


def _hash_uniform(ids: np.ndarray, salt: int) -> np.ndarray:
    """A uniform in [0, 1) per id, from splitmix64: the same id always gives the same number."""
    z = np.asarray(ids).astype(np.int64).view(np.uint64) + np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = z * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def colours(ids: np.ndarray) -> np.ndarray:
    """A Gaia BP-RP for each star id (see the module's docstring)."""
    from scipy.special import ndtri

    giant = _hash_uniform(ids, 1) < 0.4
    spread = ndtri(np.clip(_hash_uniform(ids, 2), 1e-12, 1 - 1e-12))
    return np.clip(np.where(giant, 1.25, 0.80) + 0.25 * spread, -0.3, 3.0)


def channel_ratios(bp_rp) -> np.ndarray:
    """(n, 3): a star's electrons in an all-r, all-g, all-b detector relative to all-g."""
    c = np.asarray(bp_rp, float) - SOLAR_BP_RP
    return np.stack([0.55 * 10 ** (0.4 * 0.6 * c), np.ones_like(c), 0.45 * 10 ** (-0.4 * 0.9 * c)], axis=-1)


@lru_cache(maxsize=1)
def _healpix():
    from astropy_healpix import HEALPix

    return HEALPix(nside=2**FAINT_HEALPIX_ORDER, order="nested")


@lru_cache(maxsize=1)
def _catalog_counts_per_cell() -> np.ndarray:
    """Catalog stars per faint-star cell, smoothed over each cell and its 8 neighbours."""
    import astropy.units as u

    from panoptes_network.catalog import bundled_stars

    hp = _healpix()
    stars = bundled_stars()
    cells = hp.lonlat_to_healpix(stars["ra"] * u.deg, stars["dec"] * u.deg)
    counts = np.bincount(cells, minlength=hp.npix).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the 8 cells with 7 neighbours
        neighbours = hp.neighbours(np.arange(hp.npix))  # (8, npix), -1 where a cell has 7
    valid = neighbours >= 0
    total = counts + np.where(valid, counts[np.where(valid, neighbours, 0)], 0).sum(axis=0)
    return total / (1 + valid.sum(axis=0))


def faint_stars(ra: float, dec: float, radius_deg: float, limit: float = FAINT_LIMIT) -> Stars:
    """Field stars from the catalog's limit to ``limit`` in every cell touching the cone."""
    return _faint_stars(round(ra, 6), round(dec, 6), round(radius_deg, 4), float(limit))


@lru_cache(maxsize=8)
def _faint_stars(ra: float, dec: float, radius_deg: float, limit: float) -> Stars:
    import astropy.units as u

    if limit <= CATALOG_LIMIT:
        return Stars(*(np.empty(0, dtype) for dtype in (np.int64, float, float, float, float)))
    hp = _healpix()
    cells = hp.cone_search_lonlat(ra * u.deg, dec * u.deg, radius_deg * u.deg)
    per_cell = _catalog_counts_per_cell()
    growth = 10 ** (FAINT_SLOPE * (limit - CATALOG_LIMIT))
    ids, ras, decs, mags = [], [], [], []
    for cell in np.sort(cells):
        rng = np.random.default_rng([FAINT_SALT, int(cell), int(round(limit * 100))])
        count = int(rng.poisson(per_cell[cell] * (growth - 1)))
        lon, lat = hp.healpix_to_lonlat(np.full(count, cell), dx=rng.random(count), dy=rng.random(count))
        # Inverse CDF of dN/dG ~ 10**(slope G) on [CATALOG_LIMIT, limit].
        mags.append(CATALOG_LIMIT + np.log10(1 + rng.random(count) * (growth - 1)) / FAINT_SLOPE)
        ids.append(-(FAINT_ID_BASE + int(cell) * 1_000_000 + np.arange(1, count + 1, dtype=np.int64)))
        ras.append(lon.to_value(u.deg))
        decs.append(lat.to_value(u.deg))
    id_array = np.concatenate(ids) if ids else np.empty(0, np.int64)
    return Stars(id_array, np.concatenate(ras) if ras else np.empty(0), np.concatenate(decs) if decs else np.empty(0),
                 np.concatenate(mags) if mags else np.empty(0), colours(id_array))
