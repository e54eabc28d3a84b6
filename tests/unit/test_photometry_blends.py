"""Blends: a star's aperture also holds the light of stars the catalog does not list (it
stops at G 10), which dilutes its transits. The simulator renders those stars (G 10-13,
seeded per sky cell), so the truth of a blend is the same frames rendered without them.

The star here is real: Gaia DR3 1828091364303030912 (G 9.60) in HD 189733's field, with an
uncatalogued G 10.07 star 5.8 px away, inside its aperture (~9 px radius).

Noise: the host's g+r+b differential flux scatters about 0.8% a frame (its noise floor with
scintillation); over 16 frames in and 16 out of the dip, a depth's error is ~0.3% (the test
computes it from the lightcurve's own errors), so the 5% dip and its dilution to ~3.1% are
each many sigma apart.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from panoptes_network.photometry import PhotometryParams, build_lightcurves
from panoptes_network.photometry.truth import combined_flux, simulate_observation
from panoptes_network.simulator import Transit
from panoptes_network.simulator.stars import CATALOG_LIMIT

pytestmark = pytest.mark.slow

HOST = 1828091364303030912  # G 9.60
CENTRE = (299.40, 23.40)  # the host 0.5 deg from the cut-out's centre: its own sky, ~40 catalog stars around it
START = datetime(2024, 8, 10, 8, 0, tzinfo=timezone.utc)
SIZE = (600, 400)
FRAMES = 32
CADENCE_S = 135.0
DEPTH = 0.05  # deep, so one short night shows the dilution beyond its noise


@pytest.fixture(scope="module")
def blended():
    # The dip starts after frame 16 and lasts past the end: frames 0-15 out, 16-31 in.
    middle = START + timedelta(seconds=16 * CADENCE_S)
    signal = Transit(HOST, middle + timedelta(hours=1.5), 10.0, DEPTH, 3.0, ingress_fraction=0.001)
    # no hot pixels: the truth's 3 frames would map fewer than the observation's 32 (one under a
    # star is found only as the field drifts off it), and the blend test is not about them
    observation = simulate_observation(*CENTRE, START, FRAMES, width=SIZE[0], height=SIZE[1], seed=5,
                                       readout=CADENCE_S - 120, signals=(signal,), params=PhotometryParams(),
                                       hot_pixels=False)
    bare = simulate_observation(*CENTRE, START, 3, width=SIZE[0], height=SIZE[1], seed=5,
                                readout=CADENCE_S - 120, faint_limit=CATALOG_LIMIT, params=PhotometryParams(),
                                build=False, hot_pixels=False)
    return observation, bare


def _depth(result, star):
    flux, err, usable = combined_flux(result, star)
    out, inside = usable[:16], usable[16:]
    a, b = flux[:16][out], flux[16:][inside]
    depth = 1 - np.mean(b) / np.mean(a)
    sigma = np.hypot(np.std(a, ddof=1) / np.sqrt(len(a)), np.std(b, ddof=1) / np.sqrt(len(b)))
    return depth, sigma


def _clean_g(measurement) -> dict:
    """picid -> g flux of the stars a frame measured without a flag."""
    clean = ~measurement.flags.any(axis=1)
    return dict(zip(measurement.picid[clean], measurement.flux_e[clean, 1]))


def test_a_stars_flux_excess_is_the_light_of_its_uncatalogued_neighbours(blended):
    """The pipeline's excess (from catalog magnitudes alone, over the frames before the dip)
    against the truth: each star's aperture flux with the faint stars rendered over its flux
    without them, relative to the field's typical star as the pipeline's is. Compared on
    the stars with no catalog neighbour within 40 px (a catalog neighbour's light is in both
    renders, so the truth would not count it; the pipeline rightly does) and on the host.
    Tolerance 5% of the aperture's light: the truth has ~1% noise (3 frames), and the
    pipeline's reference rests on ~25 stars' zero points and apertures that each catch a
    slightly different share of their star (their spread, ~2%, is what sets it)."""
    observation, bare = blended
    before_dip = build_lightcurves(observation.measurements[:16], PhotometryParams())
    ratios = []
    for with_faint, without in zip(observation.measurements, bare.measurements):
        a, b = _clean_g(with_faint), _clean_g(without)
        ratios.append({p: a[p] / b[p] for p in a.keys() & b.keys()})
    truth = np.array([np.median([r.get(p, np.nan) for r in ratios]) for p in before_dip.picid])
    truth = truth / np.nanmedian(truth) - 1
    measured = before_dip.flux_excess[1]

    first = observation.measurements[0]
    where = dict(zip(first.picid, zip(first.x, first.y)))
    xy = np.array([where.get(p, (np.nan, np.nan)) for p in before_dip.picid])
    apart = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(apart, np.inf)
    host = before_dip.index(str(HOST))
    isolated = (np.nanmin(apart, axis=1) > 40) & np.isfinite(truth) & (measured != 0)
    assert isolated[host] and isolated.sum() >= 8
    assert truth[host] > 0.4  # the blend is real: the G 10.07 star adds ~60% of the host's light
    misfit = (1 + measured) / (1 + truth) - 1
    assert np.all(np.abs(misfit[isolated]) < 0.05), list(zip(measured[isolated], truth[isolated]))
    assert before_dip.lightcurve(host).summary["g"]["flux_excess"] == pytest.approx(measured[host])


def test_a_blended_stars_dip_is_measured_at_its_own_depth(blended):
    """The host's 5% dip, in its lightcurve: at its own depth (within 4 sigma) once the
    blend's share is taken out; diluted by the blend (more than 4 sigma shallow) without."""
    observation, _ = blended
    result = observation.result
    host = result.index(str(HOST))
    depth, sigma = _depth(result, host)
    assert sigma < 0.005
    assert abs(depth - DEPTH) < 4 * sigma, (depth, sigma)

    diluted = build_lightcurves(observation.measurements, replace(PhotometryParams(), correct_blends=False))
    depth_diluted, sigma_diluted = _depth(diluted, diluted.index(str(HOST)))
    assert DEPTH - depth_diluted > 4 * sigma_diluted, (depth_diluted, sigma_diluted)
    expected = DEPTH / (1 + result.flux_excess[1, host])
    assert abs(depth_diluted - expected) < 4 * sigma_diluted
