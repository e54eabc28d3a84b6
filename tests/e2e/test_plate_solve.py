"""The plate-solve service end to end, on both backends: a frame without a WCS is uploaded
as a unit uploads it, the pipeline runs, and the frame comes out solved."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import numpy as np
import pytest
from astropy.io import fits as astropy_fits
from astropy.wcs import WCS

from panoptes_network import fits
from panoptes_network.sky import separation

SEQUENCE = "PAN001/14d3bd/20160909T081152"
UNSOLVED = f"{SEQUENCE}/20160909T081314.fits"
IMAGE_ID = "PAN001_14d3bd_20160909T081314"
SEQUENCE_ID = "PAN001_14d3bd_20160909T081152"
WCS_PATH = f"{SEQUENCE}/20160909T081314.wcs.fits"


def solved_centre(pocs):
    """The centre of solved.fits.fz, the same field 2 minutes later on a tracking mount."""
    header = astropy_fits.getheader(pocs / "solved.fits.fz", 1)
    return WCS(header).all_pix2world([[349.5, 349.5]], 0)[0]


def test_unsolved_frame_is_solved_and_positions_its_observation(stack, pocs):
    start = datetime.now(timezone.utc)
    stack.upload(pocs / "unsolved.fits", UNSOLVED)
    stack.drain(timeout=300)
    assert stack.dead_letters() == []

    image = stack.documents.get("images", IMAGE_ID)
    assert image["status"] == "solved" and image["plate_solved"] is True
    ra, dec = solved_centre(pocs)
    assert separation(image["ra_image"], image["dec_image"], ra, dec) * 3600 < 60
    solve = image["solve"]
    assert solve["engine"] == "astrometry.net"
    assert solve["matched_stars"] >= 30
    assert solve["rms_arcsec"] < 5
    assert solve["pixel_scale_arcsec"] == pytest.approx(10.3, abs=0.1)

    observation = stack.documents.get("observations", SEQUENCE_ID)
    assert (observation["ra"], observation["dec"]) == (image["ra_image"], image["dec_image"])
    from panoptes_network.sky import cells_of

    assert observation["healpix"] == cells_of(image["ra_image"], image["dec_image"])

    # The WCS is stored beside the frame's path in the processed bucket; the raw frame is untouched.
    stored = astropy_fits.Header.fromstring(stack.bucket(stack.settings.processed_bucket).read(WCS_PATH)[:2880 * 4])
    assert stored["CTYPE1"] == "RA---TAN-SIP"
    assert stack.names() == [UNSOLVED + ".fz"]
    restored = astropy_fits.open(io.BytesIO(stack.raw.read(UNSOLVED + ".fz")))
    assert "CTYPE1" not in restored[1].header

    # Redelivery of every message changes nothing.
    before = (stack.documents.get("images", IMAGE_ID), stack.documents.get("observations", SEQUENCE_ID))
    stack.replay(start)
    stack.drain(timeout=300)
    assert (stack.documents.get("images", IMAGE_ID), stack.documents.get("observations", SEQUENCE_ID)) == before
    assert stack.dead_letters() == []


def test_frame_with_no_stars_is_unsolved_with_the_reason(stack, pocs):
    header = astropy_fits.getheader(pocs / "unsolved.fits")
    blank = np.random.default_rng(3).normal(2148, 12, (700, 700)).astype(np.uint16)
    buffer = io.BytesIO()
    astropy_fits.PrimaryHDU(blank, header).writeto(buffer)
    stack.upload(buffer.getvalue(), UNSOLVED)
    stack.drain(timeout=300)
    image = stack.documents.get("images", IMAGE_ID)
    assert image["status"] == "unsolved" and image["plate_solved"] is False
    assert "stars detected" in image["solve"]["reason"]
    assert stack.documents.get("observations", SEQUENCE_ID)["ra"] is None
    assert stack.dead_letters() == []  # acknowledged, not retried


def test_corrupt_frame_is_dead_lettered_by_plate_solve(stack, pocs):
    compressed = fits.compress((pocs / "unsolved.fits").read_bytes()).data
    # The headers intact (record-image reads only those), the compressed pixels cut short.
    path = UNSOLVED + ".fz"
    stack.upload(compressed[: len(compressed) // 2], path)
    stack.drain(timeout=300)
    letters = stack.dead_letters()
    assert [letter["service"] for letter in letters] == ["plate-solve"]
    assert "not a readable FITS image" in letters[0]["reason"]
    assert stack.raw.read(path) == compressed[: len(compressed) // 2]  # never rewritten
    assert stack.documents.get("images", IMAGE_ID)["plate_solved"] is False
