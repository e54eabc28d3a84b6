"""One frame: a :class:`FrameSpec` in, a :class:`SimulatedFrame` (pixels, header, truth) out.

The steps, in order (each in the module it names):

1. The truth WCS (``camera.truth_wcs``): TAN-SIP about the spec's centre, shifted by the
   tracking drift.
2. The stars (``stars``): bundled catalog stars in the footprint at the frame's epoch,
   plus seeded faint field stars, each placed with ``all_world2pix`` (0-based).
3. Their light: zero point and colour per channel, extinction at each star's own airmass
   (``atmosphere``), the frame's transparency (``1 - cloud``), injected signals
   (``signals``) and a scintillation draw (``noise``).
4. Rendering: each star on a small stamp of its PSF (``camera.psf_shape``), normalised
   to 1, every pixel weighted by the star's electrons in that pixel's Bayer colour, all
   stamps added at once.
5. The sky (``atmosphere``) on a coarse grid, interpolated; hot pixels, fixed on the sensor,
   their levels doubling every :data:`DARK_DOUBLING_C` of the sensor's temperature
   (``header.sensor_temperature``: the night air's, and a wander; CAMTEMP reads it).
6. Noise and digitisation (``noise``), clipped at saturation, as uint16 (``noiseless``: the
   expectation itself, rounded, and no scintillation).

Everything random comes from ``numpy.random.default_rng`` seeded by the spec's seed
(per frame), the star ids (colours), the HEALPix cell (faint stars) or the camera id
(hot pixels), so the same spec renders the same frame, byte for byte.
"""

from __future__ import annotations

import functools
import io
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from panoptes_network.simulator import atmosphere, camera, noise
from panoptes_network.simulator.observatory import Conditions, Site, altitude, airmass, conditions, site_for
from panoptes_network.simulator.signals import signal_factors
from panoptes_network.simulator.stars import (FAINT_LIMIT, ZERO_POINT_G, Stars, catalog_stars, channel_ratios,
                                              faint_stars)

# Hot pixels as the real unsolved.fits holds them (a raw 120 s POCS frame at 11 C, the camera's own
# sensor), measured by photometry.hotpixels.spikes (isolated single-pixel spikes) and, for each, its
# excess over the median of its 8 same-colour neighbours: per megapixel above 60, 80, 100, 150, 200, 300,
# 500, 1,000, 2,000, 4,000, 8,000 ADU it counted 7024, 6771, 5839, 3957, 3016, 1937, 1210, 612, 296, 137, 43
# (isolated spikes only). Spikes are missed (on stars, and faint ones whose lift is not 60 ADU over the
# noise), so the table below is those counts divided by the fraction found again on simulated frames
# rendered with them (0.77 at 60 ADU, 0.91 at 300, ~1 from 1,000). With spikes as it is now (pairs
# too), the real frame counts 7143, 6886, 5918, 3990, 3035, 1941, 1212, 612, 296, 137, 43 and a
# simulated 1000 x 1000 frame 6914, 6730, 5913, 4028, 3013, 1972, 1227, 622, 291, 134, 52: within 3%
# up to 4,000 ADU. The last level is an extrapolation (the slope from 4,000 to 8,000 ADU): the
# brightest saturate. solved.fits.fz, the same field 2 minutes later, is not used: it has a third of
# the isolated spikes and only 15 of the unsolved frame's 298 above 1,000 ADU (at the 2-row shift
# between the two cut-outs), as if its bright ones had been cleaned or smeared (most of its spikes
# come in vertical same-colour pairs). When spikes learnt to find three hot pixels together and a faint
# one beside a bright one, the simulated frames gave up to 12% more spikes than the real one at 100 ADU
# (the real one 0.2% more): the levels up to 500 ADU were scaled down by the ratios measured then (0.88 to
# 0.96; 1 from 1,000 ADU). A 700 x 700 simulated frame then counts 1.03, 1.03, 1.04, 1.00 and 1.11 times the
# real one above 100, 150, 300, 1,000 and 2,000 ADU (the last ~150 spikes each). Why the real frame gains so
# few is not known: its hot pixels may sit together less often than at random.
HOT_PIXEL_LEVELS_ADU = (60, 80, 100, 150, 200, 300, 500, 1000, 2000, 4000, 8000, 16000)
HOT_PIXELS_ABOVE_PER_MEGAPIXEL = (7989, 7538, 6332, 4141, 3135, 1996, 1249, 647, 302, 130, 43, 13.5)
HOT_PIXEL_EXPTIME = 120.4
HOT_PIXEL_TEMPERATURE_C = 11.0  # unsolved.fits's CAMTEMP: the table's levels are at this temperature
DARK_DOUBLING_C = 6.3  # a CMOS sensor's dark current doubles every ~6 C; hot pixels are its extreme
HOT_PIXELS_PER_MEGAPIXEL = HOT_PIXELS_ABOVE_PER_MEGAPIXEL[0]
SKY_GRID = (9, 13)  # rows, columns of the coarse sky grid over a frame
BRIGHT_STAMP_SIGMAS = 4.5  # stamp half-size for catalog stars, in PSF sigmas
FAINT_STAMP_SIGMAS = 2.5  # and for faint field stars (their light beyond is under the noise)
STAMP_BATCH = 4000
TILE = 400  # px: stars are rendered a tile at a time
NOISE_BAND_ROWS = 64
NOISE_THREADS = 2


@dataclass(frozen=True)
class FrameSpec:
    """What to render. ``ra``/``dec`` are the true centre of the field (degrees);
    ``time`` the exposure's start (aware UTC, DATE-OBS); ``cloud`` the fraction of light
    the clouds take (0 clear, 0.3 thin cloud); ``drift_px`` how far tracking has moved
    the field on the sensor (x, y). The header's mount position is ``mount`` if given,
    else the centre offset by ``mount_offset_deg`` (None: a seeded 0.5-2 deg) in a seeded
    direction. ``conditions`` (from :func:`observatory.conditions` for the mount
    position) may be given to skip astropy, as the sequence helper does."""

    ra: float
    dec: float
    time: datetime
    rotation_deg: float = 0.0
    width: int = camera.FULL_WIDTH
    height: int = camera.FULL_HEIGHT
    seed: int = 1
    exptime: float = 120.0
    unit_id: str = "PAN001"
    camera_id: str = "14d3bd"
    sequence_time: datetime | None = None
    field_name: str = ""
    cloud: float = 0.0
    mount_offset_deg: float | None = None
    mount: tuple[float, float] | None = None
    drift_px: tuple[float, float] = (0.0, 0.0)
    signals: tuple = ()
    faint_limit: float = FAINT_LIMIT
    hot_pixels: bool = True
    distortion_k: float = camera.DISTORTION_K
    site: Site | None = None
    conditions: Conditions | None = None
    noiseless: bool = False  # the expectation itself: no pixel noise, no scintillation (a pipeline's systematics)
    sensor_temp_c: float | None = None  # None: the camera's temperature at ``time`` (header.sensor_temperature)

    def __post_init__(self):
        if self.time.tzinfo is None:
            raise ValueError("FrameSpec.time must be timezone-aware (UTC)")
        if not (8 <= self.width <= camera.FULL_WIDTH and 8 <= self.height <= camera.FULL_HEIGHT):
            raise ValueError(f"a frame is 8 x 8 to {camera.FULL_WIDTH} x {camera.FULL_HEIGHT} px")
        if not 0 <= self.cloud < 1:
            raise ValueError("cloud is the fraction of light lost: 0 <= cloud < 1")
        if self.exptime <= 0:
            raise ValueError("exptime must be positive")

    @property
    def mid_exposure(self) -> datetime:
        return self.time + timedelta(seconds=self.exptime / 2)


@dataclass
class Truth:
    """What the simulator knows and a unit never writes: for tests, never in the frame."""

    wcs: Any  # astropy.wcs.WCS, TAN-SIP, 0-based pixels
    stars: Any  # astropy Table, one row per star on the frame (see ``STAR_COLUMNS``)
    # (height, width) float32: each pixel's expected electrons (sky + stars + hot pixels),
    # the mean of the noise draw: stars at their drawn scintillation (the ``scintillation`` column).
    expected: np.ndarray
    sky: np.ndarray  # (height, width) float32: the sky's share of ``expected``
    hot_pixels: np.ndarray  # (n, 2) int: x, y of hot pixels on this frame
    dark_scale: float  # the hot pixels' levels on this frame over the table's (the sensor's temperature)
    transparency: float
    airmass: float  # at the true centre
    scintillation: float  # Young's fractional rms at the true centre's airmass
    mount: tuple[float, float]
    conditions: Conditions
    site: Site
    extinction: np.ndarray  # k, mag/airmass, for r, g, b


STAR_COLUMNS = {
    "id": "Gaia DR3 source id; -HIP for a Hipparcos-only star; <= -1e10 a faint field star",
    "ra": "deg, ICRS, at the frame's epoch", "dec": "deg",
    "x": "px, 0-based column (astropy origin 0)", "y": "px, 0-based row",
    "mag": "Gaia G", "bp_rp": "drawn Gaia BP-RP colour", "airmass": "at the star",
    "electrons_r": "expected e- in the star's r pixels (extinction, cloud, signal; no scintillation)",
    "electrons_g": "same, both g pixels of each 2x2", "electrons_b": "same, b pixels",
    "signal": "injected flux factor (transits, variables) at mid-exposure",
    "scintillation": "the flux factor drawn for scintillation (lognormal, mean 1, see noise)",
    "peak_electrons": "expected electrons in the star's brightest pixel (star only)",
    "saturated": "star + sky in its brightest pixel reaches saturation",
    "sky_r": "expected sky e-/px in r pixels at the star", "sky_g": "same, g pixels", "sky_b": "same, b pixels",
    "catalog": "from the bundled catalog (False: a faint field star)",
}


@dataclass
class SimulatedFrame:
    spec: FrameSpec
    data: np.ndarray  # uint16 (height, width) RGGB
    header: Any  # astropy Header, as a unit writes it (no WCS)
    truth: Truth

    def to_fits_bytes(self) -> bytes:
        """The FITS file a unit uploads: one primary HDU, uint16 (BZERO 32768), as POCS writes it."""
        from astropy.io import fits as astropy_fits

        out = io.BytesIO()
        hdu = astropy_fits.PrimaryHDU(self.data, self.header)
        hdu.header.set("EXTEND", True, after="NAXIS2")  # as the POCS frames have it
        hdu.writeto(out)
        return out.getvalue()


def _destination(ra: float, dec: float, bearing_rad: float, distance_deg: float) -> tuple[float, float]:
    """The point ``distance_deg`` from (ra, dec) along ``bearing`` (from north through east)."""
    lat1, lon1, d = np.radians(dec), np.radians(ra), np.radians(distance_deg)
    lat2 = np.arcsin(np.sin(lat1) * np.cos(d) + np.cos(lat1) * np.sin(d) * np.cos(bearing_rad))
    lon2 = lon1 + np.arctan2(np.sin(bearing_rad) * np.sin(d) * np.cos(lat1), np.cos(d) - np.sin(lat1) * np.sin(lat2))
    return float(np.degrees(lon2) % 360), float(np.degrees(lat2))


def mount_position(spec: FrameSpec) -> tuple[float, float]:
    if spec.mount is not None:
        return spec.mount
    rng = np.random.default_rng([spec.seed, 0x40A7])
    offset = spec.mount_offset_deg if spec.mount_offset_deg is not None else float(rng.uniform(0.5, 2.0))
    return _destination(spec.ra, spec.dec, float(rng.uniform(0, 2 * np.pi)), offset)


def _stable_seed(text: str) -> int:
    return zlib.crc32(text.encode())


def sensor_temperature_of(spec: FrameSpec, site: Site | None = None) -> float:
    """The sensor's temperature (C) during ``spec``'s exposure: its own, else the model's."""
    from panoptes_network.simulator.header import sensor_temperature

    if spec.sensor_temp_c is not None:
        return float(spec.sensor_temp_c)
    return sensor_temperature(spec.time, (site or spec.site or site_for(spec.unit_id)).longitude)


def dark_scale(spec: FrameSpec) -> float:
    """``spec``'s hot pixels' levels over the table's (its sensor's temperature)."""
    return dark_current_scale(sensor_temperature_of(spec))


def dark_current_scale(temperature_c: float) -> float:
    """The hot pixels' levels at ``temperature_c`` over their levels in the table."""
    return float(2 ** ((temperature_c - HOT_PIXEL_TEMPERATURE_C) / DARK_DOUBLING_C))


def hot_pixels(camera_id: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(xy, electrons per second) of the camera's hot pixels inside a centred cut-out."""
    xs, ys, rates = _sensor_hot_pixels(camera_id)
    xs = xs - (camera.FULL_WIDTH - width) // 2
    ys = ys - (camera.FULL_HEIGHT - height) // 2
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    return np.stack([xs[inside], ys[inside]], axis=1), rates[inside]


@functools.lru_cache(maxsize=16)
def _sensor_hot_pixels(camera_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, electrons per second) of all the sensor's hot pixels: a camera's own, drawn
    once per process (145,000 of them: drawing them had been a third of a small frame's rendering)."""
    rng = np.random.default_rng([_stable_seed(camera_id), 0x407])
    count = int(round(HOT_PIXELS_PER_MEGAPIXEL * camera.FULL_WIDTH * camera.FULL_HEIGHT / 1e6))
    xs = rng.integers(0, camera.FULL_WIDTH, count)
    ys = rng.integers(0, camera.FULL_HEIGHT, count)
    # each one's level drawn from the measured counts above each level (log-log interpolated)
    above = rng.uniform(0, 1, count) * HOT_PIXELS_PER_MEGAPIXEL
    levels = np.exp(np.interp(np.log(np.maximum(above, HOT_PIXELS_ABOVE_PER_MEGAPIXEL[-1])),
                              np.log(HOT_PIXELS_ABOVE_PER_MEGAPIXEL[::-1]), np.log(HOT_PIXEL_LEVELS_ADU[::-1])))
    rates = levels * camera.GAIN / HOT_PIXEL_EXPTIME  # e-/s: 0.75 to 200
    for array in (xs, ys, rates):
        array.flags.writeable = False  # shared by every frame of the camera
    return xs, ys, rates


def _interpolate_rows_into(out: np.ndarray, lines: np.ndarray, grid_y: np.ndarray, rows: np.ndarray) -> None:
    """Write ``lines`` (full rows at the heights ``grid_y``) interpolated linearly to
    ``rows`` into ``out``, one grid interval at a time, with no temporaries the size of
    ``out`` (and no BLAS: its threads spin on a busy machine)."""
    interval = np.clip(np.searchsorted(grid_y, rows, side="right") - 1, 0, len(grid_y) - 2)
    for k in np.unique(interval):
        chosen = np.flatnonzero(interval == k)
        block = slice(chosen[0], chosen[-1] + 1)  # rows are sorted, so an interval's rows are contiguous
        t = ((rows[block] - grid_y[k]) / (grid_y[k + 1] - grid_y[k])).astype(np.float32)[:, None]
        np.multiply(t, lines[k + 1] - lines[k], out=out[block])
        out[block] += lines[k]


def _sky(spec: FrameSpec, wcs, site: Site, sky_conditions: Conditions, altitude_correction: float,
         extinction_k: np.ndarray) -> np.ndarray:
    """Expected sky electrons per pixel, (height, width) float32, each pixel in its own colour."""
    gy = np.linspace(0, spec.height - 1, SKY_GRID[0])
    gx = np.linspace(0, spec.width - 1, SKY_GRID[1])
    mesh_x, mesh_y = np.meshgrid(gx, gy)
    ra, dec = wcs.all_pix2world(mesh_x, mesh_y, 0)
    alt = altitude(site, sky_conditions.lst_deg, ra, dec) + altitude_correction
    moon_alt = sky_conditions.moon_altitude
    separation = _separation(ra, dec, sky_conditions.moon_ra, sky_conditions.moon_dec)
    dark, moon = atmosphere.sky_nanolamberts(alt, separation, moon_alt, sky_conditions.moon_fraction)
    # V = 22.5 - 2.5 log10(B / 34.08): a brightness in nL is 10**(-0.4 V) * 34.08e9 per arcsec^2.
    per_pixel = ZERO_POINT_G * spec.exptime * camera.PIXEL_SCALE_ARCSEC**2 / 34.08e9
    grids = [per_pixel * (dark * atmosphere.DARK_SKY_RGB[c] + moon * atmosphere.MOONLIGHT_RGB[c]) for c in range(3)]
    sky = np.empty((spec.height, spec.width), np.float32)
    columns = np.arange(spec.width, dtype=float)
    for row_parity in (0, 1):
        # Each grid row interpolated along a whole sensor row, each pixel in its own colour.
        lines = np.empty((len(gy), spec.width), np.float32)
        for column_parity in (0, 1):
            channel = camera.CHANNEL_OF[row_parity, column_parity]
            for k in range(len(gy)):
                lines[k, column_parity::2] = np.interp(columns[column_parity::2], gx, grids[channel][k])
        _interpolate_rows_into(sky[row_parity::2], lines, gy, np.arange(row_parity, spec.height, 2, dtype=float))
    return sky


def _sky_at(sky: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, 3): the sky of the r, g and b pixels of the 2x2 Bayer cell under each star."""
    height, width = sky.shape
    row = np.clip(np.floor(np.asarray(y) / 2).astype(int) * 2, 0, (height - 2) // 2 * 2)
    column = np.clip(np.floor(np.asarray(x) / 2).astype(int) * 2, 0, (width - 2) // 2 * 2)
    return np.stack([sky[row, column], sky[row, column + 1], sky[row + 1, column + 1]], axis=1).astype(float)


def _separation(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    cos = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(ra1 - ra2)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _stamp_grid(x, y, radius: int):
    """Pixel columns and rows (n, s) of stamps of half-size ``radius`` centred on each star."""
    offsets = np.arange(-radius, radius + 1)
    return np.rint(x).astype(np.int64)[:, None] + offsets, np.rint(y).astype(np.int64)[:, None] + offsets


def _accumulate(image: np.ndarray, px: np.ndarray, py: np.ndarray, values: np.ndarray):
    """Add (n, s, s) stamp ``values`` at columns ``px`` and rows ``py`` (n, s) into ``image``.

    A batch's stars share a tile of the frame, so one ``bincount`` over the tile's
    bounding box sums them (overlapping stamps add, unlike fancy-index assignment).
    Stamp pixels off the frame are clipped onto its edge with zero weight."""
    height, width = image.shape
    off = ((px < 0) | (px >= width))[:, None, :] | ((py < 0) | (py >= height))[:, :, None]
    if off.any():
        values = np.where(off, np.float32(0), values)
    top, left = max(int(py[:, 0].min()), 0), max(int(px[:, 0].min()), 0)
    bottom, right = min(int(py[:, -1].max()), height - 1), min(int(px[:, -1].max()), width - 1)
    box_height, box_width = bottom + 1 - top, right + 1 - left
    if box_height <= 0 or box_width <= 0:
        return  # every stamp of the batch is off the frame
    rows = (np.clip(py, top, bottom) - top).astype(np.intp) * box_width
    columns = np.clip(px, left, right) - left
    local = rows[:, :, None] + columns[:, None, :]
    box = np.bincount(local.ravel(), values.ravel(), minlength=box_height * box_width)
    image[top : top + box_height, left : left + box_width] += box.reshape(box_height, box_width).astype(np.float32)


def _stamp_batches(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, stamp_sigmas: float):
    """(stamp half-size, star indices): stars batched by tile of the frame, each batch's
    stamps as big as its widest PSF needs (the PSF varies slowly over a tile)."""
    tile = np.floor(y / TILE).astype(np.int64) * 1_000 + np.floor(x / TILE).astype(np.int64)
    order = np.argsort(tile, kind="stable")
    starts = np.flatnonzero(np.diff(tile[order], prepend=tile[order][0] - 1))
    for begin, end in zip(starts, np.append(starts[1:], len(order))):
        for first in range(begin, end, STAMP_BATCH):
            index = order[first : min(end, first + STAMP_BATCH)]
            yield int(np.ceil(stamp_sigmas * sigma[index].max())), index


def _colour_planes(px: np.ndarray, py: np.ndarray):
    """Indicators (n, s) of even/odd rows and columns: r pixels are even-even, b odd-odd."""
    return (py % 2 == 0), (px % 2 == 0)


def _render_elliptical(image: np.ndarray, x, y, channel_electrons: np.ndarray, width: int, height: int,
                       stamp_sigmas: float) -> tuple[np.ndarray, np.ndarray]:
    """Add each star's elliptical PSF stamp, weighted per Bayer colour, into ``image``.

    ``channel_electrons`` (n, 3): a star's electrons in an all-r, all-g, all-b detector.
    Returns the fraction of each star's PSF on r, g and b pixels (n, 3), so its electrons
    per channel are ``channel_electrons * fraction``, and each star's peak pixel electrons.
    """
    count = len(x)
    fractions, peaks = np.zeros((count, 3)), np.zeros(count)
    if count == 0:
        return fractions, peaks
    major, minor, angle = camera.psf_shape(x, y, width, height)
    halo_sigma = camera.PSF_HALO_SCALE * major
    for radius, part in _stamp_batches(x, y, np.maximum(stamp_sigmas * major, 3 * halo_sigma), 1.0):
        px, py = _stamp_grid(x[part], y[part], radius)
        dx = (px - x[part, None]).astype(np.float32)[:, None, :]
        dy = (py - y[part, None]).astype(np.float32)[:, :, None]
        cos, sin = np.cos(angle[part]), np.sin(angle[part])
        inv_a, inv_b = 0.5 / major[part] ** 2, 0.5 / minor[part] ** 2
        qa = (cos**2 * inv_a + sin**2 * inv_b).astype(np.float32)[:, None, None]
        qc = (sin**2 * inv_a + cos**2 * inv_b).astype(np.float32)[:, None, None]
        qb = (2 * sin * cos * (inv_a - inv_b)).astype(np.float32)[:, None, None]
        psf = np.exp(-(qa * dx * dx + qb * dx * dy + qc * dy * dy))  # (n, rows, columns)
        psf *= (1 - camera.PSF_HALO_FRACTION) / psf.sum(axis=(1, 2), keepdims=True)
        halo = np.exp(-(dx * dx + dy * dy) * (0.5 / halo_sigma[part] ** 2).astype(np.float32)[:, None, None])
        psf += halo * (camera.PSF_HALO_FRACTION / halo.sum(axis=(1, 2), keepdims=True))
        even_row, even_column = _colour_planes(px, py)
        red = even_row[:, :, None] & even_column[:, None, :]
        blue = ~even_row[:, :, None] & ~even_column[:, None, :]
        fractions[part, 0] = np.where(red, psf, 0).sum(axis=(1, 2))
        fractions[part, 2] = np.where(blue, psf, 0).sum(axis=(1, 2))
        fractions[part, 1] = 1 - fractions[part, 0] - fractions[part, 2]
        e = channel_electrons[part].astype(np.float32)
        weight = (e[:, 1, None, None] + (e[:, 0] - e[:, 1])[:, None, None] * red
                  + (e[:, 2] - e[:, 1])[:, None, None] * blue)
        values = psf * weight
        peaks[part] = values.max(axis=(1, 2))
        _accumulate(image, px, py, values)
    return fractions, peaks


def _render_round(image: np.ndarray, x, y, channel_electrons: np.ndarray, width: int, height: int,
                  stamp_sigmas: float) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_render_elliptical` for faint stars, with a round PSF of the local mean
    width: separable, so the colour fractions are products of 1-D sums (much faster)."""
    count = len(x)
    fractions, peaks = np.zeros((count, 3)), np.zeros(count)
    if count == 0:
        return fractions, peaks
    major, minor, _ = camera.psf_shape(x, y, width, height)
    sigma = np.sqrt(major * minor)
    for radius, part in _stamp_batches(x, y, sigma, stamp_sigmas):
        px, py = _stamp_grid(x[part], y[part], radius)
        inv = (0.5 / sigma[part] ** 2)[:, None]
        gx = np.exp(-inv * (px - x[part, None]) ** 2)
        gy = np.exp(-inv * (py - y[part, None]) ** 2)
        gx /= gx.sum(axis=1, keepdims=True)
        gy /= gy.sum(axis=1, keepdims=True)
        even_row, even_column = _colour_planes(px, py)
        row_even, column_even = (gy * even_row).sum(axis=1), (gx * even_column).sum(axis=1)
        fractions[part, 0] = row_even * column_even
        fractions[part, 2] = (1 - row_even) * (1 - column_even)
        fractions[part, 1] = 1 - fractions[part, 0] - fractions[part, 2]
        e = channel_electrons[part]
        gx32, gy32 = gx.astype(np.float32), gy.astype(np.float32)
        values = e[:, 1, None, None].astype(np.float32) * gy32[:, :, None] * gx32[:, None, :]
        values += ((e[:, 0] - e[:, 1])[:, None, None].astype(np.float32) * (gy32 * even_row)[:, :, None]
                   * (gx32 * even_column)[:, None, :])
        values += ((e[:, 2] - e[:, 1])[:, None, None].astype(np.float32) * (gy32 * ~even_row)[:, :, None]
                   * (gx32 * ~even_column)[:, None, :])
        peaks[part] = values.max(axis=(1, 2))
        _accumulate(image, px, py, values)
    return fractions, peaks


def simulate_frame(spec: FrameSpec) -> SimulatedFrame:
    from astropy.table import Table

    from panoptes_network.simulator.header import pocs_header

    site = spec.site or site_for(spec.unit_id)
    mount = mount_position(spec)
    frame_conditions = spec.conditions or conditions(site, [spec.time], *mount)[0]
    if frame_conditions.altitude <= 0:
        raise ValueError(f"the mount points {-frame_conditions.altitude:.0f} deg below {site.unit_id}'s horizon "
                         f"at {spec.time.isoformat()}")
    wcs = camera.truth_wcs(spec.ra, spec.dec, spec.rotation_deg, spec.width, spec.height, spec.distortion_k,
                           spec.drift_px)
    rng = np.random.default_rng([spec.seed, 0xF4A3E])

    # Stars in the footprint: a cone from the field's centre over its corners, with room
    # for distortion, drift and stamps (from the geometry alone, so the frames of a
    # sequence share the star lists cached in ``stars``).
    radius = float(np.hypot(spec.width, spec.height)) / 2 * camera.PIXEL_SCALE_DEG * 1.01 + 0.15
    j2000 = datetime(2000, 1, 1, 12, tzinfo=timezone.utc)
    year = 2000.0 + (spec.mid_exposure - j2000).total_seconds() / (365.25 * 86400)
    catalog = catalog_stars(spec.ra, spec.dec, radius, year)
    faint = faint_stars(spec.ra, spec.dec, radius, spec.faint_limit)
    stars = Stars.join([catalog, faint])
    x, y = camera.world_to_pixel(wcs, stars.ra, stars.dec)
    margin = 15
    keep = (x > -margin) & (x < spec.width - 1 + margin) & (y > -margin) & (y < spec.height - 1 + margin)
    is_catalog = np.concatenate([np.ones(len(catalog), bool), np.zeros(len(faint), bool)])[keep]
    stars, x, y = stars.take(keep), x[keep], y[keep]

    # Their light: extinction at each star's airmass (astropy's altitude of the mount
    # corrects the plain spherical trigonometry for precession and aberration).
    correction = frame_conditions.altitude - float(altitude(site, frame_conditions.lst_deg, *mount))
    star_airmass = airmass(altitude(site, frame_conditions.lst_deg, stars.ra, stars.dec) + correction)
    centre_airmass = float(airmass(altitude(site, frame_conditions.lst_deg, spec.ra, spec.dec) + correction))
    k = atmosphere.extinction(site.elevation)
    transparency = 1.0 - spec.cloud
    signal = signal_factors(spec.signals, stars.id, spec.mid_exposure)
    sigma_s = noise.scintillation(spec.exptime, star_airmass, site.elevation)
    scintillation = noise.scintillation_factors(sigma_s, rng.standard_normal(len(stars)))
    if spec.noiseless:  # drawn all the same, so every other draw of the frame stays as it was
        scintillation = np.ones_like(scintillation)
    above = ZERO_POINT_G * spec.exptime * 10 ** (-0.4 * stars.mag)
    electrons = (above[:, None] * channel_ratios(stars.bp_rp) * 10 ** (-0.4 * k[None, :] * star_airmass[:, None])
                 * (transparency * signal)[:, None])

    # Render: catalog stars on big stamps, faint ones on small stamps.
    image = np.zeros((spec.height, spec.width), np.float32)
    fractions = np.zeros((len(stars), 3))
    peaks = np.zeros(len(stars))
    for chosen, render, sigmas in ((is_catalog, _render_elliptical, BRIGHT_STAMP_SIGMAS),
                                   (~is_catalog, _render_round, FAINT_STAMP_SIGMAS)):
        index = np.flatnonzero(chosen)
        fractions[index], peaks[index] = render(image, x[index], y[index],
                                                electrons[index] * scintillation[index, None],
                                                spec.width, spec.height, sigmas)
    peaks /= scintillation  # the truth is the expectation; the draw is its own column

    sky = _sky(spec, wcs, site, frame_conditions, correction, k)
    image += sky
    hot_xy = np.empty((0, 2), int)
    temperature = sensor_temperature_of(spec, site)
    dark = dark_current_scale(temperature)
    if spec.hot_pixels:
        hot_xy, rates = hot_pixels(spec.camera_id, spec.width, spec.height)
        np.add.at(image, (hot_xy[:, 1], hot_xy[:, 0]), (rates * spec.exptime * dark).astype(np.float32))

    data = expected_adu(image) if spec.noiseless else digitise(image, [spec.seed, 0xAD0])

    per_channel = electrons * fractions
    sky_at_star = _sky_at(sky, x, y)
    saturated = (peaks + sky_at_star.max(axis=1)) / camera.GAIN + camera.BIAS_ADU >= camera.SATURATION_ADU
    table = Table({"id": stars.id, "ra": stars.ra, "dec": stars.dec, "x": x, "y": y, "mag": stars.mag,
                   "bp_rp": stars.bp_rp, "airmass": star_airmass, "electrons_r": per_channel[:, 0],
                   "electrons_g": per_channel[:, 1], "electrons_b": per_channel[:, 2], "signal": signal,
                   "scintillation": scintillation, "peak_electrons": peaks, "saturated": saturated,
                   "sky_r": sky_at_star[:, 0], "sky_g": sky_at_star[:, 1], "sky_b": sky_at_star[:, 2],
                   "catalog": is_catalog})
    for name, description in STAR_COLUMNS.items():
        table[name].description = description
    header = pocs_header(site=site, camera_id=spec.camera_id, sequence_time=spec.sequence_time or spec.time,
                         time=spec.time, exptime=spec.exptime, field=spec.field_name, mount_ra=mount[0],
                         mount_dec=mount[1], conditions=frame_conditions, seed=[spec.seed, 0x4EAD],
                         sensor_temp_c=temperature)
    truth = Truth(wcs=wcs, stars=table, expected=image, sky=sky, hot_pixels=hot_xy, dark_scale=dark,
                  transparency=transparency,
                  airmass=centre_airmass,
                  scintillation=float(noise.scintillation(spec.exptime, centre_airmass, site.elevation)),
                  mount=mount, conditions=frame_conditions, site=site, extinction=k)
    return SimulatedFrame(spec, data, header, truth)


def expected_adu(expected_electrons: np.ndarray) -> np.ndarray:
    """The ADC of :func:`digitise` on the expectation itself, no noise: what a noiseless
    frame holds (``FrameSpec.noiseless``)."""
    return _adc(expected_electrons.astype(np.float32)).astype(np.uint16)


def _adc(electrons: np.ndarray) -> np.ndarray:
    """float32 electrons to ADU in place, bias added, ready to round down (``floor(x + 0.5)``
    once cast), clipped to 0..saturation: the camera's converter, noisy or not."""
    electrons *= np.float32(1 / camera.GAIN)
    electrons += np.float32(camera.BIAS_ADU + 0.5)
    np.clip(electrons, 0, camera.SATURATION_ADU, out=electrons)
    return electrons


def digitise(expected_electrons: np.ndarray, seed) -> np.ndarray:
    """Noise and the ADC, exactly as :mod:`noise` states: uint16 ADU, clipped at saturation.

    ``lam + sqrt(lam + RN^2) z``, then ``floor(x + 0.5)`` (rounding) once clipped to
    0..saturation, in float32, a band of :data:`NOISE_BAND_ROWS` rows at a time (each
    band's arithmetic stays in the CPU's cache) on :data:`NOISE_THREADS` threads (numpy
    lets go of the GIL). Each band draws from its own generator, spawned from ``seed`` in
    band order, so the frame is the same whatever the threads do."""
    expected = expected_electrons.astype(np.float32, copy=False)
    height = expected.shape[0]
    bands = [slice(start, min(start + NOISE_BAND_ROWS, height)) for start in range(0, height, NOISE_BAND_ROWS)]
    generators = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(len(bands))]
    data = np.empty(expected.shape, np.uint16)

    def band(index: int) -> None:
        rows, rng = bands[index], generators[index]
        lam = expected[rows]
        electrons = rng.standard_normal(lam.shape, dtype=np.float32)
        spread = lam + np.float32(camera.READ_NOISE**2)
        np.sqrt(spread, out=spread)
        electrons *= spread
        electrons += lam
        low = lam < noise.POISSON_GAUSSIAN_ABOVE
        if low.any():
            small = lam[low]
            electrons[low] = rng.poisson(small) + camera.READ_NOISE * rng.standard_normal(small.shape, dtype=np.float32)
        data[rows] = _adc(electrons)

    if len(bands) == 1:
        band(0)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(NOISE_THREADS) as pool:
            list(pool.map(band, range(len(bands))))
    return data
