"""Injected signals: the truth that photometry is checked against.

Each signal multiplies a star's flux (in every channel alike) by a factor that depends on
time. The factor is evaluated at mid-exposure (DATE-OBS + EXPTIME / 2); for the
trapezoid below that equals its mean over the exposure except within half an exposure
of a corner of the trapezoid.

- :class:`Transit`: a **trapezoid**. Full depth ``depth`` (fractional: 0.01 is 1%) for
  the flat bottom; ``duration_hours`` is the total from first to fourth contact; the
  ingress and egress each last ``ingress_fraction`` of the duration (0 gives a box).
  Mid-transit times are ``epoch + n * period``.
- :class:`Variable`: a sinusoid, ``1 + amplitude * sin(2 pi (t - epoch) / period)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np


def _days(moment: datetime) -> float:
    return moment.timestamp() / 86400.0


@dataclass(frozen=True)
class Transit:
    star_id: int
    epoch: datetime  # a mid-transit time, aware UTC
    period_days: float
    depth: float  # fractional flux drop at full depth
    duration_hours: float  # first to fourth contact
    ingress_fraction: float = 0.15  # of the duration, for each of ingress and egress; 0 is a box

    def __post_init__(self):
        if not 0 <= self.ingress_fraction <= 0.5:
            raise ValueError("ingress_fraction must be in 0..0.5")
        if self.period_days <= 0 or self.duration_hours <= 0 or not 0 <= self.depth < 1:
            raise ValueError("a transit needs a positive period and duration and a depth in 0..1")

    def factor(self, moment: datetime) -> float:
        period = self.period_days
        phase_days = (_days(moment) - _days(self.epoch) + period / 2) % period - period / 2
        half = self.duration_hours / 24 / 2
        ingress = self.ingress_fraction * 2 * half
        distance = abs(phase_days)
        if distance >= half:
            return 1.0
        if ingress == 0 or distance <= half - ingress:
            return 1.0 - self.depth
        return 1.0 - self.depth * (half - distance) / ingress


@dataclass(frozen=True)
class Variable:
    star_id: int
    epoch: datetime
    period_days: float
    amplitude: float  # fractional

    def factor(self, moment: datetime) -> float:
        return 1.0 + self.amplitude * float(np.sin(2 * np.pi * (_days(moment) - _days(self.epoch)) / self.period_days))


Signal = Transit | Variable


def signal_factors(signals, ids: np.ndarray, moment: datetime) -> np.ndarray:
    """Each star's flux factor at ``moment`` (1 for a star with no signal; several multiply)."""
    factors = np.ones(len(ids))
    if not signals:
        return factors
    position = {int(star): i for i, star in enumerate(ids)}
    for signal in signals:
        index = position.get(int(signal.star_id))
        if index is not None:
            factors[index] *= signal.factor(moment)
    return factors
