"""The plate-solve stages, in the order :data:`ORDERED_STAGES` names them.

Each stage is one class whose :meth:`Stage.do_stage` takes the :class:`Frame` and fills
in its part. A frame that cannot be solved is marked ``unsolved`` with the reason
(:meth:`Frame.unsolved`) and the later stages pass it by, as BANZAI's stages pass by a
frame with ``WCSERR`` set. A file that is no frame at all raises :class:`CorruptFrame`.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from panoptes_network import log
from panoptes_network.fits import read_image
from panoptes_network.solve import engines as solving
from panoptes_network.solve.frame import (FLAG_BLENDED, FLAG_EDGE, FLAG_SATURATED, SOLVED, STARS, CorruptFrame, Frame,
                                          pixel_scale_arcsec)
from panoptes_network.solve.sip import fit_tan_sip, match, with_inverse

BIAS_ADU = 2048.0  # the Canon bias the PANOPTES pipelines use
SATURATION_ADU = 11530.0
DETECTION_SIGMA = 10.0  # the catalog goes to G ~ 10: fainter detections cost time and match nothing
MAX_STARS = 2500  # the brightest detections kept; a full frame has a few thousand to G ~ 10
EDGE_SUPERPIXELS = 3
MIN_SIZE_PIXELS = 128  # 0.37 degrees: too few catalog stars to match below this
MIN_STARS = 8  # fewer matched stars than this is no solution
MAX_RMS_PIXELS = 1.0  # a refined solution worse than this is a wrong match, not a solution
GROW_FROM_PIXELS = 600.0  # see Refine: how far round its reference pixel a first solution is trusted at first
MATCH_RADII_PIXELS = (12.0, 2.0)  # the first solution's error, then the refitted one's (see Refine)
CATALOG_EPOCH = 2016.0  # Gaia DR3


class Stage:
    name = "stage"
    runs_on_failed = False

    def run(self, frame: Frame) -> Frame:
        if frame.failed and not self.runs_on_failed:
            return frame
        started = time.perf_counter()
        try:
            self.do_stage(frame)
        finally:
            frame.seconds[self.name] = time.perf_counter() - started
        return frame

    def do_stage(self, frame: Frame) -> None:
        raise NotImplementedError


class Read(Stage):
    """The file's image and header: the first HDU holding a 2-D image (a .fits.fz's
    compressed image, or a plain FITS's primary), read by :func:`panoptes_network.fits.read_image`."""

    name = "read"

    def do_stage(self, frame: Frame) -> None:
        try:
            image = read_image(frame.raw)
        except Exception as error:  # astropy raises many kinds for a damaged file
            raise CorruptFrame(f"not a readable FITS image: {error}") from None
        if image is None:
            raise CorruptFrame("no two-dimensional image in the file")
        frame.header = image[0]
        frame.data = image[1].astype(np.float32)  # native byte order, for sep
        ra, dec = _header_number(frame.header, "RA-MNT"), _header_number(frame.header, "DEC-MNT")
        if ra is not None and dec is not None and -90 <= dec <= 90:
            frame.pointing = (ra % 360.0, dec)
        if min(frame.data.shape) < MIN_SIZE_PIXELS:
            frame.unsolved(f"image {frame.data.shape[1]}x{frame.data.shape[0]} is too small to solve "
                           f"(under {MIN_SIZE_PIXELS} pixels a side)")


class Calibrate(Stage):
    """The frame's hot pixels repaired (its isolated single-pixel spikes, each replaced by its
    same-colour neighbours' median: :mod:`photometry.hotpixels`); bias and a background per
    Bayer channel off; the four channels of each 2x2 cell summed into one super-pixel (a
    star's light, whatever its colour). A real camera has ~9,000 hot pixels per megapixel,
    and sep's smoothing made the bright ones detections: on a sparse strip of Virgo they
    crowded refine's matches from 30 or more down to 13."""

    name = "calibrate"

    def do_stage(self, frame: Frame) -> None:
        import sep

        from panoptes_network.photometry.hotpixels import repair, spikes

        frame.data = repair(frame.data, spikes(frame.data))
        rows, columns = frame.data.shape
        mosaic = frame.data[: rows - rows % 2, : columns - columns % 2] - BIAS_ADU
        image = np.zeros((mosaic.shape[0] // 2, mosaic.shape[1] // 2), np.float32)
        variance = 0.0
        frame.channels = {}
        for dy in (0, 1):
            for dx in (0, 1):
                channel = np.ascontiguousarray(mosaic[dy::2, dx::2])
                background = sep.Background(channel, bw=64, bh=64, fw=3, fh=3)
                background.subfrom(channel)
                image += channel
                frame.channels[(dx, dy)] = channel
                variance += background.globalrms**2
        frame.image = image
        frame.background_rms = math.sqrt(variance)


class Detect(Stage):
    """Stars found with sep on the super-pixels, centroids refined with windowed
    positions, brightest first, in full-resolution pixel coordinates."""

    name = "detect"

    def do_stage(self, frame: Frame) -> None:
        import sep

        image = frame.image
        try:
            objects = sep.extract(image, DETECTION_SIGMA, err=frame.background_rms, minarea=3)
        except Exception as error:  # sep gives up on a frame that is mostly "object" (bright cloud)
            frame.unsolved(f"star detection failed: {error}")
            return
        objects = objects[np.argsort(objects["flux"])[::-1][:MAX_STARS]]
        if len(objects) < MIN_STARS:
            frame.unsolved(f"only {len(objects)} stars detected (clouds, a blank or very short frame?)")
            return
        # Windowed centroids: sigma of about a star's width in super-pixels.
        x, y, flag = sep.winpos(image, objects["x"], objects["y"], np.full(len(objects), 1.0))
        bad = (flag != 0) | ~np.isfinite(x) | ~np.isfinite(y) | (np.hypot(x - objects["x"], y - objects["y"]) > 2)
        x, y = np.where(bad, objects["x"], x), np.where(bad, objects["y"], y)
        stars = np.zeros(len(objects), STARS)
        # Super-pixel (i, j) holds mosaic pixels 2i and 2i+1: its centre is at 2i + 0.5.
        stars["x"], stars["y"] = 2 * x + 0.5, 2 * y + 0.5
        # Each channel sees the star at its own pixels, not at the cell's centre: a red star's
        # light sits on the R pixels, up and left of it. Move each centroid by the flux-weighted
        # offset of its channels (a few hundredths of a pixel, the same way for most stars).
        shift_x, shift_y, total = np.zeros(len(x)), np.zeros(len(x)), np.zeros(len(x))
        for (dx, dy), channel in frame.channels.items():
            flux, _, _ = sep.sum_circle(channel, x, y, 2.5)
            shift_x += (dx - 0.5) * flux
            shift_y += (dy - 0.5) * flux
            total += flux
        usable = total > 0
        stars["x"][usable] += shift_x[usable] / total[usable]
        stars["y"][usable] += shift_y[usable] / total[usable]
        stars["flux"] = objects["flux"]
        stars["snr"] = objects["flux"] / (frame.background_rms * np.sqrt(np.maximum(objects["npix"], 1)))
        rows, columns = image.shape
        flags = np.where(objects["flag"] & sep.OBJ_MERGED, FLAG_BLENDED, 0)
        near_edge = ((objects["xmin"] < EDGE_SUPERPIXELS) | (objects["ymin"] < EDGE_SUPERPIXELS)
                     | (objects["xmax"] >= columns - EDGE_SUPERPIXELS) | (objects["ymax"] >= rows - EDGE_SUPERPIXELS))
        flags |= np.where(near_edge, FLAG_EDGE, 0)
        peak_x, peak_y = 2 * objects["xpeak"], 2 * objects["ypeak"]
        peaks = np.max([frame.data[np.clip(peak_y + dy, 0, frame.data.shape[0] - 1),
                                   np.clip(peak_x + dx, 0, frame.data.shape[1] - 1)]
                        for dy in (-1, 0, 1, 2) for dx in (-1, 0, 1, 2)], axis=0)
        flags |= np.where(peaks >= SATURATION_ADU * 0.98, FLAG_SATURATED, 0)
        stars["flags"] = flags
        frame.stars = stars


class Solve(Stage):
    """A first solution from the engines, tried in turn (see engines.engines_for)."""

    name = "solve"

    def __init__(self, pixel_scale_arcsec: float = solving.PIXEL_SCALE_ARCSEC, cache_dir: Path | None = None):
        self.pixel_scale_arcsec = pixel_scale_arcsec
        self.cache_dir = cache_dir

    def do_stage(self, frame: Frame) -> None:
        reasons = []
        for engine in solving.engines_for(frame, self.pixel_scale_arcsec, self.cache_dir):
            try:
                solution = engine.solve(frame, self.pixel_scale_arcsec)
            except solving.EngineUnavailable as error:
                reasons.append(f"{engine.name}: {error}")
                continue
            if solution is not None:
                frame.engine_solution = solution
                return
            reasons.append(f"{engine.name}: no solution from {len(frame.stars)} detected stars in a "
                           f"{frame.shape[1] * self.pixel_scale_arcsec / 3600:.2g} degree field")
        frame.unsolved("; ".join(reasons))


class Refine(Stage):
    """A TAN-SIP solution fitted to every catalog star matched, so it holds to the corners.

    Catalog stars in the first solution's footprint (Gaia DR3, moved to the frame's date
    by their proper motions) are matched to the detections ever more closely, and the
    WCS refitted each time, outliers (over 3 sigma) left out. If that finds no solution,
    the first solution is grown from its reference pixel to the whole frame
    (:func:`_grown`) and refined again.
    """

    name = "refine"

    def do_stage(self, frame: Frame) -> None:
        from panoptes_network.catalog import stars_in_footprint

        wcs = frame.engine_solution.wcs
        catalog = stars_in_footprint(wcs=wcs, shape=frame.shape)
        if len(catalog) < MIN_STARS:
            frame.unsolved(f"only {len(catalog)} catalog stars in the solved footprint")
            return
        ra, dec = at_epoch(catalog, _epoch(frame.header))
        # Every detection, saturated and blended ones too: the clipping drops the bad centroids.
        refined = _refined(frame.stars, ra, dec, wcs, frame.shape)
        if isinstance(refined, str):
            # The first solution may hold only near the stars the engine matched: astrometry.net's
            # quad at one end of a long strip, its rotation a little off, so 100 px off at the
            # other end, where the nearest catalog star is as likely a wrong one. Grow it from
            # there, and refine that.
            grown = _grown(frame.stars, ra, dec, wcs, frame.shape)
            refined = refined if grown is None else _refined(frame.stars, ra, dec, grown, frame.shape)
        if isinstance(refined, str):
            frame.unsolved(refined)
            return
        frame.wcs, frame.matched, frame.rms_arcsec = refined
        frame.status = SOLVED


def _refined(detections, ra, dec, wcs, shape) -> tuple | str:
    """``(wcs, matched, rms_arcsec)`` fitted to the catalog stars matched ever more closely
    (:data:`MATCH_RADII_PIXELS`), or why there is no solution."""
    for radius in MATCH_RADII_PIXELS:
        predicted_x, predicted_y = wcs.all_world2pix(ra, dec, 0, quiet=True)
        detected, matched = match(detections["x"], detections["y"], predicted_x, predicted_y, radius)
        if len(detected) < MIN_STARS:
            return f"only {len(detected)} catalog stars matched the detections"
        wcs, keep = _fit_clipped(detections["x"][detected], detections["y"][detected], ra[matched], dec[matched],
                                 shape)
        detected, matched = detected[keep], matched[keep]
    residual = _residual_arcsec(wcs, detections["x"][detected], detections["y"][detected], ra[matched], dec[matched])
    rms = float(np.sqrt(np.mean(residual**2)))
    if rms > MAX_RMS_PIXELS * pixel_scale_arcsec(wcs):
        return f"refined solution too poor: {rms:.1f} arcsec rms over {len(detected)} stars"
    return wcs, len(detected), rms


def _grown(detections, ra, dec, wcs, shape):
    """The first solution grown from its reference pixel (where an engine puts the stars it
    matched) to the whole frame: a plain TAN solution fitted to the stars matched within
    :data:`GROW_FROM_PIXELS` of it, then within twice that, and so on; None if too few
    match on the way."""
    rows, columns = shape
    centre_x, centre_y = np.clip(wcs.wcs.crpix[0] - 1, 0, columns - 1), np.clip(wcs.wcs.crpix[1] - 1, 0, rows - 1)
    reach = max(np.hypot(x - centre_x, y - centre_y) for x in (0, columns - 1) for y in (0, rows - 1))
    distance = np.hypot(detections["x"] - centre_x, detections["y"] - centre_y)
    within = GROW_FROM_PIXELS
    while True:
        near = np.flatnonzero(distance <= within)
        predicted_x, predicted_y = wcs.all_world2pix(ra, dec, 0, quiet=True)
        detected, matched = match(detections["x"][near], detections["y"][near], predicted_x, predicted_y,
                                  MATCH_RADII_PIXELS[0])
        if len(detected) < MIN_STARS:
            return None
        detected = near[detected]
        # Plain TAN while growing: SIP terms fitted to one part of the frame would not hold beyond it.
        wcs, _ = _fit_clipped(detections["x"][detected], detections["y"][detected], ra[matched], dec[matched],
                              shape, max_degree=1)
        if within >= reach:
            return wcs
        within *= 2


def _fit_clipped(x, y, ra, dec, shape, passes: int = 3, max_degree: int = 3):
    keep = np.ones(len(x), bool)
    for _ in range(passes):
        count = keep.sum()
        degree = min(3 if count >= 60 else 2 if count >= 20 else 1, max_degree)
        # Residuals need the forward polynomials only; the inverse is fitted once, at the end.
        wcs = fit_tan_sip(x[keep], y[keep], ra[keep], dec[keep], shape, degree=degree, inverse=False)
        residual = _residual_arcsec(wcs, x, y, ra, dec)
        limit = 3.0 * max(np.sqrt(np.mean(residual[keep] ** 2)), 0.05)
        new_keep = residual <= limit
        if new_keep.sum() < MIN_STARS or (new_keep == keep).all():
            break
        keep = new_keep
    return with_inverse(wcs, shape), keep


def _residual_arcsec(wcs, x, y, ra, dec) -> np.ndarray:
    from panoptes_network.sky import separation

    fitted_ra, fitted_dec = wcs.all_pix2world(x, y, 0)
    return separation(fitted_ra, fitted_dec, ra, dec) * 3600.0


def at_epoch(catalog: np.ndarray, epoch: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Catalog positions moved by their proper motion (mas/yr, pmra with cos dec) to ``epoch``."""
    ra, dec = catalog["ra"].astype(float), catalog["dec"].astype(float)
    if epoch is None:
        return ra, dec
    years = epoch - CATALOG_EPOCH
    cos_dec = np.maximum(np.cos(np.radians(dec)), 1e-6)
    return ra + catalog["pmra"] * years / 3.6e6 / cos_dec, dec + catalog["pmdec"] * years / 3.6e6


def _epoch(header: fits.Header) -> float | None:
    value = header.get("DATE-OBS")
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.year + (moment.timetuple().tm_yday - 1) / 365.25


def _header_number(header: fits.Header, key: str) -> float | None:
    value = header.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    try:
        return float(str(value).split()[0])
    except (ValueError, IndexError):
        return None


# The stages, in order, by name: adding or moving one is one class and one line.
STAGES = {stage.name: stage for stage in (Read, Calibrate, Detect, Solve, Refine)}
ORDERED_STAGES = ("read", "calibrate", "detect", "solve", "refine")


def solve_bytes(raw: bytes, name: str = "", *, cache_dir: Path | None = None,
                pixel_scale_arcsec: float = solving.PIXEL_SCALE_ARCSEC) -> Frame:
    """Run the stages over one file; :class:`CorruptFrame` if it is no image."""
    frame = Frame(raw=raw, name=name)
    for stage_name in ORDERED_STAGES:
        stage_class = STAGES[stage_name]
        stage = stage_class(pixel_scale_arcsec, cache_dir) if stage_class is Solve else stage_class()
        stage.run(frame)
    if frame.failed:
        log.info(f"plate-solve: {name}: unsolved: {frame.reason}")
    return frame
