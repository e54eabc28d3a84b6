"""Where and when: the units' sites, and the geometry of a night from astropy.

Sites (unit, place, latitude, longitude, elevation): PAN001 at Mauna Loa Observatory,
the values in its frames' headers and in POCS's default configuration; PAN006 at
Wheaton College, Massachusetts, and PAN008 at Siding Spring Observatory, Australia, as
the project's FAQ describes them (coordinates of those sites, to about 0.01 deg).

astropy is asked once per frame time (or once for a whole night, vectorised) for the
local sidereal time and the Moon; each star's altitude is then plain spherical
trigonometry, so a frame's thousands of stars each get their own airmass cheaply.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Site:
    unit_id: str
    place: str
    latitude: float  # degrees
    longitude: float  # degrees, east positive
    elevation: float  # metres
    cameras: tuple[str, str]  # serial-derived camera ids, as units name their two cameras


SITES = (
    Site("PAN001", "Mauna Loa Observatory, Hawaii", 19.54, -155.58, 3400.0, ("14d3bd", "ee04d1")),
    Site("PAN006", "Wheaton College, Norton, Massachusetts", 41.96, -71.18, 30.0, ("2d194b", "7d5c2a")),
    Site("PAN008", "Siding Spring Observatory, New South Wales", -31.27, 149.06, 1165.0, ("62b062", "a1c1f4")),
)


def site_for(unit_id: str) -> Site:
    for site in SITES:
        if site.unit_id == unit_id:
            return site
    raise ValueError(f"unknown unit {unit_id!r}: give FrameSpec a site (known: {', '.join(s.unit_id for s in SITES)})")


@contextlib.contextmanager
def offline_astropy():
    """No IERS downloads (there may be no network): the tables astropy ships are ample here."""
    from astropy.utils import iers

    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None), \
            iers.conf.set_temp("iers_degraded_accuracy", "ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def location(site: Site):
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation.from_geodetic(site.longitude * u.deg, site.latitude * u.deg, site.elevation * u.m)


@dataclass(frozen=True)
class Conditions:
    """The sky at one moment and place, seen from a mount pointing at (ra, dec): what the
    header reports and what the background and extinction depend on."""

    lst_deg: float  # local apparent sidereal time
    altitude: float  # of the pointing, degrees (astropy AltAz, no refraction)
    airmass: float  # of the pointing: sec(z), as POCS writes AIRMASS
    hour_angle: float  # of the pointing, degrees, -180..180
    moon_ra: float  # apparent (GCRS), degrees
    moon_dec: float
    moon_altitude: float  # degrees
    moon_separation: float  # from the pointing, degrees
    moon_fraction: float  # illuminated, 0..1
    sun_altitude: float  # degrees


def conditions(site: Site, times: Sequence[datetime], ra: float, dec: float) -> list[Conditions]:
    """The sidereal time, the pointing's altitude, the Moon and the Sun at ``site`` for each
    of ``times`` (vectorised: one astropy call for a whole night)."""
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body, get_sun
    from astropy.time import Time

    moments = Time(list(times))
    place = location(site)
    with offline_astropy():
        altaz = AltAz(obstime=moments, location=place)
        target = SkyCoord(ra * u.deg, dec * u.deg).transform_to(altaz)
        moon = get_body("moon", moments, place)
        sun = get_sun(moments)
        elongation = sun.separation(moon).rad
        moon_local = moon.transform_to(altaz)
        sun_altitude = sun.transform_to(altaz).alt.deg
        lst = moments.sidereal_time("apparent", longitude=site.longitude * u.deg).deg
        separation = target.separation(moon_local).deg
    # Illuminated fraction from the Sun-Moon-Earth phase angle, as astroplan computes it.
    phase = np.arctan2(sun.distance.to_value(u.km) * np.sin(elongation),
                       moon.distance.to_value(u.km) - sun.distance.to_value(u.km) * np.cos(elongation))
    fraction = (1 + np.cos(phase)) / 2
    return [Conditions(lst_deg=float(lst[i]), altitude=float(target.alt.deg[i]), airmass=float(target.secz[i]),
                       hour_angle=hour_angle(float(lst[i]), ra),
                       moon_ra=float(moon.ra.deg[i]), moon_dec=float(moon.dec.deg[i]),
                       moon_altitude=float(moon_local.alt.deg[i]),
                       moon_separation=float(separation[i]), moon_fraction=float(fraction[i]),
                       sun_altitude=float(sun_altitude[i])) for i in range(len(moments))]


def altitude(site: Site, lst_deg: float, ra, dec) -> np.ndarray:
    """Geometric altitude (degrees) of (ra, dec) at local sidereal time ``lst_deg``."""
    lat = np.radians(site.latitude)
    hour_angle = np.radians(lst_deg - np.asarray(ra, float))
    dec = np.radians(np.asarray(dec, float))
    sin_alt = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle)
    return np.degrees(np.arcsin(np.clip(sin_alt, -1, 1)))


def airmass(altitude_deg) -> np.ndarray:
    """Pickering (2002) airmass, finite down to the horizon; sec(z) within 0.1% above 40 deg."""
    h = np.maximum(np.asarray(altitude_deg, float), 0.0)
    return 1 / np.sin(np.radians(h + 244 / (165 + 47 * h**1.1)))


def hour_angle(lst_deg: float, ra: float) -> float:
    return float((lst_deg - ra + 180) % 360 - 180)
