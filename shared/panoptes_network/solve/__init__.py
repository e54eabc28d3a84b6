"""Plate solving: a frame's pixels to a TAN-SIP WCS, as stages (see stages.py).

read -> calibrate (bias, per-channel background) -> detect (sep, 2x2 super-pixels)
-> solve (tetra3rs or astrometry.net, engines.py) -> refine (TAN-SIP on every matched
Gaia star, sip.py). The plate-solve service (pipeline/platesolve.py) adds the writes.
"""

from panoptes_network.solve.frame import SOLVED, UNSOLVED, CorruptFrame, Frame
from panoptes_network.solve.stages import ORDERED_STAGES, solve_bytes

__all__ = ["SOLVED", "UNSOLVED", "CorruptFrame", "Frame", "ORDERED_STAGES", "solve_bytes"]
