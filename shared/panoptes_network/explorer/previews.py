"""PNG previews of frames: made from the FITS pixels once, then served from a bucket.

A preview is ``previews/<bucket path>.png`` in the temp bucket (``PREVIEW_BUCKET`` to
use another), stamped with the generation of the frame it was made from; a re-uploaded
frame gets a new one. Requests for the same frame that arrive while it is being made
in this process wait for that one instead of making it again. The page loads the image
on its own, so it never waits for this, and asks again after a 503's Retry-After.

The picture: 2x2 Bayer cells averaged to one grey pixel (the raw RGGB mosaic would show
as a checkerboard), binned down to at most :data:`MAX_SIZE` pixels a side, z-scale limits
and an asinh stretch (astropy.visualization), 8-bit PNG (Pillow).

Memory is bounded, whatever the load. The frame is read from its file (the local store's
own; downloaded once from Cloud Storage) a band of rows at a time, each tile decompressed
once, and every band binned as it is read: a full-size frame (5208x3476) never exists as
a whole array, only its 800-pixel result. At most ``PREVIEW_CONCURRENCY`` (default 2)
previews are made at once in a process, by as many threads of its own; a request waits
up to ``PREVIEW_WAIT_SECONDS`` (default 30) for its preview, then gets :class:`PreviewBusy`
(HTTP 503 with Retry-After) while its preview is still made, for the retry to find.
"""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from panoptes_network import runtime
from panoptes_network.config import Settings
from panoptes_network.ports.bucket import ObjectNotFound

PREFIX = "previews/"
MAX_SIZE = 800
CONTENT_TYPE = "image/png"
BAND_PIXELS = 1_500_000  # about one band of rows read and binned at a time (6 MB as float32)
RETRY_AFTER_SECONDS = 5

MAX_QUEUED = 200  # previews asked for and not yet made, beyond which a request is refused at once


def wait_seconds() -> float:
    return float(os.environ.get("PREVIEW_WAIT_SECONDS") or 30)


class _Makers:
    """At most ``PREVIEW_CONCURRENCY`` previews made at once, by that many dedicated threads.

    Dedicated threads, not the request threads: the C allocator keeps an arena per thread
    that has allocated, and each arena keeps the high-water mark of the bands it held, so
    fifty request threads each making a preview in turn would keep fifty arenas' worth of
    memory. A frame asked for while its preview is being made waits for that one (the
    in-flight table holds only what is queued or being made, never every frame seen).
    A request that gives up waiting leaves its preview to be made and cached for its retry.
    """

    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="preview")
        self.in_flight: dict[str, Future] = {}
        self.lock = threading.RLock()  # a future done already runs its callback (_forget) at once, here

    def submit(self, name: str, make) -> Future:
        with self.lock:
            future = self.in_flight.get(name)
            if future is None:
                if len(self.in_flight) >= MAX_QUEUED:
                    raise PreviewBusy()
                future = self.in_flight[name] = self.pool.submit(make)
                future.add_done_callback(lambda _, name=name: self._forget(name))
            return future

    def _forget(self, name: str) -> None:
        with self.lock:
            self.in_flight.pop(name, None)


_makers = _Makers(int(os.environ.get("PREVIEW_CONCURRENCY") or 2))


class PreviewBusy(Exception):
    """Every slot to make a preview stayed taken while this request waited; ask again later."""

    def __init__(self, retry_after: int = RETRY_AFTER_SECONDS):
        super().__init__(f"previews are being made for other requests; try again in {retry_after} s")
        self.retry_after = retry_after


class PreviewError(ValueError):
    """The frame cannot be shown (no image data, not FITS)."""


@dataclass
class Preview:
    png: bytes
    cached: bool  # True if served from the bucket, False if made by this call


def preview_bucket_name(settings: Settings) -> str:
    return os.environ.get("PREVIEW_BUCKET") or settings.temp_bucket


def preview_name(bucket_path: str) -> str:
    return PREFIX + bucket_path + ".png"


def binned_pixels(fits_file, max_size: int = MAX_SIZE) -> np.ndarray:
    """The first 2-D image of a FITS or tile-compressed FITS file (a path or a file object),
    its 2x2 Bayer cells averaged and binned to at most ``max_size`` pixels a side, as float.

    Read a band of rows at a time through astropy's ``section`` (which decompresses only
    the tiles a band covers): memory holds one band and the small result, never the frame.
    """
    from astropy.io import fits as astropy_fits

    try:
        with astropy_fits.open(fits_file, memmap=False, lazy_load_hdus=True) as hdus:
            for hdu in hdus:
                shape = hdu.shape if hdu.is_image else ()
                if len(shape) >= 2 and all(shape):
                    return _binned_by_bands(hdu.section, tuple(shape), max_size)
    except (OSError, ValueError, TypeError, IndexError) as error:
        raise PreviewError(f"not a readable FITS image: {error}") from None
    raise PreviewError("the file has no 2-D image")


def _binned_by_bands(section, shape: tuple[int, ...], max_size: int) -> np.ndarray:
    rows, columns = shape[-2:]
    leading = (0,) * (len(shape) - 2)  # a cube: its first plane
    bayer = 2 if min(rows, columns) >= 2 else 1
    factor = bayer * max(1, -(-max(rows // bayer, columns // bayer) // max_size))
    out_rows, out_columns = rows // factor, columns // factor
    result = np.empty((out_rows, out_columns), dtype=np.float32)
    step = max(1, BAND_PIXELS // max(1, columns * factor)) * factor  # whole output rows per band
    for start in range(0, out_rows * factor, step):
        stop = min(start + step, out_rows * factor)
        band = np.asarray(section[leading + (slice(start, stop), slice(0, out_columns * factor))],
                          dtype=np.float32)
        result[start // factor: stop // factor] = _bin(band, factor)
    return result


def _bin(data: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = (data.shape[0] // factor) * factor, (data.shape[1] // factor) * factor
    trimmed = data[:rows, :cols]
    return trimmed.reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))


def render_png(data: np.ndarray) -> bytes:
    """Binned pixels (:func:`binned_pixels`) stretched to an 8-bit grey PNG."""
    from astropy.visualization import AsinhStretch, ZScaleInterval
    from PIL import Image

    finite = np.isfinite(data)
    if not finite.any():
        raise PreviewError("the image has no finite pixels")
    data = np.where(finite, data, np.nanmedian(data[finite]))
    low, high = ZScaleInterval().get_limits(data)
    scaled = np.clip((data - low) / (high - low), 0, 1) if high > low else np.zeros_like(data)
    scaled = np.nan_to_num(AsinhStretch(0.1)(scaled, clip=True), nan=0.0)
    # FITS rows run bottom to top; PNG rows top to bottom.
    pixels = (np.flipud(scaled) * 255).round().astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG", optimize=True)
    return out.getvalue()


def preview(bucket_path: str, settings: Settings) -> Preview:
    """The preview of ``bucket_path`` in the raw bucket; ObjectNotFound if the frame is absent."""
    raw = runtime.bucket(settings.raw_bucket, settings)
    cache = runtime.bucket(preview_bucket_name(settings), settings)
    name = preview_name(bucket_path)
    generation = str(raw.info(bucket_path).generation)

    def cached() -> bytes | None:
        try:
            info = cache.info(name)
            if info.metadata.get("source_generation") == generation:
                return cache.read(name)
        except ObjectNotFound:
            pass
        return None

    found = cached()
    if found is not None:
        return Preview(found, True)

    def make() -> Preview:
        found = cached()  # made meanwhile, by another process or an earlier request
        if found is not None:
            return Preview(found, True)
        with raw.local_file(bucket_path) as file:
            png = render_png(binned_pixels(file))
        cache.write(name, png, content_type=CONTENT_TYPE,
                    metadata={"source_generation": generation, "source_bucket": settings.raw_bucket})
        return Preview(png, False)

    try:
        return _makers.submit(name, make).result(timeout=wait_seconds())
    except FutureTimeout:
        raise PreviewBusy() from None


STAMP_SIZE = 64  # pixels a side of a star's postage stamp


def postage_stamp(bucket_path: str, ra: float, dec: float, settings: Settings, size: int = STAMP_SIZE) -> bytes:
    """A PNG of the ``size`` x ``size`` pixels round (ra, dec) on a raw frame, placed by the
    frame's WCS: the plate solution in the processed bucket (``PATH.wcs.fits``) if there is
    one, else the frame's own header. Only the stamp's tiles are read (``section``)."""
    from astropy.io import fits as astropy_fits
    from astropy.wcs import WCS

    from panoptes_network.pipeline.platesolve import wcs_path

    header = None
    try:
        solution = runtime.bucket(settings.processed_bucket, settings).read(wcs_path(bucket_path))
        header = astropy_fits.getheader(io.BytesIO(solution))
    except ObjectNotFound:
        pass
    raw = runtime.bucket(settings.raw_bucket, settings)
    with raw.local_file(bucket_path) as file:
        try:
            with astropy_fits.open(file, memmap=False, lazy_load_hdus=True) as hdus:
                image = next((hdu for hdu in hdus if hdu.is_image and len(hdu.shape or ()) >= 2), None)
                if image is None:
                    raise PreviewError("the frame has no 2-D image")
                wcs = WCS(header if header is not None else image.header, naxis=2)
                if not wcs.has_celestial:
                    raise PreviewError("the frame has no WCS (not plate-solved)")
                x, y = wcs.all_world2pix([[ra, dec]], 0)[0]
                rows, columns = image.shape[-2:]
                if not (np.isfinite(x) and np.isfinite(y) and -0.5 <= x < columns - 0.5 and -0.5 <= y < rows - 0.5):
                    raise PreviewError(f"the star ({ra:.5f}, {dec:.5f}) is not on this frame")
                half = size // 2
                x0, y0 = max(0, int(round(x)) - half), max(0, int(round(y)) - half)
                x1, y1 = min(columns, x0 + size), min(rows, y0 + size)
                pixels = np.asarray(image.section[(0,) * (len(image.shape) - 2) + (slice(y0, y1), slice(x0, x1))],
                                    dtype=np.float32)
        except (OSError, ValueError, TypeError) as error:
            raise PreviewError(f"not a readable FITS image: {error}") from None
    return render_png(pixels)
