"""When tetra3rs finds no solution, astrometry.net is tried next and solves the frame.

The frame: a strip cut from a full-width simulated frame of Cygnus (5208 x 250 pixels,
14.9 x 0.7 degrees). Its width is in tetra3rs's 12-18 degree range, so tetra3rs is tried
first, but its patterns are of stars spread over a whole field: a strip this narrow holds
none of them, and it fails. astrometry.net, with the mount's position and the pixel
scale as hints, finds quads along the strip.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from panoptes_network.simulator import simulate_frame
from panoptes_network.solve import SOLVED, solve_bytes
from panoptes_network.solve.engines import PIXEL_SCALE_ARCSEC, AstrometryNetEngine, Tetra3Engine, engines_for
from panoptes_network.solve.frame import Frame
from panoptes_network.solve.stages import Calibrate, Detect, Read
from tests.sky_fields import FIELDS, grid_error_arcsec

STRIP = (250, 5208)  # rows, columns


def test_astrometry_net_solves_a_frame_tetra3rs_cannot_and_the_solve_map_names_it():
    cygnus = next(field for field in FIELDS if field.name == "Cygnus")
    simulated = simulate_frame(dataclasses.replace(cygnus.spec(), height=STRIP[0], width=STRIP[1]))
    raw = simulated.to_fits_bytes()

    detected = Frame(raw=raw, name="Cygnus strip")
    for stage in (Read(), Calibrate(), Detect()):
        stage.run(detected)
    assert not detected.failed and len(detected.stars) > 100
    assert [type(engine) for engine in engines_for(detected, PIXEL_SCALE_ARCSEC)] == [Tetra3Engine, AstrometryNetEngine]
    assert Tetra3Engine().solve(detected, PIXEL_SCALE_ARCSEC) is None  # tried, and no solution

    frame = solve_bytes(raw, "Cygnus strip")
    assert frame.status == SOLVED, frame.reason
    assert frame.summary()["engine"] == "astrometry.net"
    assert frame.summary()["matched_stars"] >= 50
    error = grid_error_arcsec(frame.wcs, simulated.truth.wcs, frame.shape)
    assert np.median(error) <= 2.0 and error.max() <= 10.0, (np.median(error), error.max())


def test_a_strip_whose_first_solution_holds_only_near_its_quad_is_grown_to_the_whole_strip():
    """Virgo, sparse: astrometry.net matches a quad at one end of the strip, and its WCS,
    right there, is 100 px off at the other end (rotation a little off over 5208 px), where
    the nearest catalog star within the first match radius is as often a wrong one. Refine
    grows the solution from the quad along the strip instead of giving up."""
    virgo = next(field for field in FIELDS if field.name == "Virgo")
    simulated = simulate_frame(dataclasses.replace(virgo.spec(), height=STRIP[0], width=STRIP[1]))
    frame = solve_bytes(simulated.to_fits_bytes(), "Virgo strip")
    assert frame.status == SOLVED, frame.reason
    assert frame.summary()["engine"] == "astrometry.net" and frame.matched >= 30
    error = grid_error_arcsec(frame.wcs, simulated.truth.wcs, frame.shape)
    # 0.7 degrees tall, few stars: a little over a pixel (10.3") at worst, at the strip's corners.
    assert np.median(error) <= 3.0 and error.max() <= 15.0, (np.median(error), error.max())
