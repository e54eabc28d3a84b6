"""The noise the simulator puts in a frame, as formulas anyone can call.

**Per pixel**, with ``lam`` the expected electrons (sky + stars + hot pixel) the
simulator draws::

    electrons = lam + sqrt(lam + READ_NOISE**2) * N(0, 1)         (lam >= POISSON_GAUSSIAN_ABOVE)
    electrons = Poisson(lam) + READ_NOISE * N(0, 1)                (otherwise)
    adu = clip(round(BIAS_ADU + electrons / GAIN), 0, SATURATION_ADU)

The first line is Poisson's mean and variance with a Gaussian's shape (its skewness,
``1/sqrt(lam)``, is under 15% where it is used; an exact Poisson draw for 18 million
pixels costs seconds). Rounding adds ``GAIN**2 / 12`` e-^2. So, unsaturated, a pixel's
variance is :func:`pixel_variance` ``= lam + READ_NOISE**2 + GAIN**2 / 12`` (e-^2).

**Per star**, the flux is multiplied by ``exp(s z - s^2 / 2)``, ``z = N(0, 1)``: one draw
per star per frame, independent between stars (they are far beyond the isoplanatic
angle), the same in r, g and b. It has mean 1 and variance ``exp(s^2) - 1`` (= ``s^2``
to 1 part in 10^5 at these ``s``; the lognormal keeps a star's flux positive at any
airmass), with ``s`` = ``sigma_s`` from Young's (1967) scintillation formula as Dravins
et al. (1998) write it::

    sigma_s = 0.09 * D_cm**(-2/3) * airmass**1.75 * exp(-elevation / 8000 m) / sqrt(2 * exptime)

with ``D`` the entrance pupil, 85 mm / 1.4 = 60.7 mm.

**Per aperture** (:func:`aperture_noise`): a sum of ``n`` pixels around a star holding
``F`` of its electrons over a sky of ``s`` e-/px has variance::

    F                                  photon
    + n s                              sky
    + n (READ_NOISE**2 + GAIN**2/12)   read (and digitisation)
    + (exp(sigma_s**2) - 1) F**2       scintillation (~ (sigma_s F)**2)
    + n**2 / m (s + READ_NOISE**2 + GAIN**2/12)   the background's error, if it is the
                                       mean of m annulus pixels (m=None: known exactly)

For one Bayer channel, count that channel's pixels and its electrons only. Anything else
in a measured scatter (a neighbour's light, flat-field, saturation, the comparison
stars of differential photometry) is not in this model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoptes_network.simulator.camera import APERTURE_DIAMETER_M, GAIN, READ_NOISE

POISSON_GAUSSIAN_ABOVE = 50.0  # expected electrons: Gaussian with Poisson's variance from here up
YOUNG_COEFFICIENT = 0.09
SCALE_HEIGHT_M = 8000.0
DIGITISATION_VARIANCE = GAIN**2 / 12  # e-^2, from rounding to whole ADU


def pixel_variance(expected_electrons):
    """The variance (e-^2) of an unsaturated pixel expecting ``expected_electrons``."""
    return np.asarray(expected_electrons, float) + READ_NOISE**2 + DIGITISATION_VARIANCE


def scintillation(exptime, airmass, elevation_m, diameter_m: float = APERTURE_DIAMETER_M):
    """Young's fractional scintillation noise (rms) for one exposure."""
    diameter_cm = diameter_m * 100
    return (YOUNG_COEFFICIENT * diameter_cm ** (-2 / 3) * np.asarray(airmass, float) ** 1.75
            * np.exp(-np.asarray(elevation_m, float) / SCALE_HEIGHT_M) / np.sqrt(2 * np.asarray(exptime, float)))


def scintillation_factors(sigma, z):
    """The flux factors for scintillation ``sigma`` (fractional rms) and standard normal ``z``."""
    sigma = np.asarray(sigma, float)
    return np.exp(sigma * np.asarray(z, float) - sigma**2 / 2)


@dataclass(frozen=True)
class ApertureNoise:
    """Variances (e-^2) of an aperture sum, by source; arrays if the inputs were."""

    photon: np.ndarray
    sky: np.ndarray
    read: np.ndarray
    scintillation: np.ndarray
    background: np.ndarray
    signal: np.ndarray  # the star's electrons in the aperture

    @property
    def variance(self):
        return self.photon + self.sky + self.read + self.scintillation + self.background

    @property
    def sigma(self):
        return np.sqrt(self.variance)

    @property
    def relative(self):
        """The fractional noise, sigma / flux: the lightcurve RMS floor for one frame."""
        return self.sigma / self.signal


def aperture_noise(star_electrons, aperture_pixels, sky_electrons_per_pixel, exptime, airmass, elevation_m,
                   background_pixels=None, diameter_m: float = APERTURE_DIAMETER_M) -> ApertureNoise:
    """The expected variance of a star's aperture sum, term by term (see the module)."""
    flux = np.asarray(star_electrons, float)
    n = np.asarray(aperture_pixels, float)
    sky = np.asarray(sky_electrons_per_pixel, float)
    per_pixel_read = READ_NOISE**2 + DIGITISATION_VARIANCE
    background = 0.0 * n if background_pixels is None else n**2 / np.asarray(background_pixels, float) * (sky + per_pixel_read)
    sigma_s = scintillation(exptime, airmass, elevation_m, diameter_m)
    return ApertureNoise(photon=flux, sky=n * sky, read=n * per_pixel_read, scintillation=np.expm1(sigma_s**2) * flux**2,
                         background=background, signal=flux)
