"""The solve stages on the real POCS frames, and what happens without astrometry.net's index."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits as astropy_fits
from astropy.wcs import WCS

from panoptes_network.catalog import stars_in_footprint
from panoptes_network.sky import separation
from panoptes_network.solve import SOLVED, UNSOLVED, solve_bytes
from panoptes_network.solve import engines
from panoptes_network.solve.sip import match
from panoptes_network.solve.stages import at_epoch
from tests.conftest import skip_or_fail


@pytest.fixture(scope="module")
def index_installed():
    if not engines.index_files(engines.AstrometryNetEngine().index_dir):
        skip_or_fail(f"astrometry.net index files are not installed: {engines.INSTALL_HINT}")


def centre(wcs: WCS) -> tuple[float, float]:
    return tuple(wcs.all_pix2world([[349.5, 349.5]], 0)[0])


def gaia_residual_arcsec(wcs: WCS, frame) -> float:
    """Median distance between detected stars and the Gaia stars a WCS puts on them."""
    ra, dec = at_epoch(stars_in_footprint(wcs=wcs, shape=frame.shape), 2016.7)
    x, y = wcs.all_world2pix(ra, dec, 0)
    detected, matched = match(frame.stars["x"], frame.stars["y"], x, y, 3.0)
    assert len(detected) > 50
    return float(np.median(np.hypot(frame.stars["x"][detected] - x[matched],
                                     frame.stars["y"][detected] - y[matched]))) * frame.pixel_scale_arcsec()


def test_real_unsolved_cutout_is_solved(pocs, index_installed):
    frame = solve_bytes((pocs / "unsolved.fits").read_bytes(), "unsolved.fits")
    assert frame.status == SOLVED, frame.reason
    assert frame.engine_solution.engine == "astrometry.net"
    assert frame.matched >= 30 and frame.rms_arcsec < 5
    assert frame.wcs.wcs.ctype[0] == "RA---TAN-SIP"
    # The same field as solved.fits.fz two minutes later, 2.1 degrees from the mount's position.
    solved_ra, solved_dec = centre(WCS(astropy_fits.getheader(pocs / "solved.fits.fz", 1)))
    assert separation(*frame.centre(), solved_ra, solved_dec) * 3600 < 60
    assert separation(*frame.centre(), *frame.pointing) > 1.5


def test_solved_frame_resolved_agrees_with_its_header(pocs, index_installed):
    header = astropy_fits.getheader(pocs / "solved.fits.fz", 1)
    frame = solve_bytes((pocs / "solved.fits.fz").read_bytes(), "solved.fits.fz")
    assert frame.status == SOLVED, frame.reason
    theirs = WCS(header)
    assert separation(*centre(frame.wcs), *centre(theirs)) * 3600 < 10
    # Over the frame the two differ by about a pixel, and the header is the one that is off:
    # it puts the Gaia stars farther from the detected ones than ours does.
    assert gaia_residual_arcsec(frame.wcs, frame) < 0.5 * gaia_residual_arcsec(theirs, frame)


def test_without_index_files_the_reason_says_what_to_install(pocs, monkeypatch, tmp_path):
    monkeypatch.setenv("ASTROMETRY_INDEX_DIR", str(tmp_path))
    frame = solve_bytes((pocs / "unsolved.fits").read_bytes(), "unsolved.fits")
    assert frame.status == UNSOLVED
    assert "astrometry-data-tycho2-10-19" in frame.reason and str(tmp_path) in frame.reason


def test_cutout_too_small_for_the_index_is_unsolved_with_a_reason(pocs, index_installed):
    frame = solve_bytes((pocs / "tiny.fits").read_bytes(), "tiny.fits")  # 200 x 200 pixels, 0.57 degrees
    assert frame.status == UNSOLVED
    assert "no solution" in frame.reason and "0.57 degree field" in frame.reason
