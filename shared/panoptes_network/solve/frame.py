"""The one object that flows through the plate-solve stages (BANZAI's model).

A stage reads and fills a :class:`Frame`; a stage that cannot go on marks it
``unsolved`` with a reason, and the stages after it leave it alone. Pixel coordinates
are 0-based, on the full-resolution mosaic (x along a row, y down the rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

SOLVED, UNSOLVED = "solved", "unsolved"

# The detection table (numpy structured array), one row a star, brightest first.
STARS = np.dtype([
    ("x", "f8"),  # column, 0-based, full-resolution pixels
    ("y", "f8"),  # row, 0-based, full-resolution pixels
    ("flux", "f8"),  # ADU above background, summed over the 2x2 super-pixels in the aperture
    ("snr", "f4"),  # flux over its noise
    ("flags", "u1"),  # bit flags, see below
])
FLAG_SATURATED = 1  # a mosaic pixel of the star reached the saturation level
FLAG_BLENDED = 2  # sep deblended it from a neighbour
FLAG_EDGE = 4  # its aperture touches the frame's edge


class CorruptFrame(ValueError):
    """The file is not a frame that could ever be solved (dead letter, not ``unsolved``)."""


@dataclass
class EngineSolution:
    """What an engine found: a first WCS and the stars it matched."""

    engine: str
    wcs: WCS
    matched: int
    seconds: float


@dataclass
class Frame:
    raw: bytes  # the file as stored; never rewritten
    name: str = ""  # for log lines: the bucket path
    header: fits.Header | None = None
    data: np.ndarray | None = None  # the RGGB mosaic, native byte order
    image: np.ndarray | None = None  # calibrated 2x2 super-pixels (bias and background removed), float32
    channels: dict | None = None  # the calibrated Bayer channels by their (dx, dy) place in a 2x2 cell
    background_rms: float | None = None  # per super-pixel, ADU
    stars: np.ndarray | None = None  # STARS
    pointing: tuple[float, float] | None = None  # the mount's RA-MNT/DEC-MNT, a hint only
    engine_solution: EngineSolution | None = None
    wcs: WCS | None = None  # the refined TAN-SIP solution
    matched: int = 0  # stars the refined solution was fitted to
    rms_arcsec: float | None = None  # their residual
    status: str | None = None  # SOLVED or UNSOLVED once decided
    reason: str | None = None  # why UNSOLVED
    seconds: dict[str, float] = field(default_factory=dict)  # per stage

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)

    @property
    def failed(self) -> bool:
        return self.status == UNSOLVED

    def unsolved(self, reason: str) -> None:
        self.status, self.reason = UNSOLVED, reason

    def centre(self) -> tuple[float, float]:
        rows, columns = self.shape
        ra, dec = self.wcs.all_pix2world([[(columns - 1) / 2, (rows - 1) / 2]], 0)[0]
        return float(ra) % 360.0, float(dec)

    def pixel_scale_arcsec(self) -> float:
        return pixel_scale_arcsec(self.wcs)

    def rotation_deg(self) -> float:
        """Position angle of the frame's +y axis (rows increasing), degrees east of north."""
        cd = self.wcs.pixel_scale_matrix
        return float(np.degrees(np.arctan2(cd[0, 1], cd[1, 1])) % 360.0)

    def wcs_header(self) -> fits.Header:
        header = self.wcs.to_header(relax=True)
        header["IMAGEW"], header["IMAGEH"] = self.shape[1], self.shape[0]
        return header

    def summary(self) -> dict[str, Any]:
        """The ``solve`` map stored on the image document."""
        if self.status != SOLVED:
            return {"status": self.status, "reason": self.reason, "seconds": round(sum(self.seconds.values()), 3)}
        return {
            "engine": self.engine_solution.engine,
            "matched_stars": int(self.matched),
            "rms_arcsec": round(float(self.rms_arcsec), 3),
            "pixel_scale_arcsec": round(self.pixel_scale_arcsec(), 4),
            "rotation_deg": round(self.rotation_deg(), 3),
            "seconds": round(sum(self.seconds.values()), 3),
            "detected_stars": int(len(self.stars)),
        }


def pixel_scale_arcsec(wcs) -> float:
    """A WCS's mean pixel scale, arcsec (the square root of its pixel area)."""
    return float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600.0)
