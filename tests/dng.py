"""Real DNG files for the tests and the benchmark, written with tifffile.

No raw camera file ships with the project, so the tests make their own: an
uncompressed DNG 1.4 holding an RGGB Bayer mosaic of 12-bit values (in 16-bit
samples), with the tags LibRaw and exifread read (make, model, serial number,
exposure, ISO, capture time, black and white levels, as-shot neutral).

The colour matrix maps the camera's channels straight onto linear sRGB, so LibRaw's
output plane r holds exactly the red photosites, g the green and b the blue:
:func:`expected_level` is what a lit photosite becomes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import tifffile

FULL_HEIGHT, FULL_WIDTH = 3476, 5208  # the PANOPTES Canon frames
BLACK_LEVEL, WHITE_LEVEL = 256, 4095  # 12-bit
LIT_LEVEL = 3000

# LibRaw's xyz_rgb (linear sRGB, D65 -> XYZ); the DNG ColorMatrix1 is XYZ -> camera, so
# its inverse makes the camera's channels the sRGB ones.
XYZ_FROM_SRGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])

# Where each colour's photosites are in an RGGB mosaic: (row, column) of the 2x2 block.
PHOTOSITES = {"r": [(0, 0)], "g": [(0, 1), (1, 0)], "b": [(1, 1)]}


@dataclass(frozen=True)
class Camera:
    make: str = "Canon"
    model: str = "Canon EOS 100D"
    serial: str = "012070048413"
    exposure: tuple[int, int] = (120, 1)  # seconds, as a TIFF rational
    iso: int = 100
    capture_time: str = "2018:02:16 11:24:30"  # EXIF form, the camera clock (UTC)
    offset_time: str | None = None  # EXIF OffsetTimeOriginal, e.g. "+02:00"; None: not recorded
    as_shot_neutral: tuple[float, float, float] = (0.5, 1.0, 0.625)  # -> camera WB 2, 1, 1.6


def _rationals(values, denominator: int = 10000) -> tuple[int, ...]:
    pairs = []
    for value in values:
        pairs += [int(round(value * denominator)), denominator]
    return tuple(pairs)


def mosaic(height: int, width: int, lit: str | list[str] = "r", level: int = LIT_LEVEL) -> np.ndarray:
    """An RGGB mosaic at the black level, with the photosites of the ``lit`` colours at ``level``."""
    if height % 2 or width % 2:
        raise ValueError("a Bayer mosaic has an even number of rows and columns")
    frame = np.full((height, width), BLACK_LEVEL, dtype=np.uint16)
    for colour in [lit] if isinstance(lit, str) else lit:
        for row, column in PHOTOSITES[colour]:
            frame[row::2, column::2] = level
    return frame


def dng_bytes(frame: np.ndarray, camera: Camera = Camera()) -> bytes:
    """A DNG file holding ``frame`` (an RGGB mosaic of 12-bit values) as its raw image."""
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, camera.model, True),  # UniqueCameraModel
        (271, "s", 0, camera.make, True),
        (272, "s", 0, camera.model, True),
        (50735, "s", 0, camera.serial, True),  # CameraSerialNumber
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
        (50714, "I", 1, (BLACK_LEVEL,), True),
        (50717, "I", 1, (WHITE_LEVEL,), True),
        (50721, 10, 9, _rationals(np.linalg.inv(XYZ_FROM_SRGB).ravel()), True),  # ColorMatrix1 (SRATIONAL)
        (50778, "H", 1, (21,), True),  # CalibrationIlluminant1: D65
        (50728, 5, 3, _rationals(camera.as_shot_neutral), True),  # AsShotNeutral (RATIONAL)
        # TIFF/EP puts these in IFD0, where LibRaw reads the exposure and exifread all three.
        (33434, 5, 1, camera.exposure, True),  # ExposureTime
        (34855, "H", 1, (camera.iso,), True),  # ISOSpeedRatings
        (36867, "s", 0, camera.capture_time, True),  # DateTimeOriginal
        (306, "s", 0, camera.capture_time, True),  # DateTime
    ]
    if camera.offset_time is not None:
        tags.append((36881, "s", 0, camera.offset_time, True))  # OffsetTimeOriginal
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, frame, photometric="CFA", subfiletype=0, extratags=tags, metadata=None,
                     software="panoptes-network tests")
    return buffer.getvalue()


def lit_dng(height: int = 64, width: int = 96, lit: str | list[str] = "r", camera: Camera = Camera()) -> bytes:
    return dng_bytes(mosaic(height, width, lit), camera)


def expected_level(level: int = LIT_LEVEL, output_bps: int = 16) -> float:
    """What LibRaw makes of a photosite at ``level`` with the network's options (no auto-bright,
    gamma 1): black subtracted, scaled to the output range. LibRaw's daylight multipliers,
    derived from the rounded colour matrix, move it by a few parts in 10^5."""
    return (level - BLACK_LEVEL) * (2**output_bps - 1) / (WHITE_LEVEL - BLACK_LEVEL)


def full_size_dng(seed: int = 0) -> bytes:
    """A full PANOPTES frame: 5208x3476 12-bit noise around a sky level, for the benchmark."""
    rng = np.random.default_rng(seed)
    frame = rng.normal(BLACK_LEVEL + 800, 60, size=(FULL_HEIGHT, FULL_WIDTH))
    return dng_bytes(np.clip(frame, 0, WHITE_LEVEL).astype(np.uint16))
