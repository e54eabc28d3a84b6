"""Demo data: nights of frames from real PANOPTES sites on real targets, through the real pipeline.

``panoptes-network demo [--nights N]`` plans each night at each site as a unit would: the
sky dark (Sun below -12 deg), a few sequences on the highest target above the 30 deg horizon
(POCS's default), each a run of 120 s exposures from both cameras. Every frame carries a
POCS-style header (the keywords of ``shared/data/pocs/tiny.fits``) with airmass, Moon
separation and Moon illumination computed with astropy for its time and place, mount
pointing and, for most frames, a plate solution; its pixels are a small synthetic star
field (a Bayer RGGB mosaic, sky brighter with the Moon and the airmass), so the whole
set is a few megabytes. Frames are written to the raw bucket as a unit uploads them,
and compress-fits and record-image do the rest.

Sites (unit, place, latitude, longitude, elevation): PAN001 at Mauna Loa Observatory,
the values in its frames' headers and in POCS's default configuration; PAN006 at
Wheaton College, Massachusetts, and PAN008 at Siding Spring Observatory, Australia, as
the project's FAQ describes them (coordinates of those sites, to about 0.01 deg).
Targets are exoplanet hosts and KIC 8462852 from lookup-field's table (issue #5), so a
search by name finds them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterator

import numpy as np

from panoptes_network.ids import BucketPath, format_time

EXPTIME_SECONDS = 120.0
READOUT_SECONDS = 15.0
HORIZON_DEG = 30.0
DARK_SUN_ALTITUDE_DEG = -12.0
PIXEL_SCALE_DEG = 0.00286  # 10.3 arcsec: a Canon SL1 behind an 85 mm lens, as in the solved POCS frame
FRAME_SHAPE = (96, 144)  # rows, columns: a 3:2 cut-out, small so the demo runs in seconds
CLEAR_NIGHT_PROBABILITY = 0.8
PLATE_SOLVED_FRACTION = 0.75


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

TARGETS = (
    "KIC 8462852", "HD 189733", "HD 209458", "WASP-33", "WASP-12", "HAT-P-7", "HAT-P-11", "KELT-9", "TrES-3",
    "XO-1", "XO-3", "HAT-P-32", "KELT-7", "HD 80606", "HD 17156", "HAT-P-2", "WASP-52", "WASP-80", "WASP-43",
    "WASP-18", "WASP-19", "WASP-121", "KELT-11", "WASP-39", "WASP-76", "HD 97658", "HD 149026",
)


@dataclass(frozen=True)
class Target:
    name: str
    ra: float
    dec: float


def targets() -> list[Target]:
    from panoptes_network.lookup.catalogs import find_exoplanet_host

    found = []
    for name in TARGETS:
        entry = find_exoplanet_host(name)
        if entry is None:
            raise LookupError(f"demo target {name!r} is not in lookup-field's exoplanet host table")
        found.append(Target(name, entry.ra, entry.dec))
    return found


@dataclass
class Sequence:
    site: Site
    target: Target
    start: datetime
    frames: int
    pointing_offset: tuple[float, float]  # the plate-solved centre minus the mount's, degrees
    seed: int
    # Filled by :func:`observe`: per frame, for both cameras alike.
    times: list[datetime] = field(default_factory=list)
    airmass: list[float] = field(default_factory=list)
    hour_angle: list[float] = field(default_factory=list)
    moon_separation: list[float] = field(default_factory=list)
    moon_fraction: list[float] = field(default_factory=list)


@dataclass
class DemoResult:
    sequences: int
    frames: int
    bytes: int
    first_night: date
    last_night: date
    units: tuple[str, ...]


@contextlib.contextmanager
def _offline_astropy():
    """No IERS downloads (there may be no network): the tables astropy ships are ample for a demo."""
    from astropy.utils import iers

    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None), \
            iers.conf.set_temp("iers_degraded_accuracy", "ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _location(site: Site):
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation.from_geodetic(site.longitude * u.deg, site.latitude * u.deg, site.elevation * u.m)


def dark_window(site: Site, night: date) -> tuple[datetime, datetime] | None:
    """When the Sun is below -12 deg during the night starting on ``night`` (local evening), in UTC."""
    from astropy.coordinates import AltAz, get_sun
    from astropy.time import Time

    local_noon = datetime.combine(night, datetime.min.time(), timezone.utc) + timedelta(hours=12 - site.longitude / 15)
    grid = [local_noon + timedelta(minutes=10 * n) for n in range(24 * 6 + 1)]
    times = Time(grid)
    altitude = get_sun(times).transform_to(AltAz(obstime=times, location=_location(site))).alt.deg
    dark = np.flatnonzero(altitude < DARK_SUN_ALTITUDE_DEG)
    if not dark.size:
        return None
    return grid[dark[0]], grid[dark[-1]]


def _altitudes(site: Site, target_list: list[Target], moments: list[datetime]) -> np.ndarray:
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time

    times = Time(moments)
    frame = AltAz(obstime=times[:, None], location=_location(site))
    coords = SkyCoord([t.ra for t in target_list] * u.deg, [t.dec for t in target_list] * u.deg)
    return coords[None, :].transform_to(frame).alt.deg  # (times, targets)


def plan(nights: int, last_night: date, seed: int = 2016, not_after: datetime | None = None) -> list[Sequence]:
    """The sequences every site observes on ``nights`` nights ending with ``last_night``, none after ``not_after``."""
    not_after = not_after or datetime.now(timezone.utc)
    rng = np.random.default_rng(seed)
    target_list = targets()
    sequences = []
    for site in SITES:
        for offset in range(nights - 1, -1, -1):
            night = last_night - timedelta(days=offset)
            if rng.random() > CLEAR_NIGHT_PROBABILITY:
                continue  # clouded out
            window = dark_window(site, night)
            if window is None:
                continue
            dusk, dawn = window
            slots = int(rng.integers(3, 6))
            slot = (dawn - dusk) / slots
            starts = [dusk + slot * n + slot * float(rng.uniform(0, 0.4)) for n in range(slots)]
            altitudes = _altitudes(site, target_list, starts)
            previous = None
            for n, start in enumerate(starts):
                frames = int(rng.integers(4, 11))
                end = start + timedelta(seconds=60 + frames * (EXPTIME_SECONDS + READOUT_SECONDS))
                if end > dawn or end > not_after:
                    continue  # past dawn, or not yet happened (tonight at a site west of here)
                visible = [i for i in np.argsort(-altitudes[n]) if altitudes[n][i] > HORIZON_DEG + 5 and i != previous]
                if not visible:
                    continue
                choice = int(visible[int(rng.integers(0, min(3, len(visible))))])
                previous = choice
                sequences.append(Sequence(
                    site=site, target=target_list[choice], start=start.replace(microsecond=0), frames=frames,
                    pointing_offset=(float(rng.normal(0, 0.3)), float(rng.normal(0, 0.3))),
                    seed=int(rng.integers(0, 2**31)),
                ))
    return sequences


def observe(sequence: Sequence) -> Sequence:
    """Frame times, airmass, hour angle and the Moon for each frame, from astropy."""
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body, get_sun
    from astropy.time import Time

    step = timedelta(seconds=EXPTIME_SECONDS + READOUT_SECONDS)
    first = sequence.start + timedelta(seconds=35)  # slew and first readout after the sequence starts
    sequence.times = [first + step * n for n in range(sequence.frames)]
    times = Time(sequence.times)
    location = _location(sequence.site)
    altaz = AltAz(obstime=times, location=location)
    target = SkyCoord(sequence.target.ra * u.deg, sequence.target.dec * u.deg).transform_to(altaz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moon = get_body("moon", times, location)
        sun = get_sun(times)
        elongation = sun.separation(moon).rad
        moon_local = moon.transform_to(altaz)
    # Illuminated fraction from the Sun-Moon-Earth phase angle, as astroplan computes it.
    phase = np.arctan2(sun.distance.to_value(u.km) * np.sin(elongation),
                       moon.distance.to_value(u.km) - sun.distance.to_value(u.km) * np.cos(elongation))
    sequence.airmass = [float(value) for value in target.secz]
    sequence.moon_separation = [float(value) for value in target.separation(moon_local).deg]
    sequence.moon_fraction = [float(value) for value in (1 + np.cos(phase)) / 2]
    lst = times.sidereal_time("apparent", longitude=sequence.site.longitude * u.deg).deg
    sequence.hour_angle = [float((value - sequence.target.ra + 180) % 360 - 180) for value in lst]
    return sequence


def _stars(target: Target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same star field every time the target is observed: (rows, columns, fluxes)."""
    seed = int.from_bytes(hashlib.sha256(target.name.encode()).digest()[:4], "big")
    rng = np.random.default_rng(seed)
    count = 45
    rows = rng.uniform(3, FRAME_SHAPE[0] - 3, count)
    cols = rng.uniform(3, FRAME_SHAPE[1] - 3, count)
    magnitudes = rng.uniform(6, 12, count)
    magnitudes[0] = 7.5  # the target, near the middle
    rows[0], cols[0] = FRAME_SHAPE[0] / 2, FRAME_SHAPE[1] / 2
    return rows, cols, 4e5 * 10 ** (-0.4 * (magnitudes - 6))


def pixels(sequence: Sequence, index: int, camera: int) -> np.ndarray:
    rng = np.random.default_rng([sequence.seed, index, camera])
    rows, cols, fluxes = _stars(sequence.target)
    drift = index * 0.15  # the field creeps across the sensor as tracking drifts
    y, x = np.mgrid[0:FRAME_SHAPE[0], 0:FRAME_SHAPE[1]]
    sigma = 1.1 + 0.15 * (sequence.airmass[index] - 1)
    image = np.zeros(FRAME_SHAPE)
    for row, col, flux in zip(rows + drift, cols + drift * 0.5, fluxes):
        image += flux / (2 * np.pi * sigma**2) * np.exp(-((y - row) ** 2 + (x - col) ** 2) / (2 * sigma**2))
    moonlight = sequence.moon_fraction[index] * 900 * np.exp(-sequence.moon_separation[index] / 40)
    sky = (120 + moonlight) * sequence.airmass[index]
    gains = np.empty(FRAME_SHAPE)
    gains[0::2, 0::2], gains[0::2, 1::2], gains[1::2, 0::2], gains[1::2, 1::2] = 0.47, 1.0, 1.0, 0.72  # RGGB
    electrons = rng.poisson(np.clip((image + sky) * gains, 0, None))
    counts = 2048 + electrons + rng.normal(0, 4, FRAME_SHAPE)
    return np.clip(counts, 0, 16383).astype(np.uint16)  # a 14-bit sensor


def frame_path(sequence: Sequence, index: int, camera: int) -> BucketPath:
    return BucketPath(sequence.site.unit_id, sequence.site.cameras[camera], sequence.start, sequence.times[index],
                      ".fits")


def header(sequence: Sequence, index: int, camera: int):
    from astropy.io import fits as astropy_fits

    site, target = sequence.site, sequence.target
    camera_id = site.cameras[camera]
    moment = sequence.times[index]
    ids = frame_path(sequence, index, camera)
    rng = np.random.default_rng([sequence.seed, index, camera, 1])
    temperature = int(round(12 + 6 * np.sin(index / 5) + rng.normal(0, 1)))
    cards = [
        ("ISO", 100), ("EXPTIME", EXPTIME_SECONDS), ("CAMTEMP", f"{temperature} C", "Celsius - From CR2"),
        ("CIRCCONF", "0.019 mm", "From CR2"), ("COLORTMP", 5400 + int(rng.integers(-50, 50)), "From CR2"),
        ("DATE-OBS", moment.strftime("%Y-%m-%dT%H:%M:%S")),
        ("FILENAME", f"{format_time(moment)}.cr2", "From CR2"),
        ("INTSN", f"HA{sequence.seed % 10_000_000:07d}", "From CR2"),
        ("CAMSN", f"{int(camera_id, 16):012d}", "From CR2"),
        ("MEASEV", -3.62, "From CR2"), ("MEASEV2", -3.625, "From CR2"),
        ("MEASRGGB", f"{470 + int(rng.integers(0, 10))} 1024 1024 {715 + int(rng.integers(0, 20))}", "From CR2"),
        ("WHTLVLN", 11765, "From CR2"), ("WHTLVLS", 12277, "From CR2"),
        ("REDBAL", 2.015625, "From CR2"), ("BLUEBAL", 1.490234, "From CR2"), ("WBRGGB", "", "From CR2"),
        ("IMAGEID", ids.image_id), ("SEQID", ids.sequence_id),
        ("FIELD", target.name), ("RA-MNT", round(target.ra, 5), "Degrees"),
        ("HA-MNT", sequence.hour_angle[index], "Degrees"), ("DEC-MNT", round(target.dec, 5), "Degrees"),
        ("EQUINOX", 2000.0), ("AIRMASS", sequence.airmass[index], "Sec(z)"), ("FILTER", "RGGB"),
        ("LAT-OBS", site.latitude, "Degrees"), ("LONG-OBS", site.longitude, "Degrees"),
        ("ELEV-OBS", site.elevation, "Meters"), ("MOONSEP", sequence.moon_separation[index], "Degrees"),
        ("MOONFRAC", sequence.moon_fraction[index]), ("CREATOR", "POCSv0.7.4", "POCS Software version"),
        ("INSTRUME", camera_id, "Camera ID"), ("OBSERVER", site.unit_id, "PANOPTES Unit ID"),
        ("ORIGIN", "Project PANOPTES"),
    ]
    result = astropy_fits.Header()
    for card in cards:
        result.append(card)
    if rng.random() < PLATE_SOLVED_FRACTION:
        ra = (target.ra + sequence.pointing_offset[0] / max(np.cos(np.radians(target.dec)), 0.05)) % 360
        dec = float(np.clip(target.dec + sequence.pointing_offset[1], -89.9, 89.9))
        for card in (("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRVAL1", ra), ("CRVAL2", dec),
                     ("CRPIX1", FRAME_SHAPE[1] / 2 + 0.5), ("CRPIX2", FRAME_SHAPE[0] / 2 + 0.5),
                     ("CUNIT1", "deg"), ("CUNIT2", "deg"), ("CD1_1", -PIXEL_SCALE_DEG), ("CD1_2", 0.0),
                     ("CD2_1", 0.0), ("CD2_2", PIXEL_SCALE_DEG)):
            result.append(card)
    return result


def frame(sequence: Sequence, index: int, camera: int) -> tuple[str, bytes]:
    """The bucket path and FITS bytes of one frame."""
    from astropy.io import fits as astropy_fits

    path = frame_path(sequence, index, camera).path
    out = io.BytesIO()
    hdu = astropy_fits.PrimaryHDU(pixels(sequence, index, camera), header(sequence, index, camera))
    hdu.header.set("EXTEND", True, after="NAXIS2")  # as the POCS frames have it
    hdu.writeto(out)
    return path, out.getvalue()


def frames(sequences: list[Sequence]) -> Iterator[tuple[str, bytes]]:
    for sequence in sequences:
        observe(sequence)
        for index in range(sequence.frames):
            for camera in range(len(sequence.site.cameras)):
                yield frame(sequence, index, camera)


def generate(write: Callable[[str, bytes], None], nights: int = 3, last_night: date | None = None,
             seed: int = 2016, progress: Callable[[int, int], None] | None = None) -> DemoResult:
    """Plan, make and ``write(bucket_path, data)`` every frame; returns what was made."""
    if nights < 1:
        raise ValueError("nights must be 1 or more")
    last_night = last_night or (datetime.now(timezone.utc).date() - timedelta(days=1))
    with _offline_astropy():
        sequences = plan(nights, last_night, seed)
        total = sum(s.frames * len(s.site.cameras) for s in sequences)
        count, size = 0, 0
        for path, data in frames(sequences):
            write(path, data)
            count, size = count + 1, size + len(data)
            if progress:
                progress(count, total)
    return DemoResult(len(sequences), count, size, last_night - timedelta(days=nights - 1), last_night,
                      tuple(sorted({s.site.unit_id for s in sequences})))
