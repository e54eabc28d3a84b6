"""The demo's promise (issue 13): after ``demo`` and the processing sweep, a hot-Jupiter
host's lightcurve shows its transit, and a comparison star's does not.

The demo's own transit sequence (:func:`demo.transit_sequences`: a real host, the planet's
depth and duration, the transit mid-sequence) is rendered with the demo's own frames, and
uploaded as a unit uploads them; then the stack drains, the sweep
(``process --pending``, as ``up`` and ``demo`` run it) sends the observation to
process-observation, and the stored lightcurves are read back. The frames carry the
simulator's true WCS in their header, put there by this test (as frames solved on the
unit are): plate solving 80 frames would take minutes and is plate-solve's own test; the
demo's headers may or may not carry one. The demo's ordinary sequences are left out: they
are not what this test is about. Local backend: the transit is the point, not the cloud.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pytest

from panoptes_network import demo
from panoptes_network.photometry import picid_of
from panoptes_network.photometry.transits import trapezoid
from panoptes_network.photometry.truth import combine_channels
from panoptes_network.pipeline import process
from panoptes_network.simulator.noise import scintillation

NIGHT = date(2026, 11, 29)
NOT_AFTER = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)


def _frames(sequence):
    for index in range(sequence.frames):
        made = demo.simulated(sequence, index, 0, sequence.shape)
        made.header.extend(made.truth.wcs.to_header(relax=True).cards)  # solved on the unit
        yield demo.frame_path(sequence, index, 0).path, made.to_fits_bytes()


def _lightcurve(document, exptime, airmass, elevation):
    """(days, flux, err, usable) of a stored lightcurve, r, g, b combined (their shared
    scintillation from the noise model, the run's airmass)."""
    channels = document["channels"]
    flux = np.array([[np.nan if v is None else v for v in channels[c]["flux"]] for c in "rgb"], float)
    err = np.array([[np.nan if v is None else v for v in channels[c]["flux_err"]] for c in "rgb"], float)
    flags = np.array([channels[c]["flags"] for c in "rgb"])
    usable = (flags == 0) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    combined, sigma, ok = combine_channels(flux, err, usable, scintillation(exptime, airmass, elevation))
    days = np.array([datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in document["time_utc"]])
    return days / 86400, combined, sigma, ok


def _depth_at(days, flux, sigma, mid, duration, ingress_fraction):
    """The depth (and its 1 sigma) of the truth's trapezoid, at the truth's time, on a flat
    baseline: weighted least squares."""
    design = np.column_stack([np.ones_like(days), -trapezoid(days, mid, duration, ingress_fraction)])
    weights = 1 / sigma**2
    normal = design.T @ (design * weights[:, None])
    coefficients = np.linalg.solve(normal, design.T @ (weights * flux))
    residual = flux - design @ coefficients
    scale = max(1.0, float(np.sum(weights * residual**2)) / (len(days) - 2))
    covariance = np.linalg.inv(normal) * scale
    return coefficients[1] / coefficients[0], float(np.sqrt(covariance[1, 1])) / coefficients[0]


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_after_the_demo_and_the_sweep_the_hosts_lightcurve_shows_its_transit(stack):
    with demo._offline_astropy():
        [sequence] = demo.transit_sequences(1, NIGHT, 1, not_after=NOT_AFTER)
        demo.observe(sequence)
        for path, data in _frames(sequence):
            stack.upload(data, path)
    stack.drain(timeout=600)
    [transit] = sequence.signals

    sent = process.publish(stack.settings, process.pending(stack.documents))  # the sweep, as `up` runs it
    assert len(sent) == 1
    stack.drain(timeout=600)
    assert stack.dead_letters() == []
    [run] = stack.documents.query(process.RUNS)
    assert run.data["status"] == "complete" and run.data["num_frames_used"] >= 0.9 * sequence.frames
    airmass = np.array(run.data["quality"]["airmass"], float)
    elevation = sequence.site.elevation

    host = picid_of(transit.star_id)
    [curve] = stack.documents.query(process.LIGHTCURVES, [("picid", "==", host)])
    days, flux, sigma, usable = _lightcurve(curve.data, demo.EXPTIME_SECONDS, airmass, elevation)
    assert usable.mean() > 0.9  # the host is measured (not saturated, not flagged) on nearly every frame
    days, flux, sigma = days[usable], flux[usable], sigma[usable]
    mid, duration = transit.epoch.timestamp() / 86400, transit.duration_hours / 24

    # The dip, where and as deep as the demo put it, by the lightcurve's own errors: clearly
    # there (over 3 sigma; WASP-18's 1% with the demo's 1.2 h of baseline is expected at ~6.5
    # sigma) and consistent with the truth (within 4 sigma).
    depth, depth_err = _depth_at(days, flux, sigma, mid, duration, transit.ingress_fraction)
    assert depth / depth_err > 3, (depth, depth_err)
    assert abs(depth - transit.depth) < 4 * depth_err, (depth, depth_err, transit.depth)

    # A comparison star (the nearest in brightness, measured on every frame) has no such dip.
    others = [doc.data for doc in stack.documents.query(process.LIGHTCURVES,
                                                         [("processed_observation_id", "==", run.id)])
              if doc.data["picid"] != host and doc.data["best_rms"] is not None]
    measured = [c for c in others if all(f == 0 for f in c["channels"]["g"]["flags"])]
    assert measured
    comparison = min(measured, key=lambda c: abs(c["mag"] - curve.data["mag"]))
    days, flux, sigma, usable = _lightcurve(comparison, demo.EXPTIME_SECONDS, airmass, elevation)
    flat, flat_err = _depth_at(days[usable], flux[usable], sigma[usable], mid, duration, transit.ingress_fraction)
    assert flat_err < transit.depth / 3  # precise enough that a dip like the host's would stand out
    assert abs(flat) < 4 * flat_err, (comparison["picid"], flat, flat_err)
