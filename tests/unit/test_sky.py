"""The spatial index: a cone's cover never misses a position inside the cone, and stays
within Firestore's 30-value ``in``."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from hypothesis import given, settings, strategies as st

from panoptes_network import sky

ra_values = st.floats(0, 360, exclude_max=True)
dec_values = st.floats(-90, 90)


def points_in_cone(ra, dec, radius, count, seed):
    """Random points inside the cone, including some right on its edge."""
    rng = np.random.default_rng(seed)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    distance = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(radius)), 1, count)))
    distance[: count // 10] = radius * 0.999999  # the rim
    points = centre.directional_offset_by(rng.uniform(0, 360, count) * u.deg, distance * u.deg)
    return points.ra.deg, points.dec.deg


@settings(max_examples=60, deadline=None)
@given(ra=ra_values, dec=dec_values, radius=st.floats(0.001, 180), seed=st.integers(0, 2**32 - 1))
def test_cover_holds_every_position_inside_the_cone(ra, dec, radius, seed):
    cover = sky.cone_cover(ra, dec, radius)
    assert 1 <= len(cover.cells) <= sky.MAX_CELLS
    assert cover.order in sky.ORDERS
    cells = set(cover.cells)
    for point_ra, point_dec in zip(*points_in_cone(ra, dec, radius, 200, seed)):
        stored = sky.cells_of(float(point_ra), float(point_dec))[f"order{cover.order}"]
        assert stored in cells, (point_ra, point_dec)


@pytest.mark.parametrize("radius, finest", [(0.05, 10), (1, 6), (5, 4), (20, 2), (180, 0)])
def test_smaller_cones_use_finer_cells(radius, finest):
    cover = sky.cone_cover(301.56, 44.46, radius)
    assert cover.order == finest
    assert cover.filter() == (f"healpix.order{finest}", "in", list(cover.cells))


@settings(max_examples=100, deadline=None)
@given(ra1=ra_values, dec1=dec_values, ra2=ra_values, dec2=dec_values)
def test_separation_matches_astropy(ra1, dec1, ra2, dec2):
    expected = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).deg
    assert sky.separation(ra1, dec1, ra2, dec2) == pytest.approx(expected, abs=1e-9)


def test_position_prefers_the_plate_solved_centre():
    assert sky.position_of({"ra": 303.2, "dec": 46.0, "ra_mnt": 301.5, "dec_mnt": 44.4}) == sky.Position(
        303.2, 46.0, "plate-solved")
    assert sky.position_of({"ra": None, "dec": None, "ra_mnt": 301.5, "dec_mnt": 44.4}) == sky.Position(
        301.5, 44.4, "mount")
    assert sky.position_of({"ra_mnt": "n/a", "dec_mnt": 44.4}) is None
    assert sky.position_of({"ra_mnt": 10.0, "dec_mnt": 95.0}) is None  # off the sky
    assert sky.index_fields({}) == {}


def test_index_fields_nest_from_coarse_to_fine():
    cells = sky.index_fields({"ra": 38.53, "dec": 89.07})["healpix"]  # pole.fits, beside the pole
    assert list(cells) == [f"order{order}" for order in sky.ORDERS]
    for coarse, fine in zip(sky.ORDERS, sky.ORDERS[1:]):
        # Nested scheme: a cell's parent is its id shifted by two bits per order.
        assert cells[f"order{fine}"] >> (2 * (fine - coarse)) == cells[f"order{coarse}"]
