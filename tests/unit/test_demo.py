"""Demo frames look like a unit's: POCS headers, dark skies, targets above the horizon, and the
airmass and Moon values astropy gives for that time and place."""

from __future__ import annotations

import io
from datetime import date, datetime, timezone

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_sun
from astropy.io import fits as astropy_fits
from astropy.time import Time

from panoptes_network import demo
from panoptes_network.ids import parse_bucket_path


@pytest.fixture(scope="module")
def made():
    frames = {}
    result = demo.generate(frames.__setitem__, nights=2, last_night=date(2024, 3, 10), seed=3)
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
        assert pixels.shape == demo.FRAME_SHAPE and pixels.dtype.kind in "ui"
        assert 2000 < np.median(pixels) < 16383


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
    demo.generate(first.__setitem__, nights=1, last_night=date(2024, 3, 10), seed=5)
    demo.generate(second.__setitem__, nights=1, last_night=date(2024, 3, 10), seed=5)
    assert first.keys() == second.keys() and all(first[key] == second[key] for key in first)
    with demo._offline_astropy():
        planned = demo.plan(1, date(2024, 3, 10), seed=5, not_after=datetime(2024, 3, 10, 12, tzinfo=timezone.utc))
    assert all(sequence.start < datetime(2024, 3, 10, 12, tzinfo=timezone.utc) for sequence in planned)
