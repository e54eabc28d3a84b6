"""Demo frames look like a unit's: POCS headers, dark skies, targets above the horizon, the
airmass and Moon values astropy gives for that time and place, and the simulator's sky.

Frames are rendered at a small ``SHAPE`` here (the headers and the plan do not depend on
it), so the tests stay quick; one frame is checked at the demo's own cut-out size."""

from __future__ import annotations

import io
from datetime import date, datetime, timezone

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_sun
from astropy.io import fits as astropy_fits
from astropy.time import Time

from panoptes_network import demo, sky
from panoptes_network.ids import parse_bucket_path


SHAPE = (48, 72)


@pytest.fixture(scope="module")
def made():
    frames = {}
    result = demo.generate(frames.__setitem__, nights=2, last_night=date(2024, 3, 10), seed=3, shape=SHAPE, transits=0)
    return result, frames


def test_frames_carry_every_pocs_keyword_and_a_valid_path(made, pocs):
    result, frames = made
    assert result.frames == len(frames) > 0
    assert set(result.units) <= {site.unit_id for site in demo.SITES}
    pocs_keywords = {key for key in astropy_fits.getheader(pocs / "tiny.fits") if key not in ("CHECKSUM", "DATASUM")}
    for bucket_path, data in list(frames.items())[:20]:
        path = parse_bucket_path(bucket_path)
        with astropy_fits.open(io.BytesIO(data)) as hdus:
            header, pixels = hdus[0].header, hdus[0].data
        assert pocs_keywords <= set(header)
        assert header["OBSERVER"] == path.unit_id and header["INSTRUME"] == path.camera_id
        assert header["IMAGEID"] == path.image_id and header["SEQID"] == path.sequence_id
        assert header["DATE-OBS"] == path.image_time.strftime("%Y-%m-%dT%H:%M:%S")
        assert pixels.shape == SHAPE and pixels.dtype == np.uint16
        assert 2048 < np.median(pixels) < 11530


def test_frames_are_taken_in_the_dark_on_targets_above_the_horizon(made):
    result, frames = made
    for data in list(frames.values())[::7]:
        header = astropy_fits.getheader(io.BytesIO(data))
        place = EarthLocation.from_geodetic(header["LONG-OBS"] * u.deg, header["LAT-OBS"] * u.deg,
                                            header["ELEV-OBS"] * u.m)
        moment = Time(header["DATE-OBS"])
        frame = AltAz(obstime=moment, location=place)
        with demo._offline_astropy():
            sun = get_sun(moment).transform_to(frame).alt.deg
            target = SkyCoord(header["RA-MNT"] * u.deg, header["DEC-MNT"] * u.deg).transform_to(frame)
        assert sun < demo.DARK_SUN_ALTITUDE_DEG
        assert target.alt.deg > demo.HORIZON_DEG
        assert header["AIRMASS"] == pytest.approx(float(target.secz), rel=1e-6)
        assert 0 <= header["MOONFRAC"] <= 1 and 0 <= header["MOONSEP"] <= 180


def test_same_seed_same_frames_and_no_frame_in_the_future():
    first, second = {}, {}
    demo.generate(first.__setitem__, nights=1, last_night=date(2024, 3, 10), seed=5, shape=SHAPE, transits=0)
    demo.generate(second.__setitem__, nights=1, last_night=date(2024, 3, 10), seed=5, shape=SHAPE, transits=0)
    assert first.keys() == second.keys() and all(first[key] == second[key] for key in first)
    with demo._offline_astropy():
        planned = demo.plan(1, date(2024, 3, 10), seed=5, not_after=datetime(2024, 3, 10, 12, tzinfo=timezone.utc))
    assert all(sequence.start < datetime(2024, 3, 10, 12, tzinfo=timezone.utc) for sequence in planned)


def test_a_cut_out_shows_the_catalog_stars_where_its_wcs_puts_them(made):
    """At the demo's own size: no frame carries a WCS (units upload them unsolved, and
    plate-solve solves them); the mount is on the target, the field's centre off it; and
    the brightest catalog stars are bright pixels where the true WCS puts them."""
    from astropy.wcs import WCS

    from panoptes_network.simulator import camera
    from panoptes_network.simulator.stars import catalog_stars

    result, frames = made
    headers = [astropy_fits.getheader(io.BytesIO(data)) for data in frames.values()]
    assert headers and not any(key in header for header in headers
                               for key in ("CTYPE1", "CRVAL1", "CD1_1", "PC1_1", "A_ORDER"))

    with demo._offline_astropy():
        sequence = demo.plan(1, date(2024, 3, 10), seed=5)[0]
        demo.observe(sequence)
        path, data = demo.frame(sequence, 0, 0)
    with astropy_fits.open(io.BytesIO(data)) as hdus:
        header, pixels = hdus[0].header, hdus[0].data.astype(float)
    assert pixels.shape == demo.FRAME_SHAPE
    assert (header["RA-MNT"], header["DEC-MNT"]) == (round(sequence.target.ra, 5), round(sequence.target.dec, 5))
    truth = demo.simulated(sequence, 0, 0).truth.wcs
    stars = catalog_stars(*truth.wcs.crval, 2.0, 2024.2)
    x, y = truth.all_world2pix(stars.ra, stars.dec, 0)
    inside = (x > 10) & (x < pixels.shape[1] - 10) & (y > 10) & (y < pixels.shape[0] - 10)
    brightest = np.argsort(stars.mag[inside])[:5]
    background = np.median(pixels)
    for column, row in zip(np.rint(x[inside][brightest]).astype(int), np.rint(y[inside][brightest]).astype(int)):
        star = pixels[row - 1 : row + 2, column - 1 : column + 2].mean()
        assert star > background + 20 * camera.READ_NOISE / camera.GAIN
    assert not WCS(header).has_celestial
    offset = sky.separation(header["RA-MNT"], header["DEC-MNT"], *truth.wcs.crval)
    assert 0 < offset < 3  # the mount a little off the field's true centre, as on a unit


def test_a_nights_sequences_do_not_depend_on_the_hour_or_the_other_nights():
    """A demo run later the same day only adds the sequences that have happened since, and a
    night's sequences are the same whether it is planned alone or among others."""
    last = date(2024, 3, 10)
    early, late = (datetime(2024, 3, 11, hour, tzinfo=timezone.utc) for hour in (4, 23))
    with demo._offline_astropy():
        before, after = demo.plan(2, last, seed=5, not_after=early), demo.plan(2, last, seed=5, not_after=late)
        alone = demo.plan(1, last, seed=5, not_after=late)
    assert before and len(after) > len(before)
    assert all(sequence in after for sequence in before)
    assert alone and all(sequence in after for sequence in alone)
