"""The POCS header a unit writes on a frame (the keywords of ``shared/data/pocs/tiny.fits``),
with no WCS: units upload unsolved frames."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from panoptes_network.ids import BucketPath, format_time
from panoptes_network.simulator.observatory import Conditions, Site


def sensor_temperature(time: datetime) -> float:
    """The camera's sensor temperature (C) at ``time``: it wanders 6-18 C over a few hours, as a
    DSLR's does through a night (the real frames read 11-13 C on a September night)."""
    return 12 + 6 * float(np.sin(time.timestamp() / 3000))


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
    reading = sensor_temperature(time) if sensor_temp_c is None else sensor_temp_c
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
