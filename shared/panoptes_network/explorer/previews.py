"""PNG previews of frames: made from the FITS pixels once, then served from a bucket.

A preview is ``previews/<bucket path>.png`` in the temp bucket (``PREVIEW_BUCKET`` to
use another), stamped with the generation of the frame it was made from; a re-uploaded
frame gets a new one. Making one reads and decompresses the frame once; requests for
the same frame that arrive meanwhile in this process wait for that one instead of
decompressing it again. The page loads the image on its own, so it never waits for this.

The picture: 2x2 Bayer cells averaged to one grey pixel (the raw RGGB mosaic would show
as a checkerboard), binned down to at most :data:`MAX_SIZE` pixels a side, z-scale limits
and an asinh stretch (astropy.visualization), 8-bit PNG (Pillow).
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass

import numpy as np

from panoptes_network import runtime
from panoptes_network.config import Settings
from panoptes_network.ports.bucket import ObjectNotFound

PREFIX = "previews/"
MAX_SIZE = 800
CONTENT_TYPE = "image/png"

# One frame's preview is made once even if many ask at once. A fixed set of locks, a
# frame's chosen by its name, rather than one per frame: those would pile up for as long
# as the service runs.
_LOCKS = tuple(threading.Lock() for _ in range(64))


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


def _lock_for(name: str) -> threading.Lock:
    return _LOCKS[hash(name) % len(_LOCKS)]


def image_pixels(fits_bytes: bytes) -> np.ndarray:
    """The first 2-D image in a FITS or tile-compressed FITS file, as float."""
    from astropy.io import fits as astropy_fits

    try:
        with astropy_fits.open(io.BytesIO(fits_bytes), memmap=False) as hdus:
            for hdu in hdus:
                if hdu.is_image and hdu.data is not None and hdu.data.ndim >= 2:
                    data = np.asarray(hdu.data, dtype=np.float32)
                    return data.reshape(data.shape[-2:]) if data.ndim > 2 else data
    except (OSError, ValueError, TypeError) as error:
        raise PreviewError(f"not a readable FITS image: {error}") from None
    raise PreviewError("the file has no 2-D image")


def _bin(data: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = (data.shape[0] // factor) * factor, (data.shape[1] // factor) * factor
    trimmed = data[:rows, :cols]
    return trimmed.reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))


def render_png(data: np.ndarray, max_size: int = MAX_SIZE) -> bytes:
    from astropy.visualization import AsinhStretch, ZScaleInterval
    from PIL import Image

    if min(data.shape) >= 2:
        data = _bin(data, 2)  # one Bayer cell -> one pixel
    factor = max(1, -(-max(data.shape) // max_size))
    if factor > 1:
        data = _bin(data, factor)
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
    with _lock_for(name):
        found = cached()  # made by another request while this one waited
        if found is not None:
            return Preview(found, True)
        png = render_png(image_pixels(raw.read(bucket_path)))
        cache.write(name, png, content_type=CONTENT_TYPE,
                    metadata={"source_generation": generation, "source_bucket": settings.raw_bucket})
        return Preview(png, False)
