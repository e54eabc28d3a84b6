"""One frame's photometry, as stages (BANZAI's model): :func:`measure_frame`.

calibrate (the observation's hot pixels repaired; bias; each Bayer channel's sky level) -> place (catalog stars
through the frame's WCS, moved by their proper motions to the frame's date) -> seeing
(FWHM from the bright stars' half-light radii; their centroids against the WCS) ->
photometry (forced circular apertures per channel, the sky a plane fitted by least squares over
a local annulus with soft radii, the other catalog stars masked with soft edges and only far
outliers left out;
radii following the FWHM, the annulus's the observation's when the caller knows it; each
aperture summed at a bracket of two radii so that build_lightcurves can read every frame's at
the observation's FWHM) -> flags -> quality (zero point against the catalog) -> accept or reject.

Each stage is one class whose ``do_stage`` reads and fills a :class:`_Work`; a stage that
finds the frame unusable calls ``work.reject(reason)`` and the later stages that need
pixels pass it by (the measurement still comes back, with the reason). The whole is a pure
function of its arguments, so a process pool can run it frame by frame.

Conventions (pinned in tests): pixel coordinates are 0-based on the full mosaic, x along a
row, y down the rows (astropy ``origin=0``). RGGB: the r pixels are (even row, even
column), b (odd, odd), g the other two. A Bayer channel plane is ``mosaic[dy::2, dx::2]``,
so mosaic (x, y) is plane ((x - dx) / 2, (y - dy) / 2) and a radius halves. sep needs
native byte order (the planes are float32 copies) and ``subpix=0`` is its exact overlap.
Fluxes are electrons (gain :data:`GAIN`) summed over every pixel of that colour in the
aperture: both g pixels of each 2x2 cell for g, as the simulator's ``electrons_g`` counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from panoptes_network.photometry.params import PhotometryParams
from panoptes_network.simulator.camera import BIAS_ADU, GAIN, SATURATION_ADU
from panoptes_network.simulator.noise import aperture_noise

CHANNELS = ("r", "g", "b")
PLANES = {"r": ((0, 0),), "g": ((0, 1), (1, 0)), "b": ((1, 1),)}  # (dy, dx) of each channel's pixels in a 2x2 cell

FLAG_SATURATED = 1  # a pixel in the aperture reached saturation
FLAG_EDGE = 2  # the aperture or annulus leaves the frame
FLAG_NEIGHBOUR = 4  # a brighter catalog star within the aperture (plus neighbour_fwhm x FWHM)
FLAG_BAD_WCS = 8  # the frame's WCS does not put stars where they are
FLAG_REJECTED = 16  # the frame was rejected, or the point is an outlier (set by build_lightcurves)

SATURATION_FRACTION = 0.98  # of SATURATION_ADU: a pixel this high counts as saturated
SEEING_STARS = 80
# Seeing stars by catalog magnitude alone, from the brightest that stays well clear of
# saturation in a 120 s exposure (a G 8.2 star fills its peak pixel at the zenith), scaled with
# the exposure time, over SEEING_MAG_SPAN, so the same stars measure the FWHM on every frame
# (chosen by their raw peak, under 0.8 of saturation, the brightest came and went with the
# sky, the extinction and the clouds: the FWHM read 0.5% wider at 700 ADU of sky than at 80,
# the apertures followed it, and each star's share of its neighbours' light moved with them).
SEEING_BRIGHTEST_G_120S = 8.5
SEEING_MAG_SPAN = 1.5
SEEING_MASK_PX = 9.0  # other catalog stars' masks in a seeing stamp's border: as an aperture of ~2 FWHM
SEEING_PASSES = 3
SEEING_OUTLIER_ADU = 1000.0  # a stamp's 2x2 super-pixels this far from its sky are left out of it (hot pixels)
SEEING_RADIUS_FWHM = 1.5  # the FWHM is that of the light within this many FWHM of each seeing star
ZERO_POINT_MAG_RANGE = (6.5, 9.8)
# The photometry's annulus is a near-linear estimator of the sky (:func:`_sky_level`): a plane over
# all of it, the catalog stars masked, only pixels this far off the plane left out (cosmic rays,
# hot pixels the observation's map missed; the mapped ones are repaired first), so the faint
# uncatalogued stars' light it takes in is a fixed share of their light.
ANNULUS_OUTLIER_ADU = 1000.0
ANNULUS_EDGE_SOFT_PX = 1.0  # its radii soft: a pixel's weight ramps 0 -> 1 over this many plane px of its
# distance from the star, centred on each radius
SKY_OUTLIER_PASSES = 3
SKY_TAPER_WIDTH = 0.5  # a sky's window tapered: a pixel's weight falls from 1 to 0 over this fraction of its
# outlier limit either side of it
SKY_MASK_GROWTH_PER_MAG = 0.4  # a catalog star's mask in others' annuli: the aperture x (1 + this x (10 - G))
SKY_MASK_MAX = 3.5  # ... at most this many apertures
SKY_MIN_UNMASKED = 0.1  # fraction of the annulus: below it the mask is dropped (the star is crowded)
SKY_GRID_STEP = 16  # plane pixels between the samples of the frame-wide sky level
# Each aperture is summed at its radius x (1 -/+ this), and the flux at any radius between
# is read off linearly (:meth:`FrameMeasurement.at_aperture_radius`): build_lightcurves puts
# every frame's aperture at the observation's FWHM, not the frame's own measurement of it.
APERTURE_BRACKET = 0.05
CATALOG_EPOCH = 2016.0  # Gaia DR3: catalog rows with proper motions are moved from here


@dataclass
class FrameMeasurement:
    """What one frame gives: per star (rows, in the order of the ``stars`` passed) and
    channel (columns r, g, b), and the frame's quality figures. Picklable (plain arrays)."""

    image_id: str
    time_utc: datetime | None  # mid-exposure, aware UTC
    exptime: float
    site: tuple[float, float, float] | None  # latitude, longitude (deg, east +), elevation (m)
    picid: np.ndarray  # str: the star's id as the stars collection names it
    ra: np.ndarray  # deg, at the frame's epoch
    dec: np.ndarray
    mag: np.ndarray  # catalog G
    x: np.ndarray  # px, 0-based, where the WCS puts the star
    y: np.ndarray
    flux_e: np.ndarray  # (n, 3) e- in the aperture above the local sky
    flux_err_e: np.ndarray  # (n, 3) 1-sigma, the noise model (photon, sky, read, annulus, scintillation)
    sky_e: np.ndarray  # (n, 3) e- per pixel under the star: its annulus's level (:func:`_sky_level`)
    aperture_pixels: np.ndarray  # (3,) pixels of each colour in the aperture (g counts both g pixels; with a
    # bracket, the mean of its two circles' areas, as flux_e is the mean of their sums)
    annulus_pixels: np.ndarray  # (3,) median over stars: annulus pixels whose mean is as precise as its sky level
    flags: np.ndarray  # (n, 3) uint8 bitmask, FLAG_*
    fwhm_px: float = math.nan
    background_adu: float = math.nan  # median sky above bias, ADU
    background_channel_adu: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    zero_point_mag: float = math.nan  # G + 2.5 log10(g e-/s) of unflagged stars, median
    wcs_offset_px: tuple[float, float] = (math.nan, math.nan)  # bright stars' centroid - WCS, median
    airmass: float = math.nan
    aperture_radius_px: float = math.nan
    annulus_px: tuple[float, float] = (math.nan, math.nan)
    # (n, 3, 2): flux and its error with the aperture's radius at aperture_radius_px x (1 -/+
    # APERTURE_BRACKET); flux_e and flux_err_e are read off them at aperture_radius_px
    flux_bracket_e: np.ndarray | None = None
    flux_err_bracket_e: np.ndarray | None = None
    scintillation: float = math.nan  # fractional rms in the noise model
    hot_pixels_repaired: int = 0  # pixels of the observation's hot-pixel map whose level was taken off this frame
    hot_pixel_scale: float = math.nan  # this frame's hot pixels over the map's levels (hotpixels.remove)
    rejected: str | None = None  # why the frame cannot be used, or None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def num_stars(self) -> int:
        return len(self.picid)

    def at_aperture_radius(self, radius: float) -> "FrameMeasurement":
        """This measurement with the aperture's radius at ``radius`` (mosaic px), as far as the
        bracket it was summed at reaches (beyond, its nearer end): flux, error and area
        interpolated linearly in the radius between the bracket's two sums. Without a
        bracket, or with no radius, it is returned as it is."""
        if self.flux_bracket_e is None or not math.isfinite(radius) or not math.isfinite(self.aperture_radius_px):
            return self
        low, high = self.aperture_radius_px * (1 - APERTURE_BRACKET), self.aperture_radius_px * (1 + APERTURE_BRACKET)
        weight = min(max((radius - low) / (high - low), 0.0), 1.0)
        radius = low + weight * (high - low)

        def read(bracket):
            return bracket[:, :, 0] * (1 - weight) + bracket[:, :, 1] * weight

        area = ((1 - weight) * low**2 + weight * high**2) / ((low**2 + high**2) / 2)  # over the frame's own
        return replace(self, flux_e=read(self.flux_bracket_e), flux_err_e=read(self.flux_err_bracket_e),
                       aperture_radius_px=radius, aperture_pixels=self.aperture_pixels * area,
                       flux_bracket_e=None, flux_err_bracket_e=None)


@dataclass
class _Work:
    """The frame flowing through the stages."""

    data: np.ndarray
    header: Any
    wcs: Any
    stars: Any
    params: PhotometryParams
    measurement: FrameMeasurement
    planes: dict = field(default_factory=dict)  # (dy, dx) -> float32 Bayer plane less the bias, ADU
    inside: np.ndarray | None = None
    hot_pixels: object = None  # the observation's hotpixels.HotPixelMap
    sky_fwhm_px: float | None = None  # the FWHM the annulus's radii follow (None: the frame's own)

    def reject(self, reason: str) -> None:
        if self.measurement.rejected is None:
            self.measurement.rejected = reason


class Stage:
    name = "stage"
    runs_on_rejected = False

    def run(self, work: _Work) -> None:
        import time

        if work.measurement.rejected is not None and not self.runs_on_rejected:
            return
        started = time.perf_counter()
        self.do_stage(work)
        work.measurement.seconds[self.name] = time.perf_counter() - started

    def do_stage(self, work: _Work) -> None:
        raise NotImplementedError


class Calibrate(Stage):
    """The observation's hot pixels' levels taken off (:func:`hotpixels.remove`), bias off each Bayer plane (float32 copies, native byte order for sep), and each
    channel's sky level over the frame (the median of a sparse grid of its pixels: the
    quality figure; the photometry takes its sky locally, star by star). The later stages
    read the repaired pixels (the saturation flags too)."""

    name = "calibrate"

    def do_stage(self, work: _Work) -> None:
        if work.hot_pixels is not None and len(work.hot_pixels):
            from panoptes_network.photometry.hotpixels import remove

            work.data, work.measurement.hot_pixel_scale, work.measurement.hot_pixels_repaired = \
                remove(work.data, work.hot_pixels)
        rows, columns = work.data.shape
        levels = {}
        for channel, offsets in PLANES.items():
            for dy, dx in offsets:
                raw = work.data[dy:rows - rows % 2:2, dx:columns - columns % 2:2]
                plane = raw.astype(np.float32)
                plane -= np.float32(BIAS_ADU)
                work.planes[dy, dx] = plane
                levels.setdefault(channel, []).append(float(np.median(plane[::SKY_GRID_STEP, ::SKY_GRID_STEP])))
        work.measurement.background_channel_adu = tuple(float(np.mean(levels[c])) for c in CHANNELS)
        work.measurement.background_adu = float(np.median([v for c in CHANNELS for v in levels[c]]))
        if work.measurement.background_adu > work.params.max_background_adu:
            work.reject(f"background {work.measurement.background_adu:.0f} ADU above bias is over "
                        f"{work.params.max_background_adu:.0f} (twilight, Moon or cloud lit from below)")


class Place(Stage):
    """Each catalog star's pixel position through the frame's WCS (0-based)."""

    name = "place"
    runs_on_rejected = True

    def do_stage(self, work: _Work) -> None:
        m = work.measurement
        if work.wcs is None:
            m.flags[:] |= FLAG_BAD_WCS
            work.reject("no WCS: the frame is not plate-solved")
            return
        if len(m.ra):
            x, y = work.wcs.all_world2pix(m.ra, m.dec, 0, quiet=True)
        else:
            x = y = np.array([])
        m.x, m.y = np.asarray(x, float), np.asarray(y, float)
        rows, columns = work.data.shape
        work.inside = (np.isfinite(m.x) & np.isfinite(m.y) & (m.x >= 0) & (m.x <= columns - 1)
                       & (m.y >= 0) & (m.y <= rows - 1))


class Seeing(Stage):
    """The FWHM and the WCS check, on 2x2 super-pixel stamps (every colour summed) of
    bright unsaturated stars, each less its sky (the level of its outer part, as the
    annulus's, :func:`_sky_level`): sep's half-light radius
    (corrected for the binning; a Gaussian's FWHM is twice it, and the PSF's halo makes it
    read a little wider than the core) and windowed centroids against the WCS."""

    name = "seeing"
    HALF = 16  # super-pixels: stamp half-size
    SKY_INNER = 10  # super-pixels: the stamp's sky is its pixels this far out (4.5 halo sigmas), ~780 of them

    def do_stage(self, work: _Work) -> None:
        import sep

        m = work.measurement
        rows, columns = work.planes[0, 0].shape
        sx, sy = (m.x - 0.5) / 2, (m.y - 0.5) / 2  # super-pixel i covers mosaic 2i, 2i+1
        peak = _box_max(work.data, m.x, m.y, 3)
        half = self.HALF
        brightest = SEEING_BRIGHTEST_G_120S + 2.5 * math.log10(m.exptime / 120)
        usable = (work.inside & (m.mag >= brightest) & (m.mag <= brightest + SEEING_MAG_SPAN)
                  & (sx > half) & (sx < columns - 1 - half) & (sy > half) & (sy < rows - 1 - half)
                  & (peak < 0.95 * SATURATION_ADU))
        chosen = np.flatnonzero(usable)
        chosen = chosen[np.argsort(m.mag[chosen], kind="stable")][:SEEING_STARS]
        if len(chosen) < 3:
            work.reject(f"only {len(chosen)} bright unsaturated catalog stars on the frame to measure the seeing")
            return
        cx, cy = np.rint(sx[chosen]).astype(int), np.rint(sy[chosen]).astype(int)
        offsets = np.arange(-half, half + 1)
        size = 2 * half + 1
        index = (cy[:, None, None] + offsets[None, :, None], cx[:, None, None] + offsets[None, None, :])
        stamps = sum(plane[index] for plane in work.planes.values())  # (n, s, s)
        # The sky as the annulus's (a plane, the other catalog stars masked), not the
        # border's median: the faint stars skew its pixels, and a median took less of their
        # light off as the noise grew, so the FWHM read narrower on a brighter sky (4.88 px
        # at 80 ADU, 4.79 at 700, 5.02 noiseless).
        grid_y, grid_x = np.mgrid[-half:half + 1, -half:half + 1]
        outside = np.hypot(grid_x, grid_y) >= self.SKY_INNER
        ring_x, ring_y = grid_x[outside], grid_y[outside]
        border = stamps[:, ring_y + half, ring_x + half]
        neighbours = _annulus_neighbours(m, chosen, SEEING_MASK_PX, 2 * math.sqrt(2) * half)
        masked = _annulus_mask(neighbours, cx.astype(float), cy.astype(float), ring_x, ring_y, 0.5, 0.5)
        level, _ = _sky_level(border, masked, ring_x, ring_y, sx[chosen] - cx, sy[chosen] - cy,
                              outlier_adu=SEEING_OUTLIER_ADU)
        stamps -= level[:, None, None]
        strip = np.ascontiguousarray(stamps.reshape(len(chosen) * size, size), dtype=np.float32)
        local_x = sx[chosen] - cx + half
        local_y = sy[chosen] - cy + half + np.arange(len(chosen)) * size
        # Three passes: the half-light radius within the whole stamp, then twice within the
        # aperture the last FWHM gives (the radius within it depends on it, so a second
        # pass in that aperture steadies it: 0.33% rms from frame to frame, 0.47% with
        # one, on a 40-frame sequence). The stamp-wide sum holds ~600 super-pixels of sky
        # and its border median's error, so its FWHM wandered 1.6% rms from frame to
        # frame on a constant PSF (and with the sky's noise level: 6.2 px noisy, 6.9
        # noise-free); the aperture follows it, and a faint star's aperture took in
        # more or less of a neighbour's light (+-2% on a G 9.5 host). Within
        # SEEING_RADIUS_FWHM it wanders 0.5% and reads ~4.85 px (6.2 before) on the
        # simulator's PSF, ~4.63 from photometry-4 (its stamps' sky fitted, not a median,
        # and the seeing stars fixed by magnitude): the aperture multipliers in params are
        # scaled to match.
        rmax = np.full(len(chosen), half - 2.0)
        for _ in range(SEEING_PASSES):
            radii, flag = sep.flux_radius(strip, local_x, local_y, rmax, 0.5, subpix=5)
            fine = (flag == 0) & np.isfinite(radii) & (radii > 0)
            if fine.sum() < 3:
                work.reject("the seeing could not be measured (no clean bright star)")
                return
            sigma_super = float(np.median(radii[fine])) / math.sqrt(2 * math.log(2))
            fwhm_super = sigma_super * 2 * math.sqrt(2 * math.log(2))
            rmax = np.full(len(chosen), min(max(SEEING_RADIUS_FWHM * fwhm_super, 2.0), half - 2.0))
        sigma = 2 * math.sqrt(max(sigma_super**2 - 1 / 12, 0.05))
        m.fwhm_px = sigma * 2 * math.sqrt(2 * math.log(2))
        wx, wy, wflag = sep.winpos(strip, local_x, local_y, np.full(len(chosen), max(sigma_super, 0.5)))
        good = (wflag == 0) & np.isfinite(wx) & np.isfinite(wy)
        if good.sum() >= 3:
            m.wcs_offset_px = (float(np.median(2 * (wx - local_x)[good])), float(np.median(2 * (wy - local_y)[good])))
            offset = math.hypot(*m.wcs_offset_px)
            if offset > work.params.max_wcs_offset_px:
                m.flags[:] |= FLAG_BAD_WCS
                work.reject(f"bad WCS: stars sit {offset:.1f} px from where it puts them "
                            f"(over {work.params.max_wcs_offset_px:g})")
                return
        if m.fwhm_px > work.params.max_fwhm_px:
            work.reject(f"FWHM {m.fwhm_px:.1f} px is over {work.params.max_fwhm_px:g} (focus, trailing or cloud)")


class Photometry(Stage):
    """Forced circular apertures at every star, per channel (sep, exact overlap), less the
    sky of a local annulus (:func:`_sky_level`: a plane fitted to it, the other catalog
    stars masked, its radii and the masks' edges soft: :func:`_annulus_mask_weight`), and
    each sum's error from the noise model
    (:func:`simulator.noise.aperture_noise`; the sky estimate's error that of the plane's
    level, as a number of pixels whose mean is as precise).

    The annulus's radii and its masks of the other stars follow the observation's FWHM when
    the caller gives it (``measure_frame(sky_fwhm_px=)``), else the frame's own. The frame's
    measured FWHM creeps with the airmass and the throughput even on a constant PSF (0.4% over
    a night on the simulator's), and an annulus following it took in a different share of
    the faint stars round it: on noise-free frames a G 9.84 star with uncatalogued G 10.5-11.6
    stars in its annulus drifted -0.44% over a night (its flux at the observation's aperture, as
    build_lightcurves reads it), -0.22% with the annulus at the observation's FWHM; over the 16
    noise-free transit fits of two realisations the depth errors' rms fell from 0.36 to 0.33 of
    the noise floor.

    Each aperture is summed twice, at its radius x (1 -/+ :data:`APERTURE_BRACKET`), so the
    flux at any radius between is read off linearly (:meth:`FrameMeasurement.at_aperture_radius`;
    build_lightcurves puts every frame's at the observation's FWHM). Read off near the middle,
    its dependence on the radius at which it was summed is second order in the bracket: a
    neighbour at the aperture's edge no longer goes in and out with the frame's FWHM. The
    frame's own ``flux_e`` is the bracket's mean (an edge soft over the bracket; its truth is
    that mean of the two circles' light). Two sums, not three: the third cost 45 ms of a full
    frame's second."""

    name = "photometry"

    def do_stage(self, work: _Work) -> None:
        import sep

        m, p = work.measurement, work.params
        radius = p.aperture_fwhm * m.fwhm_px
        sky_fwhm = m.fwhm_px if work.sky_fwhm_px is None else work.sky_fwhm_px
        inner, outer = p.annulus_inner_fwhm * sky_fwhm, p.annulus_outer_fwhm * sky_fwhm
        m.aperture_radius_px, m.annulus_px = radius, (inner, outer)
        n = len(m.ra)
        flux = np.full((n, 3, 2), np.nan)
        sky = np.full((n, 3), np.nan)
        index = np.flatnonzero(work.inside)
        bracket = (radius * (1 - APERTURE_BRACKET) / 2, radius * (1 + APERTURE_BRACKET) / 2)  # plane px
        plane_areas = np.array([math.pi * r**2 for r in bracket])
        reach = int(math.ceil(outer / 2)) + 1
        oy, ox = np.mgrid[-reach:reach + 1, -reach:reach + 1]
        distance = np.hypot(ox, oy)
        soft = ANNULUS_EDGE_SOFT_PX / 2  # plane px: each radius's ramp reaches this far either side of it
        # candidates: the star is within half a pixel of its centre pixel (0.71 px diagonally)
        ring = (distance >= inner / 2 - soft - 0.75) & (distance <= outer / 2 + soft + 0.75)
        ring_y, ring_x = oy[ring], ox[ring]
        ring_x32, ring_y32 = ring_x.astype(np.float32), ring_y.astype(np.float32)
        neighbours = _annulus_neighbours(m, index, p.aperture_fwhm * sky_fwhm, outer)
        used = np.zeros((len(index), 3))
        for c, channel in enumerate(CHANNELS):
            total = np.zeros((len(index), 2))
            level = np.zeros(len(index))
            for dy, dx in PLANES[channel]:
                plane = work.planes[dy, dx]
                px, py = (m.x[index] - dx) / 2, (m.y[index] - dy) / 2
                summed = np.column_stack([sep.sum_circle(plane, px, py, r, subpix=0)[0] for r in bracket])
                column, row = np.rint(px), np.rint(py)
                values = _annulus_values(plane, column.astype(np.intp), row.astype(np.intp), ring_x, ring_y)
                # each pixel's weight by its centre's distance from the star itself (not from its
                # nearest pixel: as the field drifts that ring jumped a pixel at a time), ramping
                # 0 -> 1 across each radius, so a faint star on an edge fades in and out with the
                # drift instead of jumping (hard radii: +-0.3% frame to frame on a G 9.8 star)
                from_star = np.sqrt((ring_x32 - (px - column).astype(np.float32)[:, None]) ** 2
                                    + (ring_y32 - (py - row).astype(np.float32)[:, None]) ** 2)
                edge_weight = np.minimum(from_star - np.float32(inner / 2 - soft),
                                         np.float32(outer / 2 + soft) - from_star)
                edge_weight = np.clip(edge_weight / np.float32(ANNULUS_EDGE_SOFT_PX), 0, 1)
                outside = edge_weight <= 0
                unmasked = _annulus_mask_weight(neighbours, column, row, ring_x, ring_y, dy, dx)
                masked = (unmasked <= 0) | outside
                local, count = _sky_level(values, masked, ring_x, ring_y, px - column, py - row,
                                          outlier_adu=ANNULUS_OUTLIER_ADU, outside=outside, taper=True,
                                          weights=edge_weight, mask_weights=unmasked)
                total += summed - local[:, None] * plane_areas
                level += local
                used[:, c] += count
            flux[index, c] = total * GAIN
            sky[index, c] = level / len(PLANES[channel]) * GAIN
        # the flux at the frame's own radius is the bracket's mean: an aperture whose edge is
        # soft over the bracket (weight 1/2 there), its area the mean of the two
        m.flux_bracket_e, m.flux_e, m.sky_e = flux, flux.mean(axis=2), sky
        planes = np.array([len(PLANES[c]) for c in CHANNELS], float)
        m.aperture_pixels = plane_areas.mean() * planes
        annulus = np.full((n, 3), np.nan)
        annulus[index] = used
        m.annulus_pixels = (np.median(used, axis=0) if len(index) else np.full(3, float(len(ring_y))))
        m.scintillation = float(_scintillation(m.exptime, m.airmass, m.site))

        def error(flux_e, pixels):
            return aperture_noise(np.clip(flux_e, 0, None), pixels, np.clip(sky, 0, None), m.exptime,
                                  m.airmass if np.isfinite(m.airmass) else 1.0, m.site[2] if m.site else 0.0,
                                  background_pixels=annulus).sigma

        m.flux_err_e = error(m.flux_e, m.aperture_pixels[None, :])
        m.flux_err_bracket_e = np.stack([error(flux[:, :, k], area * planes[None, :])
                                         for k, area in enumerate(plane_areas)], axis=2)


class Flags(Stage):
    """Saturated, near the edge, a brighter neighbour in the aperture."""

    name = "flags"

    def do_stage(self, work: _Work) -> None:
        m, p = work.measurement, work.params
        rows, columns = work.data.shape
        radius, outer = m.aperture_radius_px, m.annulus_px[1] + p.edge_margin_px
        off = (~work.inside | (m.x - outer < 0) | (m.y - outer < 0) | (m.x + outer > columns - 1)
               | (m.y + outer > rows - 1))
        m.flags[off] |= FLAG_EDGE
        peak = _box_max(work.data, m.x, m.y, int(math.ceil(radius)))
        m.flags[peak >= SATURATION_FRACTION * SATURATION_ADU] |= FLAG_SATURATED
        if len(m.x) > 1:
            from scipy.spatial import cKDTree

            xy = np.column_stack([np.nan_to_num(m.x, nan=-1e6), np.nan_to_num(m.y, nan=-1e6)])
            pairs = cKDTree(xy).query_pairs(radius + p.neighbour_fwhm * m.fwhm_px, output_type="ndarray")
            if len(pairs):
                i, j = pairs[:, 0], pairs[:, 1]
                m.flags[i[m.mag[j] < m.mag[i]]] |= FLAG_NEIGHBOUR
                m.flags[j[m.mag[i] < m.mag[j]]] |= FLAG_NEIGHBOUR
        m.flags[~np.isfinite(m.flux_e)] |= FLAG_EDGE


class Quality(Stage):
    """The photometric zero point against the catalog; too few clean stars rejects the frame."""

    name = "quality"

    def do_stage(self, work: _Work) -> None:
        m, p = work.measurement, work.params
        clean = (m.flags == 0).all(axis=1) & (m.flux_e[:, 1] > 0)
        if clean.sum() < p.min_stars:
            work.reject(f"only {int(clean.sum())} stars measured cleanly (at least {p.min_stars} needed)")
        bright = clean & (m.mag >= ZERO_POINT_MAG_RANGE[0]) & (m.mag <= ZERO_POINT_MAG_RANGE[1])
        if bright.sum() >= 3:
            m.zero_point_mag = float(np.median(m.mag[bright] + 2.5 * np.log10(m.flux_e[bright, 1] / m.exptime)))


ORDERED_STAGES = (Calibrate, Place, Seeing, Photometry, Flags, Quality)


def measure_frame(data: np.ndarray, header, wcs, stars, params: PhotometryParams | None = None, *,
                  image_id: str | None = None, hot_pixels=None, sky_fwhm_px: float | None = None) -> FrameMeasurement:
    """Forced photometry of ``stars`` on one RGGB frame ``data`` with its POCS ``header`` and its
    0-based ``wcs`` (None: the frame is rejected, unsolved). See the module.

    ``hot_pixels``: the observation's hot-pixel map (a :class:`hotpixels.HotPixelMap`, from
    its own frames and its camera's), whose levels are taken off before anything is measured.

    ``sky_fwhm_px``: the observation's FWHM (mosaic px; the median of its frames' ``fwhm_px``
    from a first pass), which the local sky annulus's radii and its masks of the other stars
    then follow instead of this frame's own measurement of it (:class:`Photometry`); None:
    the frame's own. The aperture keeps its bracket round the frame's own FWHM either way
    (build_lightcurves reads it at the observation's).

    ``stars``: catalog rows (``catalog.stars_in_footprint``, or a table with id, ra, dec,
    mag, and pmra/pmdec if the positions are at J2016.0), or star documents
    (``stars.in_footprint``: the document id is the PICID)."""
    if sky_fwhm_px is not None and not (math.isfinite(sky_fwhm_px) and sky_fwhm_px > 0):
        raise ValueError(f"sky_fwhm_px is the observation's FWHM in pixels, not {sky_fwhm_px!r}")
    return _measure(data, header, wcs, stars, params, ORDERED_STAGES, image_id=image_id, hot_pixels=hot_pixels,
                    sky_fwhm_px=sky_fwhm_px)


def frame_fwhm(data: np.ndarray, header, wcs, stars, params: PhotometryParams | None = None, *,
               hot_pixels=None) -> float:
    """The frame's FWHM (mosaic px) as :func:`measure_frame` measures it, from its first stages
    alone (calibrate, with ``hot_pixels`` repaired; place; seeing: about a quarter of its
    time on a dense full frame), or NaN if the frame is rejected before or by them. A first pass
    over an observation's frames gives their median, measure_frame's ``sky_fwhm_px``."""
    measurement = _measure(data, header, wcs, stars, params, (Calibrate, Place, Seeing), hot_pixels=hot_pixels)
    return measurement.fwhm_px if measurement.rejected is None else math.nan


def observation_fwhm(widths) -> float | None:
    """An observation's FWHM (mosaic px): the median of its frames' widths, the frames that
    measured none (NaN) left out; None if none did. The aperture (``build_lightcurves``) and the
    annulus (``measure_frame(sky_fwhm_px=)``) both follow it."""
    widths = np.asarray(widths, float)
    finite = widths[np.isfinite(widths)]
    return float(np.median(finite)) if finite.size else None


def _measure(data: np.ndarray, header, wcs, stars, params: PhotometryParams | None, stages, *,
             image_id: str | None = None, hot_pixels=None,
             sky_fwhm_px: float | None = None) -> FrameMeasurement:
    """``stages`` run in order on the frame (see :func:`measure_frame`)."""
    params = params or PhotometryParams()
    data = np.asarray(data)
    if data.ndim != 2 or min(data.shape) < 16:
        raise ValueError(f"a frame is a 2-D mosaic, not an array of shape {data.shape}")
    start, exptime = _exposure(header)
    time_utc = start + timedelta(seconds=exptime / 2) if start else None
    picid, ra, dec, mag = _catalog_columns(stars, time_utc)
    n = len(picid)
    measurement = FrameMeasurement(
        image_id=image_id or str(header.get("IMAGEID", "") or ""), time_utc=time_utc, exptime=exptime,
        site=_site(header), picid=picid, ra=ra, dec=dec, mag=mag, x=np.full(n, np.nan), y=np.full(n, np.nan),
        flux_e=np.full((n, 3), np.nan), flux_err_e=np.full((n, 3), np.nan), sky_e=np.full((n, 3), np.nan),
        aperture_pixels=np.full(3, np.nan), annulus_pixels=np.full(3, np.nan), flags=np.zeros((n, 3), np.uint8),
        airmass=_number(header, "AIRMASS"))
    if time_utc is None:
        measurement.rejected = "no usable DATE-OBS in the header"
    if hot_pixels is not None and len(hot_pixels) and (hot_pixels.pixels.min() < 0 or
                                                       hot_pixels.pixels.max() >= data.size):
        raise ValueError(f"a hot-pixel map reaches pixel {hot_pixels.pixels.max()} of a frame of shape {data.shape}")
    work = _Work(data=data, header=header, wcs=wcs, stars=stars, params=params, measurement=measurement,
                 inside=np.zeros(n, bool), hot_pixels=hot_pixels,
                 sky_fwhm_px=None if sky_fwhm_px is None else float(sky_fwhm_px))
    for stage in stages:
        stage().run(work)
    if measurement.rejected is not None:
        measurement.flags |= FLAG_REJECTED
    return measurement


# --- helpers ------------------------------------------------------------------------------

def _box_max(data: np.ndarray, x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
    """The largest raw value in the (2 half + 1)^2 box round each position (0 off the frame)."""
    rows, columns = data.shape
    out = np.zeros(len(x), dtype=data.dtype)
    good = np.isfinite(x) & np.isfinite(y)
    if not good.any():
        return out
    offsets = np.arange(-half, half + 1)
    cx, cy = np.rint(x[good]).astype(int), np.rint(y[good]).astype(int)
    xs = np.clip(cx[:, None] + offsets, 0, columns - 1)
    ys = np.clip(cy[:, None] + offsets, 0, rows - 1)
    out[good] = data[ys[:, :, None], xs[:, None, :]].max(axis=(1, 2))
    return out


def _annulus_values(plane: np.ndarray, column: np.ndarray, row: np.ndarray, ring_x: np.ndarray,
                    ring_y: np.ndarray) -> np.ndarray:
    """(stars, annulus pixels): the plane's pixels at ``ring_x``, ``ring_y`` from each star's
    pixel (``column``, ``row``); those off the plane are its nearest edge pixels (the star
    is flagged FLAG_EDGE)."""
    height, width = plane.shape
    flat = plane.ravel()
    reach_x, reach_y = int(np.abs(ring_x).max()), int(np.abs(ring_y).max())
    whole = (column >= reach_x) & (column < width - reach_x) & (row >= reach_y) & (row < height - reach_y)
    centre = np.where(whole, row * width + column, reach_y * width + reach_x)
    values = flat[centre[:, None] + (ring_y * width + ring_x)[None, :]]
    edge = np.flatnonzero(~whole)
    if len(edge):
        rows = np.clip(row[edge, None] + ring_y, 0, height - 1)
        columns = np.clip(column[edge, None] + ring_x, 0, width - 1)
        values[edge] = flat[rows * width + columns]
    return values


def _annulus_neighbours(m: FrameMeasurement, index: np.ndarray, radius: float, outer: float):
    """(target, x, y, mask radius): each measured star (a row of ``index``) beside the
    position (mosaic px) of each other catalog star whose mask (mosaic px: the aperture
    ``radius`` x (1 + :data:`SKY_MASK_GROWTH_PER_MAG` x (10 - G)), 1 to :data:`SKY_MASK_MAX`
    apertures) reaches its annulus (outer radius ``outer``)."""
    from scipy.spatial import cKDTree

    placed = np.flatnonzero(np.isfinite(m.x) & np.isfinite(m.y))
    empty = (np.zeros(0, np.intp), np.zeros(0), np.zeros(0), np.zeros(0))
    if not len(index) or len(placed) < 2:
        return empty
    mask_radius = radius * np.clip(1 + SKY_MASK_GROWTH_PER_MAG * (10 - np.nan_to_num(m.mag[placed], nan=10.0)),
                                   1, SKY_MASK_MAX)
    tree = cKDTree(np.column_stack([m.x[placed], m.y[placed]]))
    near = tree.query_ball_point(np.column_stack([m.x[index], m.y[index]]), outer + float(mask_radius.max()))
    counts = np.array([len(hits) for hits in near])
    if not counts.sum():
        return empty
    target = np.repeat(np.arange(len(index)), counts)
    hit = np.concatenate([np.asarray(hits, np.intp) for hits in near])
    neighbour = placed[hit]
    reach = np.hypot(m.x[neighbour] - m.x[index[target]], m.y[neighbour] - m.y[index[target]])
    keep = (neighbour != index[target]) & (reach < outer + mask_radius[hit])
    neighbour = neighbour[keep]
    return target[keep], m.x[neighbour], m.y[neighbour], mask_radius[hit][keep]


def _annulus_mask(neighbours, centre_x: np.ndarray, centre_y: np.ndarray, ring_x: np.ndarray, ring_y: np.ndarray,
                  dy: int, dx: int) -> np.ndarray:
    """(stars, annulus pixels) True where a pixel of a Bayer plane (offset ``dy``, ``dx``;
    the annulus's pixels at ``ring_x``, ``ring_y`` from the plane pixel ``centre_x``,
    ``centre_y`` of each star) lies within a neighbour's mask (:func:`_annulus_neighbours`)."""
    masked = np.zeros((len(centre_x), len(ring_x)), bool)
    cells, beyond = _mask_reach(neighbours, centre_x, centre_y, ring_x, ring_y, dy, dx)
    masked.ravel()[cells[beyond < 0]] = True
    return masked


def _annulus_mask_weight(neighbours, centre_x: np.ndarray, centre_y: np.ndarray, ring_x: np.ndarray,
                         ring_y: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(stars, annulus pixels) float32, 1 where no mask reaches: :func:`_annulus_mask` with
    the masks' edges soft. A pixel's weight ramps 0 -> 1 across each mask's radius over
    :data:`ANNULUS_EDGE_SOFT_PX` (as the annulus's own radii do), the lowest of the masks it
    is in. With hard edges a pixel went in or out of a mask whole as the field drifted, and
    with it the light of whatever faint star the catalog lacks lay on the edge: on noise-free
    nights a G 9.64 host among uncatalogued G 10.7-13 stars read its 0.5% transit's depth
    -17.8% and +22.4% off in two realisations, +4.6% and -3.4% with the edges soft."""
    weight = np.ones((len(centre_x), len(ring_x)), np.float32)
    cells, beyond = _mask_reach(neighbours, centre_x, centre_y, ring_x, ring_y, dy, dx)
    ramp = beyond / np.float32(ANNULUS_EDGE_SOFT_PX) + np.float32(0.5)
    covered = ramp < 1
    np.minimum.at(weight.ravel(), cells[covered], np.clip(ramp[covered], 0, 1))
    return weight


def _mask_reach(neighbours, centre_x: np.ndarray, centre_y: np.ndarray, ring_x: np.ndarray, ring_y: np.ndarray,
                dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """(cells, beyond), each (neighbour pairs, annulus pixels): each pair's annulus pixels
    as flat indices of a (stars, annulus pixels) array, and each pixel's distance beyond that
    neighbour's mask radius (plane px; negative inside). No neighbours: both empty."""
    target, x, y, mask_radius = neighbours
    if not len(target):
        return np.zeros((0, len(ring_x)), np.intp), np.zeros((0, len(ring_x)), np.float32)
    # the neighbour's offset from each star's centre pixel, plane pixels
    offset_x = ((x - dx) / 2 - centre_x[target]).astype(np.float32)[:, None]
    offset_y = ((y - dy) / 2 - centre_y[target]).astype(np.float32)[:, None]
    distance = np.sqrt((ring_x.astype(np.float32) - offset_x) ** 2 + (ring_y.astype(np.float32) - offset_y) ** 2)
    cells = target[:, None] * len(ring_x) + np.arange(len(ring_x))
    return cells, distance - mask_radius.astype(np.float32)[:, None] / 2


def _sky_level(values: np.ndarray, masked: np.ndarray, ring_x: np.ndarray, ring_y: np.ndarray, fx: np.ndarray,
               fy: np.ndarray, *, outlier_adu: float, outside: np.ndarray | None = None, taper: bool = False,
               weights: np.ndarray | None = None,
               mask_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's sky level under its star, ADU, and the number of pixels whose mean would be
    as precise (its noise model's annulus term): a plane fitted by least squares to the
    annulus pixels outside ``masked`` (the other catalog stars' light, and for the
    photometry the candidates ``outside`` the annulus's radii from the star itself) and
    within ``outlier_adu`` of the plane, evaluated at the star. ``ring_x``, ``ring_y``: each
    column's offset from the pixel nearest the star, ``fx``, ``fy`` the star's from that
    pixel. ``weights`` (0-1, as ``values``): each pixel's weight in the fit (the photometry's
    annulus: its soft radii); ``mask_weights`` (0-1, as ``values``): the masks' soft edges
    (:func:`_annulus_mask_weight`), dropped with the mask. Fitted again while the window
    changes, up to :data:`SKY_OUTLIER_PASSES` times. A row with under
    :data:`SKY_MIN_UNMASKED` of its pixels unmasked drops its mask. The plane, not a mean: a
    mask leaves the annulus lopsided, and its mean then reads the sky's gradient (the Moon's
    is steep) as if it were under the star.

    The photometry's annulus (``outlier_adu`` :data:`ANNULUS_OUTLIER_ADU`, soft radii,
    ``taper``) is a near-linear estimator: every pixel counts but the catalog stars' masks
    and the far outliers (cosmic rays, hot pixels the observation's map missed: Calibrate
    repairs the mapped ones first). The faint uncatalogued stars' light it takes in is then a
    fixed share of their light, whatever the sky's noise or brightness: it scales with the
    throughput as the star's own light does (build_lightcurves' blend correction takes that
    share out), and it does not depend on where each faint star falls on the pixel grid.
    Measured against the simulator's truth, what came before and why it went:

    - A mean clipped at 2 sigma of the sky's noise (photometry-3) let in more of the faint
      stars' light as the sky brightened: between 80 and 700 ADU (a dark night and the Moon
      nearly full) a G 9.5-10 star's flux fell by 1.4%, 0.7x its noise floor; the median, the
      mode (2.5 median - 1.5 mean) and a 3 or 5 sigma clip did the same or worse.
    - A plain mean with hard radii: a faint star on the annulus's edge went in and out whole
      as the field drifted (quiet G 9-10 stars' lightcurves scattered 1.22x their floor, 90th
      percentile). The soft radii answer that; with hard ones this estimator still jumped
      +-0.3% frame to frame on a crowded G 9.8 star.
    - A window fixed at 150 ADU round the plane (photometry-4 to -7; tapered 75-225 ADU from
      photometry-6). Its bias did not follow the sky's noise, but the faint stars' light below
      it was a fixed number of ADU, not a share of their light, and which of their pixels fell
      below it depended on the pixel phase. Noise-free, a G 9.84 star with uncatalogued G
      10.5-11.6 stars in its annulus (their light 9.6% of its flux in its sky level) drifted
      -1.34% over a night as the throughput fell 9% (its own light's share did not fall with
      it): -0.63% with this estimator (its flux at the frame's own aperture). A G 9.83 host read +0.22% bright where the field's
      drift put it at mid-transit (-0.09% with this estimator), and its transit's depth read
      10% and 19% shallow on the noise-free frames of two realisations (+0.8% and -0.5% with
      this estimator). A window scaled by the frame's true throughput still left the pixel-
      phase bump and -12% on that host.

    ``taper``: the window's edge tapered, not cut. A pixel just inside the window counted
    whole and just outside not at all, and which side it fell on changed with the field's
    sub-pixel drift and jitter, so the level jumped as pixels crossed (with the 150 ADU window,
    0.3% of a G 9 star's flux rms on noise-free frames, and false 2-3 h dips of 3-5 sigma).
    After the hard window converges, the plane is fitted once more with each pixel weighted
    by a ramp in its distance from the plane: 1 up to (1 - :data:`SKY_TAPER_WIDTH`) x
    ``outlier_adu``, 0 from (1 + :data:`SKY_TAPER_WIDTH`) x, linear between, so a pixel
    crossing the edge fades out instead of dropping out. The precision returned is the hard
    window's: the ramp reweights only the few pixels near its edge."""
    keep = ~masked
    inside = np.ones_like(masked) if outside is None else ~outside
    crowded = keep.sum(axis=1) < SKY_MIN_UNMASKED * inside.sum(axis=1)
    keep[crowded] = inside[crowded]
    # each pixel's weight in the fit before the window: 1, or ``weights`` (the annulus's soft edges)
    weight = keep.astype(np.float32) if weights is None else keep * weights.astype(np.float32, copy=False)
    if mask_weights is not None:  # the masks' soft edges, but not where the mask was dropped
        weight *= np.where(crowded[:, None], np.float32(1), mask_weights.astype(np.float32, copy=False))
    basis = np.stack([np.ones(len(ring_x)), ring_x, ring_y]).astype(np.float32)  # (3, pixels): the plane's terms
    products = np.stack([basis[i] * basis[j] for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))])
    values = values.astype(np.float32, copy=False)

    def fit(window, values):
        w = window.astype(np.float32)
        # einsum, not @: a threaded BLAS spends twice the CPU on these short products for no
        # gain in wall time, and the service already measures a frame per core; both operands
        # with the pixels last (as "np,pk" it took 4x as long)
        sums = np.einsum("np,kp->nk", w, products).astype(float)  # (stars, 6): the normal matrix's distinct entries
        normal = sums[:, [0, 1, 2, 1, 3, 4, 2, 4, 5]].reshape(-1, 3, 3)
        normal[:, [0, 1, 2], [0, 1, 2]] += 1e-9  # a row with no pixel left stays solvable
        right = np.einsum("np,kp->nk", w * values, basis).astype(float)
        return normal, right, np.linalg.solve(normal, right[:, :, None])[:, :, 0]

    normal, right, coefficients = fit(weight, values)
    window = keep
    deviation = None  # |values - plane| of the current coefficients (None: refitted since)
    for _ in range(SKY_OUTLIER_PASSES):
        plane = np.einsum("nk,kp->np", coefficients.astype(np.float32), basis)
        deviation = np.abs(values - plane)
        narrowed = keep & (deviation <= outlier_adu)
        again = np.flatnonzero((narrowed != window).any(axis=1))  # rows whose window changed: fitted again
        if not len(again):
            break
        window = narrowed
        normal[again], right[again], coefficients[again] = fit(window[again] * weight[again], values[again])
        deviation = None
    at_star = np.stack([np.ones_like(fx), fx, fy], axis=1)
    # the precision: the hard window's (the taper reweights only the few pixels near its edge)
    variance = np.einsum("ni,nij,nj->n", at_star, np.linalg.inv(normal), at_star)  # in units of one pixel's
    if taper:
        if deviation is None:
            deviation = np.abs(values - np.einsum("nk,kp->np", coefficients.astype(np.float32), basis))
        # only the pixels on the ramp change weight: the normal equations of their rows updated by
        # their change alone (flat indices and one reduceat per array: these arrays are large)
        low, high = np.float32((1 - SKY_TAPER_WIDTH) * outlier_adu), np.float32((1 + SKY_TAPER_WIDTH) * outlier_adu)
        flat = np.flatnonzero((deviation > low) & (deviation < high) & keep)
        if len(flat):
            rows, pixels = np.divmod(flat, values.shape[1])
            tapered = np.clip((high - deviation.ravel()[flat]) / (high - low), 0, 1)
            change = ((tapered - window.ravel()[flat]) * weight.ravel()[flat]).astype(float)
            x, y = ring_x[pixels].astype(float), ring_y[pixels].astype(float)
            cx, cy, cv = change * x, change * y, change * values.ravel()[flat]
            # the normal matrix's distinct entries (1, x, y, xx, xy, yy) and the right side's (v, vx, vy)
            terms = np.stack([change, cx, cy, cx * x, cx * y, cy * y, cv, cv * x, cv * y], axis=1)
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])  # rows come sorted
            sums = np.add.reduceat(terms, starts, axis=0)
            again = rows[starts]
            normal[again] += sums[:, [0, 1, 2, 1, 3, 4, 2, 4, 5]].reshape(-1, 3, 3)
            right[again] += sums[:, 6:]
            coefficients[again] = np.linalg.solve(normal[again], right[again][:, :, None])[:, :, 0]
    level = (coefficients * at_star).sum(axis=1)
    return level, 1 / variance


def _number(header, key: str) -> float:
    try:
        value = float(header.get(key))
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _exposure(header) -> tuple[datetime | None, float]:
    exptime = _number(header, "EXPTIME")
    if not math.isfinite(exptime) or exptime <= 0:
        raise ValueError(f"EXPTIME {header.get('EXPTIME')!r} is not a positive number of seconds")
    text = str(header.get("DATE-OBS", "") or "").strip().replace("Z", "+00:00")
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        return None, exptime
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    return start.astimezone(timezone.utc), exptime


def _site(header) -> tuple[float, float, float] | None:
    """The unit's place from LAT-OBS/LONG-OBS/ELEV-OBS, else from its known site (OBSERVER)."""
    lat, lon, elevation = (_number(header, key) for key in ("LAT-OBS", "LONG-OBS", "ELEV-OBS"))
    if math.isfinite(lat) and math.isfinite(lon):
        return lat, lon, elevation if math.isfinite(elevation) else 0.0
    from panoptes_network.simulator.observatory import site_for

    try:
        site = site_for(str(header.get("OBSERVER", "")))
    except ValueError:
        return None
    return site.latitude, site.longitude, site.elevation


def _scintillation(exptime: float, airmass: float, site) -> float:
    from panoptes_network.simulator.noise import scintillation

    return float(scintillation(exptime, airmass if math.isfinite(airmass) else 1.0, site[2] if site else 0.0))


def picid_of(star_id: int, hip: int = 0) -> str:
    """The stars collection's document id for a catalog star (see stars.py): the Gaia DR3
    source id, or ``HIP n`` for a Hipparcos-only star (the catalog's id 0 with ``hip``, or
    the simulator's ``-n``)."""
    star_id = int(star_id)
    if star_id == 0 and hip:
        return f"HIP {int(hip)}"
    if -10**10 < star_id < 0:
        return f"HIP {-star_id}"
    return str(star_id)


def _year(moment: datetime) -> float:
    return 2000.0 + (moment - datetime(2000, 1, 1, 12, tzinfo=timezone.utc)).total_seconds() / (365.25 * 86400)


def _document_columns(documents, time_utc: datetime | None):
    """Star documents of the ``stars`` collection (``stars.in_footprint``: id and data with
    ra, dec, mag, pmra, pmdec, epoch), moved by their proper motions to the frame's date."""
    def number(value, default=math.nan):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return default
        return value if math.isfinite(value) else default

    picid = np.array([str(doc.id) for doc in documents], dtype=object)
    ra = np.array([number(doc.data.get("ra")) for doc in documents], float)
    dec = np.array([number(doc.data.get("dec")) for doc in documents], float)
    mag = np.array([number(doc.data.get("mag")) for doc in documents], float)
    if time_utc is not None and len(picid):
        pmra = np.array([number(doc.data.get("pmra"), 0.0) for doc in documents], float)
        pmdec = np.array([number(doc.data.get("pmdec"), 0.0) for doc in documents], float)
        years = _year(time_utc) - np.array([number(doc.data.get("epoch"), CATALOG_EPOCH) for doc in documents])
        ra = ra + pmra * years / 3.6e6 / np.maximum(np.cos(np.radians(dec)), 1e-6)
        dec = dec + pmdec * years / 3.6e6
    return picid, ra, dec, mag


def _catalog_columns(stars, time_utc: datetime | None):
    if isinstance(stars, (list, tuple)) and (not stars or hasattr(stars[0], "data")):
        return _document_columns(stars, time_utc)
    names = stars.dtype.names if getattr(getattr(stars, "dtype", None), "names", None) else stars.colnames
    ids = np.asarray(stars["id"]) if "id" in names else np.asarray(stars["picid"])
    hips = np.asarray(stars["hip"]) if "hip" in names else np.zeros(len(ids), int)
    if "picid" in names:
        picid = np.array([str(v) for v in np.asarray(stars["picid"])], dtype=object)
    else:
        picid = np.array([picid_of(i, h) for i, h in zip(ids.tolist(), hips.tolist())], dtype=object)
    ra, dec = np.asarray(stars["ra"], float).copy(), np.asarray(stars["dec"], float).copy()
    if "pmra" in names and "pmdec" in names and time_utc is not None:
        years = _year(time_utc) - CATALOG_EPOCH
        pmra = np.nan_to_num(np.asarray(stars["pmra"], float))
        pmdec = np.nan_to_num(np.asarray(stars["pmdec"], float))
        ra += pmra * years / 3.6e6 / np.maximum(np.cos(np.radians(dec)), 1e-6)
        dec += pmdec * years / 3.6e6
    return picid, ra, dec, np.asarray(stars["mag"], float)
