"""The POCS header a unit writes on a frame (the keywords of ``shared/data/pocs/tiny.fits``),
with no WCS: units upload unsolved frames."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from panoptes_network.ids import BucketPath, format_time
from panoptes_network.simulator.observatory import Conditions, Site


def sensor_temperature(time: datetime, longitude: float) -> float:
    """The camera's sensor temperature (C) at ``time`` at a site of ``longitude`` (deg east):
    the night air's, warmest at 17:00 local solar time and 8 C cooler at 05:00 (a night
    cools it ~0.7 C an hour), with the camera's own warmth wandering a degree either way over
    an hour or two. A model, not a measurement: the real frames here read 11 C and 13 C
    two minutes apart, at 22:12 local time in September (this model: 11.8 C)."""
    seconds = time.timestamp()
    local_hours = (seconds / 3600 + longitude / 15) % 24
    return 10 + 4 * math.cos(2 * math.pi * (local_hours - 17) / 24) + math.sin(2 * math.pi * seconds / 6300)


def pocs_header(*, site: Site, camera_id: str, sequence_time: datetime, time: datetime, exptime: float,
                field: str, mount_ra: float, mount_dec: float, conditions: Conditions, seed,
                sensor_temp_c: float | None = None):
    """The header of a frame started at ``time`` (DATE-OBS) with the mount at (mount_ra, mount_dec).

    The camera's housekeeping values (temperature, white balance, serials) vary a little,
    seeded by ``seed``, as they do in real frames; CAMTEMP reads the sensor's temperature
    (``sensor_temp_c``, else :func:`sensor_temperature`) to a degree or so.
    """
    from astropy.io import fits as astropy_fits

    ids = BucketPath(site.unit_id, camera_id, sequence_time, time, ".fits")
    rng = np.random.default_rng(seed)
    reading = sensor_temperature(time, site.longitude) if sensor_temp_c is None else sensor_temp_c
    temperature = int(round(reading + rng.normal(0, 1)))
    serial_seed = int.from_bytes(camera_id.encode()[:8].ljust(8, b"\0"), "big") % 10_000_000
    cards = [
        ("ISO", 100), ("EXPTIME", exptime), ("CAMTEMP", f"{temperature} C", "Celsius - From CR2"),
        ("CIRCCONF", "0.019 mm", "From CR2"), ("COLORTMP", 5400 + int(rng.integers(-50, 50)), "From CR2"),
        ("DATE-OBS", time.strftime("%Y-%m-%dT%H:%M:%S")),
        ("FILENAME", f"{format_time(time)}.cr2", "From CR2"),
        ("INTSN", f"HA{serial_seed:07d}", "From CR2"),
        ("CAMSN", f"{int(camera_id, 16) if _is_hex(camera_id) else serial_seed:012d}", "From CR2"),
        ("MEASEV", -3.62, "From CR2"), ("MEASEV2", -3.625, "From CR2"),
        ("MEASRGGB", f"{470 + int(rng.integers(0, 10))} 1024 1024 {715 + int(rng.integers(0, 20))}", "From CR2"),
        ("WHTLVLN", 11765, "From CR2"), ("WHTLVLS", 12277, "From CR2"),
        ("REDBAL", 2.015625, "From CR2"), ("BLUEBAL", 1.490234, "From CR2"), ("WBRGGB", "", "From CR2"),
        ("IMAGEID", ids.image_id), ("SEQID", ids.sequence_id),
        ("FIELD", field), ("RA-MNT", round(mount_ra % 360, 5), "Degrees"),
        ("HA-MNT", conditions.hour_angle, "Degrees"), ("DEC-MNT", round(mount_dec, 5), "Degrees"),
        ("EQUINOX", 2000.0), ("AIRMASS", conditions.airmass, "Sec(z)"), ("FILTER", "RGGB"),
        ("LAT-OBS", site.latitude, "Degrees"), ("LONG-OBS", site.longitude, "Degrees"),
        ("ELEV-OBS", site.elevation, "Meters"), ("MOONSEP", conditions.moon_separation, "Degrees"),
        ("MOONFRAC", conditions.moon_fraction), ("CREATOR", "POCSv0.7.4", "POCS Software version"),
        ("INSTRUME", camera_id, "Camera ID"), ("OBSERVER", site.unit_id, "PANOPTES Unit ID"),
        ("ORIGIN", "Project PANOPTES"),
    ]
    header = astropy_fits.Header()
    for card in cards:
        header.append(card)
    return header


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
