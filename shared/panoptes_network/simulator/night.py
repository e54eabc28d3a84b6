"""A night on one field: the specs of a sequence of frames, then the frames one at a time.

``sequence_specs`` plans ``frames`` exposures of ``exptime`` seconds every
``exptime + readout`` seconds from ``start``, at the unit's site (airmass, Moon and
hour angle from astropy, once for the whole sequence), with:

- the mount at one position for the whole sequence, ``mount_offset_deg`` (None: a seeded
  0.5-2 deg) from the true centre, as POCS keeps pointing at its target;
- tracking drift: the field creeps across the sensor at a seeded rate of
  ``drift_px`` px over the whole sequence (None: a seeded 1-5 px) in a seeded direction,
  plus a 0.2 px rms jitter per frame;
- thin cloud: each frame loses a fraction ``cloud * u`` of its light, ``u`` uniform in
  0..1 drawn per frame (``cloud=0.3``: transparency varies between 0.7 and 1);
- the same injected ``signals`` in every frame.

``simulate_sequence`` renders them lazily (a full frame is ~90 MB of truth and pixels).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Iterator

import numpy as np

from panoptes_network.simulator.frame import FrameSpec, SimulatedFrame, mount_position, simulate_frame
from panoptes_network.simulator.observatory import conditions, site_for

READOUT_SECONDS = 15.0
JITTER_PX = 0.2


def sequence_specs(ra: float, dec: float, start: datetime, frames: int, *, exptime: float = 120.0,
                   readout: float = READOUT_SECONDS, seed: int = 1, cloud: float = 0.0,
                   drift_px: float | None = None, **frame: object) -> list[FrameSpec]:
    """The :class:`FrameSpec` of each frame of a sequence (see the module). ``frame`` takes
    any other :class:`FrameSpec` field (unit_id, camera_id, width, height, rotation_deg,
    signals, mount_offset_deg, field_name, ...)."""
    if frames < 1:
        raise ValueError("a sequence has at least one frame")
    if not 0 <= cloud < 1:
        raise ValueError("cloud is the largest fraction of light lost: 0 <= cloud < 1")
    rng = np.random.default_rng([seed, 0x5E0])
    base = FrameSpec(ra=ra, dec=dec, time=start, exptime=exptime, seed=seed, sequence_time=start, **frame)
    site = base.site or site_for(base.unit_id)
    mount = mount_position(base)
    times = [start + timedelta(seconds=n * (exptime + readout)) for n in range(frames)]
    skies = conditions(site, times, *mount)
    total = float(rng.uniform(1, 5)) if drift_px is None else drift_px
    direction = rng.uniform(0, 2 * np.pi)
    step = total / max(frames - 1, 1) * np.array([np.cos(direction), np.sin(direction)])
    jitter = rng.normal(0, JITTER_PX, (frames, 2))
    losses = cloud * rng.random(frames)
    return [replace(base, time=moment, seed=int(rng.integers(0, 2**31)), mount=mount, site=site, conditions=sky,
                    drift_px=(float(step[0] * n + jitter[n, 0]), float(step[1] * n + jitter[n, 1])),
                    cloud=float(losses[n]))
            for n, (moment, sky) in enumerate(zip(times, skies))]


def simulate_sequence(ra: float, dec: float, start: datetime, frames: int, **options) -> Iterator[SimulatedFrame]:
    """The frames of :func:`sequence_specs`, rendered one at a time."""
    for spec in sequence_specs(ra, dec, start, frames, **options):
        yield simulate_frame(spec)
