"""Demo data: nights of frames from real PANOPTES sites on real targets, through the real pipeline.

``panoptes-network demo [--nights N]`` plans each night at each site as a unit would: the
sky dark (Sun below -12 deg), a few sequences on the highest target above the 30 deg horizon
(POCS's default), each a run of 120 s exposures from both cameras. Every frame carries a
POCS-style header (the keywords of ``shared/data/pocs/tiny.fits``) with airmass, Moon
separation and Moon illumination computed with astropy for its time and place, and the
mount's pointing (the target; the field's true centre is a few tenths of a degree off).
Its pixels come from the sky simulator (:mod:`panoptes_network.simulator`): the real
stars of the bundled Gaia catalog through a known WCS, an RGGB mosaic with the camera's
noise, the sky of that moment. By default a frame is a centred cut-out of
:data:`FRAME_SHAPE` (2.4 x 1.6 deg, the size of the real ``unsolved.fits`` cut-out, which
solves reliably and keeps the demo to about a minute); ``full_size`` renders whole
5208 x 3476 frames. No frame carries a WCS, as units upload them: the mount's position
is all the header says of where it points, and the plate-solve service solves every frame
(the truth stays with the simulator). Frames are written to the raw bucket as a unit
uploads them, and compress-fits, record-image and plate-solve do the rest.

Sites: ``simulator.observatory.SITES`` (PAN001 at Mauna Loa, PAN006 in Massachusetts,
PAN008 at Siding Spring).
Targets are exoplanet hosts and KIC 8462852 from lookup-field's table (issue #5), so a
search by name finds them.

Transits (issue 13): besides those sequences, :func:`transit_sequences` plans a few hours
on real hot-Jupiter hosts (G < 10, :data:`HOT_JUPITERS`: periods, depths and durations from
the discovery and follow-up papers) with the planet's transit injected through the
simulator's :class:`~panoptes_network.simulator.signals.Transit` at its real period. The
epoch is not the planet's ephemeris (a transit would seldom fall in a demo night): it puts
one mid-transit in the middle of the sequence. One camera, :data:`TRANSIT_FRAME_SHAPE`
cut-outs, to keep the demo to a few minutes. After ``demo`` and the ``process --pending``
sweep, the host's lightcurve shows the dip.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterator

import numpy as np

from panoptes_network.ids import BucketPath
from panoptes_network.simulator import FrameSpec, SimulatedFrame, camera, simulate_frame
from panoptes_network.simulator.observatory import SITES, Conditions, Site, conditions, location, offline_astropy

EXPTIME_SECONDS = 120.0
READOUT_SECONDS = 15.0
HORIZON_DEG = 30.0
DARK_SUN_ALTITUDE_DEG = -12.0
PIXEL_SCALE_DEG = camera.PIXEL_SCALE_DEG  # 10.3 arcsec: a Canon SL1 behind an 85 mm lens
DEFAULT_NIGHTS = 2  # at each site: with the transit sequence, about a minute on 2 cores (bench/demo.py)
FRAME_SHAPE = (560, 840)  # rows, columns: a 2.4 x 1.6 deg cut-out from the sensor's centre
FULL_FRAME_SHAPE = (camera.FULL_HEIGHT, camera.FULL_WIDTH)
CLEAR_NIGHT_PROBABILITY = 0.8
THIN_CLOUD_PROBABILITY = 0.25  # of a sequence under thin cloud (up to 30% of the light lost, frame to frame)
SECOND_CAMERA_OFFSET_DEG = (0.4, 0.25, 1.5)  # RA, Dec, rotation of camera 1's field from camera 0's

_offline_astropy = offline_astropy
_location = location

TARGETS = (
    "KIC 8462852", "HD 189733", "HD 209458", "WASP-33", "WASP-12", "HAT-P-7", "HAT-P-11", "KELT-9", "TrES-3",
    "XO-1", "XO-3", "HAT-P-32", "KELT-7", "HD 80606", "HD 17156", "HAT-P-2", "WASP-52", "WASP-80", "WASP-43",
    "WASP-18", "WASP-19", "WASP-121", "KELT-11", "WASP-39", "WASP-76", "HD 97658", "HD 149026",
)


@dataclass(frozen=True)
class HotJupiter:
    host: str  # as lookup-field's exoplanet host table names it
    period_days: float
    depth: float  # fractional
    duration_hours: float


HOT_JUPITERS = (  # shortest transits first: the shortest demo sequences
    HotJupiter("HD 189733", 2.21857567, 0.024, 1.8),  # Agol et al. 2010; Bouchy et al. 2005
    HotJupiter("WASP-18", 0.94145299, 0.010, 2.2),  # Hellier et al. 2009
    HotJupiter("WASP-33", 1.2198669, 0.011, 2.85),  # Collier Cameron et al. 2010
    HotJupiter("HD 209458", 3.52474859, 0.015, 3.0),  # Knutson et al. 2007
    HotJupiter("KELT-7", 2.7347749, 0.008, 3.5),  # Bieryla et al. 2015
)
TRANSIT_SEQUENCES = 1  # how many the demo adds (each the transit plus the baseline, one camera)
TRANSIT_BASELINE_HOURS = 1.2  # out of transit, half before and half after
TRANSIT_FRAME_SHAPE = (800, 1200)  # rows, columns: 2.3 x 3.4 deg round the host, ~40+ comparison stars of G < 10
TRANSIT_MIN_ALTITUDE_DEG = 40.0
TRANSIT_HOST_MIN_MAG = 7.7  # G: a brighter host saturates a 120 s frame (HD 189733, G 7.4), its lightcurve all flags


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
    cloud: float = 0.0  # the most light thin cloud takes from a frame (0: clear)
    cameras: int = 2  # how many of the unit's cameras take it
    signals: tuple = ()  # injected signals (simulator.signals), with their truth
    shape: tuple[int, int] | None = None  # its own frame size, else the demo's
    # Filled by :func:`observe`: per frame, for both cameras alike.
    times: list[datetime] = field(default_factory=list)
    conditions: list[Conditions] = field(default_factory=list)
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
    """The sequences every site observes on ``nights`` nights ending with ``last_night``, none after ``not_after``.

    Each site's night draws from its own generator (seeded by ``seed``, the site and the date)
    and draws every sequence's numbers before deciding whether it happened, so a night's
    sequences do not depend on the other nights, on how many nights are asked for, or on the
    hour the demo runs: a later run only adds the sequences that have happened since."""
    not_after = not_after or datetime.now(timezone.utc)
    target_list = targets()
    sequences = []
    for site_index, site in enumerate(SITES):
        for offset in range(nights - 1, -1, -1):
            night = last_night - timedelta(days=offset)
            rng = np.random.default_rng([seed, site_index, night.toordinal()])
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
                pick = int(rng.integers(0, 3))
                pointing_offset = (float(rng.normal(0, 0.3)), float(rng.normal(0, 0.3)))
                sequence_seed = int(rng.integers(0, 2**31))
                cloud = 0.3 if rng.random() < THIN_CLOUD_PROBABILITY else 0.0
                end = start + timedelta(seconds=60 + frames * (EXPTIME_SECONDS + READOUT_SECONDS))
                if end > dawn or end > not_after:
                    continue  # past dawn, or not yet happened (tonight at a site west of here)
                visible = [i for i in np.argsort(-altitudes[n]) if altitudes[n][i] > HORIZON_DEG + 5 and i != previous]
                if not visible:
                    continue
                choice = int(visible[pick % min(3, len(visible))])
                previous = choice
                sequences.append(Sequence(
                    site=site, target=target_list[choice], start=start.replace(microsecond=0), frames=frames,
                    pointing_offset=pointing_offset, seed=sequence_seed, cloud=cloud,
                ))
    return sequences


def host_star_id(ra: float, dec: float) -> int:
    """The simulator's id of the brightest catalog star within 2 arcmin of (ra, dec): its
    Gaia DR3 source id, or -HIP for a Hipparcos-only star (simulator.stars)."""
    from panoptes_network.catalog import stars_in_footprint

    near = stars_in_footprint(ra, dec, 4 / 60, 4 / 60)
    if not len(near):
        raise LookupError(f"no catalog star near {ra:.4f} {dec:+.4f}")
    star = near[0]  # brightest first
    return int(star["id"]) if star["id"] else -int(star["hip"])


def host_star_mag(ra: float, dec: float) -> float:
    """The catalog G of the star :func:`host_star_id` names."""
    from panoptes_network.catalog import stars_in_footprint

    return float(stars_in_footprint(ra, dec, 4 / 60, 4 / 60)[0]["mag"])


def transit_sequences(nights: int, last_night: date, count: int = TRANSIT_SEQUENCES,
                      not_after: datetime | None = None) -> list[Sequence]:
    """Up to ``count`` sequences on hot-Jupiter hosts no brighter than
    :data:`TRANSIT_HOST_MIN_MAG` (the transit plus :data:`TRANSIT_BASELINE_HOURS`), each the first
    window of the demo's nights where a host stays above :data:`TRANSIT_MIN_ALTITUDE_DEG` in
    the dark at some site, a transit at the planet's period injected mid-sequence."""
    from panoptes_network.lookup.catalogs import find_exoplanet_host
    from panoptes_network.simulator.signals import Transit

    not_after = not_after or datetime.now(timezone.utc)
    step = timedelta(seconds=EXPTIME_SECONDS + READOUT_SECONDS)
    chosen: list[Sequence] = []
    for planet in HOT_JUPITERS:
        if len(chosen) >= count:
            break
        hours = planet.duration_hours + TRANSIT_BASELINE_HOURS
        frames = int(hours * 3600 / step.total_seconds())
        entry = find_exoplanet_host(planet.host)
        target = Target(planet.host, entry.ra, entry.dec)
        if host_star_mag(target.ra, target.dec) < TRANSIT_HOST_MIN_MAG:
            continue
        found = None
        for offset in range(nights):
            night = last_night - timedelta(days=offset)
            for site in SITES:
                window = dark_window(site, night)
                if window is None:
                    continue
                grid = [window[0] + timedelta(minutes=10 * n)
                        for n in range(int((window[1] - window[0]).total_seconds() // 600) + 1)]
                high = _altitudes(site, [target], grid)[:, 0] > TRANSIT_MIN_ALTITUDE_DEG
                need = int(math.ceil(hours * 6)) + 1
                for n in range(len(grid) - need + 1):
                    if high[n:n + need].all() and grid[n] + timedelta(hours=hours) <= not_after:
                        found = (site, grid[n].replace(microsecond=0))
                        break
                if found:
                    break
            if found:
                break
        if not found:
            continue  # not up in the dark on these nights
        site, start = found
        first = start + timedelta(seconds=35)
        middle = first + step * (frames // 2) + timedelta(seconds=EXPTIME_SECONDS / 2)
        transit = Transit(host_star_id(target.ra, target.dec), middle, planet.period_days, planet.depth,
                          planet.duration_hours)
        chosen.append(Sequence(site=site, target=target, start=start, frames=frames, pointing_offset=(0.0, 0.0),
                               seed=int(zlib.crc32(f"{planet.host}{start}".encode())), cameras=1,
                               signals=(transit,), shape=TRANSIT_FRAME_SHAPE))
    return chosen


def observe(sequence: Sequence) -> Sequence:
    """Frame times, and the airmass, hour angle and Moon of each frame, from astropy."""
    step = timedelta(seconds=EXPTIME_SECONDS + READOUT_SECONDS)
    first = sequence.start + timedelta(seconds=35)  # slew and first readout after the sequence starts
    sequence.times = [first + step * n for n in range(sequence.frames)]
    sequence.conditions = conditions(sequence.site, sequence.times, sequence.target.ra, sequence.target.dec)
    sequence.airmass = [sky.airmass for sky in sequence.conditions]
    sequence.moon_separation = [sky.moon_separation for sky in sequence.conditions]
    sequence.moon_fraction = [sky.moon_fraction for sky in sequence.conditions]
    sequence.hour_angle = [sky.hour_angle for sky in sequence.conditions]
    return sequence


def frame_spec(sequence: Sequence, index: int, camera_index: int, shape: tuple[int, int] = FRAME_SHAPE) -> FrameSpec:
    """What the simulator renders for one frame: the mount on the target, the field's
    true centre off it by the sequence's pointing offset (and camera 1 beside camera 0),
    tracking drifting by a few pixels over the sequence, thin cloud on some sequences."""
    target = sequence.target
    d_ra, d_dec, rotation = SECOND_CAMERA_OFFSET_DEG if camera_index else (0.0, 0.0, 0.0)
    dec = float(np.clip(target.dec + sequence.pointing_offset[1] + d_dec, -89.9, 89.9))
    ra = (target.ra + (sequence.pointing_offset[0] + d_ra) / max(np.cos(np.radians(target.dec)), 0.05)) % 360
    rng = np.random.default_rng([sequence.seed, index, camera_index])
    drift = 0.05 * index + rng.normal(0, 0.2, 2)  # about 3 px over an hour
    camera_id = sequence.site.cameras[camera_index]
    return FrameSpec(
        ra=ra, dec=dec, time=sequence.times[index], rotation_deg=rotation + 90.0 * (zlib.crc32(camera_id.encode()) % 2),
        width=shape[1], height=shape[0], seed=int(rng.integers(0, 2**31)), exptime=EXPTIME_SECONDS,
        unit_id=sequence.site.unit_id, camera_id=camera_id, sequence_time=sequence.start, field_name=target.name,
        cloud=float(sequence.cloud * rng.random()), mount=(target.ra, target.dec),
        drift_px=(float(drift[0]), float(drift[1])), site=sequence.site, conditions=sequence.conditions[index],
        signals=sequence.signals,
    )


def simulated(sequence: Sequence, index: int, camera_index: int,
              shape: tuple[int, int] = FRAME_SHAPE) -> SimulatedFrame:
    return simulate_frame(frame_spec(sequence, index, camera_index, shape))


def frame_path(sequence: Sequence, index: int, camera_index: int) -> BucketPath:
    return BucketPath(sequence.site.unit_id, sequence.site.cameras[camera_index], sequence.start,
                      sequence.times[index], ".fits")


def header(sequence: Sequence, index: int, camera_index: int, shape: tuple[int, int] = FRAME_SHAPE):
    """A frame's header as uploaded: the simulator's POCS header, the mount's position and
    no WCS (plate-solve finds it)."""
    return simulated(sequence, index, camera_index, shape).header


def frame(sequence: Sequence, index: int, camera_index: int, shape: tuple[int, int] = FRAME_SHAPE) -> tuple[str, bytes]:
    """The bucket path and FITS bytes of one frame."""
    made = simulated(sequence, index, camera_index, shape)
    return frame_path(sequence, index, camera_index).path, made.to_fits_bytes()


def frames(sequences: list[Sequence], shape: tuple[int, int] = FRAME_SHAPE) -> Iterator[tuple[str, bytes]]:
    for sequence in sequences:
        observe(sequence)
        for index in range(sequence.frames):
            for camera_index in range(sequence.cameras):
                yield frame(sequence, index, camera_index, sequence.shape or shape)


def generate(write: Callable[[str, bytes], None], nights: int = DEFAULT_NIGHTS, last_night: date | None = None,
             seed: int = 2016, progress: Callable[[int, int], None] | None = None,
             full_size: bool = False, shape: tuple[int, int] | None = None,
             transits: int = TRANSIT_SEQUENCES) -> DemoResult:
    """Plan, make and ``write(bucket_path, data)`` every frame; returns what was made.
    Frames are :data:`FRAME_SHAPE` cut-outs, whole frames with ``full_size``, or ``shape``
    (rows, columns) if given."""
    if nights < 1:
        raise ValueError("nights must be 1 or more")
    last_night = last_night or (datetime.now(timezone.utc).date() - timedelta(days=1))
    with _offline_astropy():
        sequences = plan(nights, last_night, seed) + transit_sequences(nights, last_night, transits)
        total = sum(s.frames * s.cameras for s in sequences)
        count, size = 0, 0
        for path, data in frames(sequences, shape or (FULL_FRAME_SHAPE if full_size else FRAME_SHAPE)):
            write(path, data)
            count, size = count + 1, size + len(data)
            if progress:
                progress(count, total)
    return DemoResult(len(sequences), count, size, last_night - timedelta(days=nights - 1), last_night,
                      tuple(sorted({s.site.unit_id for s in sequences})))
