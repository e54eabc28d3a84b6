"""Times of a lightcurve: mid-exposure UTC to BJD_TDB at the unit's site.

``BJD_TDB = t_TDB + (r_observer . n) / c``: the observer's barycentric position (the
Earth's from astropy's built-in ephemeris plus the site's GCRS offset) projected on each
star's direction. That is what astropy's ``Time.light_travel_time(kind='barycentric')``
computes; here it is done once per frame for every star of the field at once (a 15 degree
field spans ~60 s of light time, so each star needs its own).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

C_AU_PER_DAY = 173.144632674240  # speed of light, au/day (IAU)


def bjd_tdb(times_utc: list[datetime], site: tuple[float, float, float], ra, dec) -> np.ndarray:
    """(frames, stars): BJD_TDB in days of each star at each mid-exposure time.

    The site's offset from the geocentre is turned by the Earth rotation angle with UT1
    taken as UTC and no precession or polar motion: under 1 km of error in a vector whose
    whole light time is 21 ms, so microseconds; and no IERS table to read (astropy reads
    one for ``EarthLocation.get_gcrs_posvel``, which cost ~20 s on a loaded machine)."""
    import astropy.units as u
    from astropy.coordinates import EarthLocation, get_body_barycentric
    from astropy.time import Time

    from panoptes_network.simulator.observatory import offline_astropy

    latitude, longitude, elevation = site
    place = EarthLocation.from_geodetic(longitude * u.deg, latitude * u.deg, elevation * u.m)
    with offline_astropy():
        moments = Time(list(times_utc), scale="utc")
        tdb = moments.tdb
        earth = get_body_barycentric("earth", tdb).xyz.to_value(u.au)  # (3, frames)
        utc_jd = moments.jd
    angle = earth_rotation_angle(utc_jd)
    x, y, z = (value.to_value(u.au) for value in (place.x, place.y, place.z))
    site_xyz = np.stack([x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle),
                         np.full_like(angle, z)])
    observer = (earth + site_xyz).T  # (frames, 3)
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    directions = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])  # (3, stars)
    return tdb.jd[:, None] + observer @ directions / C_AU_PER_DAY


def earth_rotation_angle(jd_ut1) -> np.ndarray:
    """The Earth rotation angle (radians, IAU 2000) at Julian dates of UT1 (UTC will do: 0.9 s
    is 0.004 degrees): with CIO-based right ascensions, which ICRS ones approach within the
    precession of the equator, hour angle = angle + east longitude - right ascension."""
    return 2 * np.pi * (0.7790572732640 + 1.00273781191135448 * (np.asarray(jd_ut1, float) - 2451545.0))


def julian_date(times_utc: list[datetime]) -> np.ndarray:
    """Julian dates (UTC) of aware datetimes, without astropy."""
    return np.array([t.timestamp() for t in times_utc], float) / 86400.0 + 2440587.5
