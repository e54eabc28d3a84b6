"""What the air does: extinction of starlight, and the brightness of the sky behind it.

- **Extinction** in magnitudes is ``k_c * airmass`` per channel, ``k_c`` a Rayleigh part
  that scales with pressure (``exp(-elevation / 8 km)``) plus an aerosol part: at sea
  level about 0.31, 0.18 and 0.13 mag/airmass in b, g and r.
- **Sky brightness** is Krisciunas & Schaefer's (1991, PASP 103, 1033) model in V: a
  dark sky of :data:`DARK_SKY_V` mag/arcsec^2 at the zenith, brightening toward the
  horizon as ``X * 10**(-0.4 k (X - 1))``, plus scattered moonlight that depends on the
  Moon's phase, its altitude, and its distance from the point. Evaluated on a coarse
  grid over the frame and interpolated, it gives the gradient real frames show. The
  dark sky is reddish (airglow), moonlight is sunlight (bluer): their channel ratios are
  :data:`DARK_SKY_RGB` and :data:`MOONLIGHT_RGB`.
"""

from __future__ import annotations

import numpy as np

RAYLEIGH_SEA_LEVEL = np.array([0.08, 0.14, 0.27])  # r, g, b mag/airmass
AEROSOL = 0.05  # mag/airmass
KS_EXTINCTION_V = 0.172  # K&S's own V-band coefficient for the sky model
DARK_SKY_V = 21.5  # mag/arcsec^2 at the zenith
# Electrons in r and b relative to g, per unit V brightness: roughly the channel medians
# of the real unsolved.fits (r and b above g), with moonlight bluer than the dark sky.
DARK_SKY_RGB = np.array([1.4, 1.0, 1.2])
MOONLIGHT_RGB = np.array([0.7, 1.0, 1.1])


def extinction(elevation_m: float) -> np.ndarray:
    """k (mag/airmass) for r, g, b at a site ``elevation_m`` above the sea."""
    return RAYLEIGH_SEA_LEVEL * np.exp(-elevation_m / 8000.0) + AEROSOL


def _nanolamberts(v_mag):
    return 34.08 * np.exp(20.7233 - 0.92104 * np.asarray(v_mag, float))


def _ks_airmass(zenith_deg):
    return 1 / np.sqrt(1 - 0.96 * np.sin(np.radians(np.clip(zenith_deg, 0, 90))) ** 2)


def sky_nanolamberts(altitude_deg, moon_separation_deg, moon_altitude_deg: float, moon_fraction: float):
    """(dark, moon): the dark sky and the moonlight at points of given altitude and
    separation from the Moon, in nanolamberts (K&S's unit; V = 20.7233 - ln(B / 34.08) / 0.92104)."""
    zenith = 90 - np.asarray(altitude_deg, float)
    x = _ks_airmass(zenith)
    dark = _nanolamberts(DARK_SKY_V) * x * 10 ** (-0.4 * KS_EXTINCTION_V * (x - 1))
    if moon_altitude_deg <= 0 or moon_fraction <= 0:
        return dark, np.zeros_like(dark)
    phase_angle = np.degrees(np.arccos(np.clip(2 * moon_fraction - 1, -1, 1)))  # 0 at full Moon
    illuminance = 10 ** (-0.4 * (3.84 + 0.026 * phase_angle + 4e-9 * phase_angle**4))
    rho = np.clip(np.asarray(moon_separation_deg, float), 0.5, 180)
    scattering = 10**5.36 * (1.06 + np.cos(np.radians(rho)) ** 2) + 10 ** (6.15 - rho / 40)
    moon_x = _ks_airmass(90 - moon_altitude_deg)
    moon = scattering * illuminance * 10 ** (-0.4 * KS_EXTINCTION_V * moon_x) * (1 - 10 ** (-0.4 * KS_EXTINCTION_V * x))
    return dark, moon


def nanolamberts_to_v(brightness):
    return (20.7233 - np.log(np.asarray(brightness, float) / 34.08)) / 0.92104
