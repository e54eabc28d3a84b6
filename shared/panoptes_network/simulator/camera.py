"""The camera a PANOPTES unit carries, as numbers: detector, lens, and where a star lands.

A Canon EOS 100D class DSLR behind an 85 mm f/1.4 lens. The detector figures are the
ones the PANOPTES pipelines used (issue 12). The optics are a model, not a measurement:

- **Projection:** gnomonic (TAN) with a radial distortion ``r' = r (1 + k r^2)`` about
  the sensor centre, written as SIP terms (``A_3_0 = A_1_2 = B_2_1 = B_0_3 = k``), so
  astropy's ``all_pix2world`` and ``all_world2pix`` carry it. With the default ``k`` a
  corner (3,131 px from the centre) moves by about 3 px.
- **PSF:** an elliptical Gaussian core, round at the centre (FWHM
  :data:`PSF_FWHM_CENTRE` px, as ``sep`` measures on the real ``unsolved.fits``),
  widening toward the corners and elongated along the radius (the sagittal blur of a
  fast short lens), plus a faint round halo (:data:`PSF_HALO_FRACTION` of the light,
  :data:`PSF_HALO_SCALE` times wider) that gives bright stars the glow real ones have.
  Faint field stars get the core alone, round, at the local mean width.

Pixel coordinates are 0-based (astropy's ``*_pix2world(..., 0)``), x along a row, y down
the rows; a cut-out is the centred crop of the full sensor, so its optics are those of
the sensor's middle.
"""

from __future__ import annotations

import numpy as np

FULL_WIDTH, FULL_HEIGHT = 5208, 3476
PIXEL_SCALE_ARCSEC = 10.3
PIXEL_SCALE_DEG = PIXEL_SCALE_ARCSEC / 3600

BIAS_ADU = 2048
GAIN = 1.5  # electrons per ADU
READ_NOISE = 10.5  # electrons, rms
SATURATION_ADU = 11_530  # every pixel is clipped here (raw values never exceed it)

FOCAL_LENGTH_MM = 85.0
F_NUMBER = 1.4
APERTURE_DIAMETER_M = FOCAL_LENGTH_MM / F_NUMBER / 1000  # 60.7 mm, the entrance pupil

DISTORTION_K = -1.0e-10  # per px^2: barrel, 3.1 px at a corner of the full frame
PSF_FWHM_CENTRE = 4.2  # px
PSF_WIDENING = 0.45  # the major axis's FWHM grows by this fraction at a corner
PSF_ELONGATION = 0.25  # the major axis's excess over the minor at a corner, as a fraction
PSF_HALO_FRACTION = 0.12
PSF_HALO_SCALE = 2.5  # halo sigma / core major sigma

SIGMA_PER_FWHM = 1 / (2 * np.sqrt(2 * np.log(2)))

# Bayer RGGB: the colour of pixel (row, column) is CHANNEL_OF[row % 2, column % 2].
R, G, B = 0, 1, 2
CHANNEL_OF = np.array([[R, G], [G, B]])
CHANNEL_NAMES = ("r", "g", "b")


def channel_map(height: int, width: int) -> np.ndarray:
    """The channel (0 r, 1 g, 2 b) of every pixel of an RGGB mosaic."""
    return np.tile(CHANNEL_OF, ((height + 1) // 2, (width + 1) // 2))[:height, :width]


def corner_radius() -> float:
    """Distance from the full sensor's centre to a corner, px: the PSF and distortion scale."""
    return float(np.hypot((FULL_WIDTH - 1) / 2, (FULL_HEIGHT - 1) / 2))


def truth_wcs(ra: float, dec: float, rotation_deg: float, width: int, height: int,
              distortion_k: float = DISTORTION_K, shift_px: tuple[float, float] = (0.0, 0.0)):
    """The TAN-SIP WCS of a frame whose optical axis (the centre of the full sensor, which
    is the centre of every centred cut-out) points at ``ra``, ``dec``.

    At ``rotation_deg`` 0 north is up (+y) and east is left (-x), the sky's parity, as in
    the real solved frame; a camera turned on its mount turns the CD matrix by that angle. ``shift_px`` moves the whole field on the sensor (tracking drift): a star at
    pixel ``p`` lands at ``p + shift``.
    """
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = [ra % 360, dec]
    # FITS CRPIX is 1-based; the 0-based centre is (n - 1) / 2.
    wcs.wcs.crpix = [(width - 1) / 2 + 1 + shift_px[0], (height - 1) / 2 + 1 + shift_px[1]]
    theta = np.radians(rotation_deg)
    scale = PIXEL_SCALE_DEG
    wcs.wcs.cd = scale * np.array([[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = distortion_k  # u (u^2 + v^2) k
    b[2, 1] = b[0, 3] = distortion_k  # v (u^2 + v^2) k
    from astropy.wcs import Sip

    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.pixel_shape = (width, height)
    return wcs


def psf_shape(x: np.ndarray, y: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per star at 0-based (x, y) in a ``width`` x ``height`` frame: the PSF's sigma along
    the radius from the optical axis, across it, and the radius's angle (radians)."""
    dx = np.asarray(x, float) - (width - 1) / 2
    dy = np.asarray(y, float) - (height - 1) / 2
    rho2 = (dx**2 + dy**2) / corner_radius() ** 2  # 0 at the centre, 1 at a full-frame corner
    sigma0 = PSF_FWHM_CENTRE * SIGMA_PER_FWHM
    minor = sigma0 * (1 + (PSF_WIDENING - PSF_ELONGATION) * rho2)
    major = sigma0 * (1 + PSF_WIDENING * rho2)
    return major, minor, np.arctan2(dy, dx)


def world_to_pixel(wcs, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel positions of (ra, dec) through a :func:`truth_wcs`: astropy's
    ``all_world2pix`` for a purely radial SIP, solved directly (a cubic, by Newton) rather
    than by its general iteration, which is several times slower for 10^5 stars."""
    q = np.array(wcs.wcs_world2pix(np.asarray(ra, float), np.asarray(dec, float), 0))  # TAN only, no SIP
    origin = (np.array(wcs.wcs.crpix) - 1)[:, None]
    distorted = q - origin
    k = float(wcs.sip.a[3, 0]) if wcs.sip is not None else 0.0
    r_distorted = np.hypot(*distorted)
    r = r_distorted.copy()
    for _ in range(6):  # r (1 + k r^2) = r_distorted; |k r^2| < 1e-3, so this converges at once
        r -= (r + k * r**3 - r_distorted) / (1 + 3 * k * r**2)
    scale = np.divide(r, r_distorted, out=np.ones_like(r), where=r_distorted > 0)
    pixel = origin + distorted * scale
    return pixel[0], pixel[1]
