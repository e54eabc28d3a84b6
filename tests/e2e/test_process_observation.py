"""process-observation end to end (issue 13): a simulated sequence of small frames is
uploaded as units upload them, drained, processed, and the run, its lightcurves and its
stars are found, in the store and through the data explorer (on both backends).

The frames carry the simulator's true WCS in their header (as frames solved on the unit
do), so record-image records them solved and no plate-solving runs: solving cut-outs is
plate-solve's test, and it would add minutes here. The frames are rendered once per
session and reused.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from panoptes_network import crashpoints, fits
from panoptes_network.ids import BucketPath
from panoptes_network.photometry import PhotometryParams
from panoptes_network.pipeline import process
from tests.e2e.test_cli import run
from tests.explorer_data import assert_browsable_in_the_explorer

START = datetime(2024, 8, 1, 9, 0, tzinfo=timezone.utc)  # HD 189733 high over Mauna Loa
FIELD = (300.18, 22.71)  # a dense field near the galactic plane: ~50 stars G < 10 on 600 x 400 px
FRAMES = 10  # the default min_frames
TOPIC = "process-observation"


@pytest.fixture(scope="session")
def sequence_frames():
    """(bucket path, .fits.fz bytes, image id) of a 10-frame sequence, truth WCS in each header."""
    from panoptes_network.simulator.night import simulate_sequence

    made = []
    for frame in simulate_sequence(*FIELD, START, FRAMES, width=600, height=400, seed=3, field_name="HD 189733"):
        frame.header.extend(frame.truth.wcs.to_header(relax=True).cards)
        path = BucketPath(frame.spec.unit_id, frame.spec.camera_id, START, frame.spec.time, ".fits.fz")
        made.append((path.path, fits.compress(frame.to_fits_bytes()).data, path.image_id))
    return made


def sequence_id(frames) -> str:
    from panoptes_network.ids import parse_bucket_path

    return parse_bucket_path(frames[0][0]).sequence_id


def upload(stack, frames) -> str:
    for path, data, _ in frames:
        stack.upload(data, path)
    stack.drain(timeout=300)
    return sequence_id(frames)


def runs(stack) -> list:
    return stack.documents.query(process.RUNS)


@pytest.mark.parametrize("backend", ["local", "gcp"], indirect=True)
def test_sequence_processed_into_a_run_lightcurves_and_stars(stack, sequence_frames):
    sequence = upload(stack, sequence_frames)
    assert process.pending(stack.documents) == [sequence]  # quiet since 2024, solved, never processed
    stack.publish(TOPIC, {"sequence_id": sequence})
    stack.publish(TOPIC, {"sequence_id": sequence})  # delivered twice: one run
    stack.drain(timeout=600)
    assert stack.dead_letters() == []

    [run_doc] = runs(stack)
    data = run_doc.data
    assert data["status"] == "complete" and data["reason"] is None
    assert run_doc.id == process.run_id(sequence, PhotometryParams(), [f[2] for f in sequence_frames])
    assert sorted(data["frames_used"]) == sorted(f[2] for f in sequence_frames)
    assert data["num_frames_used"] == FRAMES and data["frames_rejected"] == []
    assert data["num_stars"] >= 20
    assert len(data["quality"]["fwhm_px"]) == FRAMES and data["summary"]["median_fwhm_px"] > 1
    assert data["hot_pixels"]["400x600"]["own"] > 100  # the camera's, kept for its next observations
    assert stack.bucket(stack.settings.processed_bucket).exists(
        process.hot_pixel_map_path("14d3bd", (400, 600), sequence))
    assert data["rms_vs_mag"]["channel"] == "g" and len(data["rms_vs_mag"]["rms"]) >= 10

    curves = stack.documents.query(process.LIGHTCURVES, [("processed_observation_id", "==", run_doc.id)])
    assert len(curves) == data["num_stars"]
    measured = [doc for doc in curves if doc.data["best_rms"] is not None]  # not saturated in every channel
    assert len(measured) >= 20
    curve = measured[0].data
    assert len(curve["time_bjd_tdb"]) == FRAMES and len(curve["channels"]["g"]["flux"]) == FRAMES
    assert curve["time_bjd_tdb"][0] == pytest.approx(2460523.88, abs=0.01)  # 2024-08-01 09:01 UTC
    by_picid = stack.documents.query(process.LIGHTCURVES, [("picid", "==", curve["picid"])])
    assert [doc.id for doc in by_picid] == [measured[0].id]
    star = stack.documents.get(process.STARS, curve["picid"])
    assert star["num_lightcurves"] == 1 and star["best_rms"] == pytest.approx(curve["best_rms"])

    observation = stack.documents.get("observations", sequence)
    assert observation["processing_state"] == "processed" and observation["latest_run_id"] == run_doc.id
    assert process.pending(stack.documents) == []
    assert_browsable_in_the_explorer(stack, sequence, run_doc.id)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_every_frame_is_measured_with_the_observations_hot_pixels_repaired(stack, sequence_frames):
    """The first pass maps the hot pixels the simulator put on the camera, from the frames
    alone (nothing else: no star pixel), the same for every frame and on a second call, and
    the frames' FWHM; the second pass takes their levels off every frame and puts every
    annulus at the observation's FWHM."""
    import numpy as np

    from panoptes_network.photometry.hotpixels import as_flat
    from panoptes_network.simulator.frame import dark_scale, hot_pixels
    from panoptes_network.simulator.night import sequence_specs

    sequence = upload(stack, sequence_frames)
    images = sorted(stack.documents.query("images", [("sequence_id", "==", sequence)]), key=lambda doc: doc.id)
    survey = process.survey_frames(images, PhotometryParams(), stack.settings)
    maps = survey.hot_pixels
    mapped = maps[images[0].id].pixels
    assert all(np.array_equal(m.pixels, mapped) for m in maps.values())
    again = process.survey_frames(images, PhotometryParams(), stack.settings).hot_pixels[images[0].id]
    # (NaN: a hot pixel saturated on every frame it was a spike on has no level, in any order)
    assert np.array_equal(again.pixels, mapped)
    assert np.array_equal(again.levels, maps[images[0].id].levels, equal_nan=True)
    # in another order, the levels move only by the noise of each frame's dark-current scale
    reversed_order = process.survey_frames(images[::-1], PhotometryParams(), stack.settings).hot_pixels[images[0].id]
    assert np.array_equal(reversed_order.pixels, mapped)
    assert np.allclose(reversed_order.levels, maps[images[0].id].levels, rtol=0.01, equal_nan=True)
    xy, rates = hot_pixels("14d3bd", 600, 400)
    truth = as_flat(xy, 600)
    assert set(mapped.tolist()) <= set(truth.tolist())
    # most over 150 ADU (here 92%, 86% before pairs of hot pixels were found: of the 88 missed,
    # 42 sit under a star's light, found only as the field drifts off them, which it barely does
    # over these 10 frames; 17 have one or more hot same-colour neighbours)
    bright = truth[rates * 120 / 1.5 > 150]  # ADU in 120 s
    assert np.isin(bright, mapped).mean() > 0.88, np.isin(bright, mapped).mean()
    measurements = process.measure_frames(images, PhotometryParams(), stack.settings)
    # and every annulus at the observation's FWHM, the median of the frames' (each frame's own wanders)
    widths = [m.fwhm_px for m in measurements]
    assert min(widths) < max(widths) and abs(survey.fwhm_px - np.median(widths)) < 0.01 * survey.fwhm_px
    inner = PhotometryParams().annulus_inner_fwhm * survey.fwhm_px
    assert all(m.annulus_px[0] == pytest.approx(inner) for m in measurements)
    # every one but the saturated (left for the saturation flag), at the frame's own level: the
    # sensor's temperature moves it (the simulator's truth), and the frame's scale follows
    assert all(0.98 * len(mapped) < m.hot_pixels_repaired <= len(mapped) for m in measurements)
    specs = {BucketPath(s.unit_id, s.camera_id, START, s.time, ".fits.fz").image_id: s
             for s in sequence_specs(*FIELD, START, FRAMES, width=600, height=400, seed=3, field_name="HD 189733")}
    ratios = np.array([m.hot_pixel_scale / dark_scale(specs[m.image_id]) for m in measurements])
    assert np.ptp(ratios) < 0.01 * ratios.mean(), ratios


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_the_cameras_other_observations_join_its_hot_pixel_map(stack, sequence_frames):
    """With its camera named, the observation's own map is kept in the processed bucket, and
    the camera's other observations of the same frame shape join it: a pixel that at least
    0.3 of them (the 10 nearest in time) mapped. Another camera's, another shape's and an
    unreadable map are left out."""
    import numpy as np

    from panoptes_network.photometry.hotpixels import HotPixelMap, ObservationMap

    sequence = upload(stack, sequence_frames)
    images = sorted(stack.documents.query("images", [("sequence_id", "==", sequence)]), key=lambda doc: doc.id)
    own = process.survey_frames(images, PhotometryParams(), stack.settings).hot_pixels[images[0].id].pixels
    first = process.survey_frames(images, PhotometryParams(), stack.settings, sequence, "14d3bd")
    assert first.summary == {"400x600": {"own": len(own), "mapped": len(own), "other_observations": []}}
    bucket = stack.bucket(stack.settings.processed_bucket)
    kept = ObservationMap.from_bytes(bucket.read(process.hot_pixel_map_path("14d3bd", (400, 600), sequence)))
    assert kept.frames == FRAMES and np.array_equal(kept.map.pixels, own)

    free = sorted(set(range(0, 240_000, 97)) - set(own.tolist()))[:3]  # pixels not on the own map

    def keep(sequence_id, pixels, camera="14d3bd", shape=(400, 600)):
        bucket.write(process.hot_pixel_map_path(camera, shape, sequence_id),
                     ObservationMap(sequence_id, shape, 10, HotPixelMap(np.array(pixels), np.full(len(pixels), 500.0))
                                    ).to_bytes())

    keep("PAN001_14d3bd_20240701T090000", [free[0], free[1]])
    keep("PAN001_14d3bd_20240702T090000", [free[0]])
    keep("PAN001_14d3bd_20240703T090000", [free[0]])
    keep("PAN001_14d3bd_20240704T090000", [free[2]])
    keep("PAN001_ee04d1_20240705T090000", [free[1]], camera="ee04d1")  # the unit's other camera
    keep("PAN001_14d3bd_20240706T090000", [free[1]], shape=(800, 1200))  # another cut-out
    bucket.write(process.hot_pixel_map_path("14d3bd", (400, 600), "PAN001_14d3bd_20240601T090000"), b"torn")
    joined = process.survey_frames(images, PhotometryParams(), stack.settings, sequence, "14d3bd")
    summary = joined.summary["400x600"]
    # nearest first; 0.3 of 4 readable maps is 2 votes: free[0] (3 votes) joins, free[1] and free[2] (1) do not
    assert summary["other_observations"] == [f"PAN001_14d3bd_2024070{d}T090000" for d in (4, 3, 2, 1)]
    assert joined.hot_pixels[images[0].id].pixels.tolist() == sorted(own.tolist() + [free[0]])
    assert summary == {"own": len(own), "mapped": len(own) + 1, "other_observations": summary["other_observations"]}


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_pending_takes_quiet_solved_observations_with_new_frames(stack, sequence_frames):
    """--pending: quiet for the period, every frame solved (or unsolvable), newer than its run."""
    sequence = upload(stack, sequence_frames[:3])
    last = max(START + timedelta(seconds=135 * n) for n in range(3))
    documents = stack.documents
    assert process.pending(documents, now=last + timedelta(minutes=30)) == []  # not quiet yet
    assert process.pending(documents, now=last + timedelta(minutes=61)) == [sequence]
    waiting = sequence_frames[0][2]
    documents.set("images", waiting, {"plate_solved": False, "status": "received"})
    assert process.pending(documents, now=last + timedelta(minutes=61)) == []  # a frame not yet solved
    documents.set("images", waiting, {"status": "unsolved"})  # unsolvable: no reason to wait
    assert process.pending(documents, now=last + timedelta(minutes=61)) == [sequence]
    documents.set("images", waiting, {"plate_solved": True, "status": "solved"})

    # Three frames: recorded as not enough, acknowledged; no longer pending...
    stack.publish(TOPIC, {"sequence_id": sequence})
    stack.drain(timeout=300)
    assert stack.dead_letters() == []
    [run_doc] = runs(stack)
    assert run_doc.data["status"] == "not_enough_frames"
    assert run_doc.data["reason"] == "3 solved frames, at least 10 needed"
    assert stack.documents.get("observations", sequence)["processing_state"] == "not_enough_frames"
    assert process.pending(documents, now=last + timedelta(days=1)) == []
    # ... until a new frame arrives: pending again, and it makes a new run; the old one stays.
    upload(stack, sequence_frames[3:4])
    assert process.pending(documents, now=last + timedelta(days=1)) == [sequence]
    stack.publish(TOPIC, {"sequence_id": sequence, "params": {"min_frames": 4}})
    stack.drain(timeout=300)
    assert sorted(doc.data["status"] for doc in runs(stack)) == ["complete", "not_enough_frames"]
    assert process.pending(documents, now=last + timedelta(days=1)) == []


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_bad_params_and_corrupt_input_are_dead_lettered(stack, sequence_frames):
    sequence = upload(stack, sequence_frames[:2])
    stack.publish(TOPIC, {"sequence_id": sequence, "params": {"aperture_radius": 3}})
    stack.drain(timeout=300)
    [letter] = stack.dead_letters()
    assert letter["service"] == TOPIC and "unknown photometry parameters: aperture_radius" in letter["reason"]
    assert runs(stack) == []

    # A solved frame whose stored WCS is not FITS.
    image = sequence_frames[1][2]
    stack.bucket(stack.settings.processed_bucket).write("broken.wcs.fits", b"not a FITS header" * 10)
    stack.documents.set("images", image, {"wcs_path": "broken.wcs.fits"})
    stack.publish(TOPIC, {"sequence_id": sequence, "params": {"min_frames": 2}})
    stack.drain(timeout=300)
    letters = [letter for letter in stack.dead_letters() if "WCS" in letter["reason"]]
    assert len(letters) == 1 and image in letters[0]["reason"]
    [run_doc] = runs(stack)
    assert run_doc.data["status"] == "failed" and image in run_doc.data["reason"]
    assert stack.documents.get("observations", sequence)["processing_state"] == "failed"


@pytest.mark.parametrize("backend", ["local"], indirect=True)
@pytest.mark.parametrize("point", ["process-observation:lightcurves-written", "process-observation:stars-updated"])
def test_a_run_killed_mid_way_is_finished_by_the_redelivery_without_duplicates(stack, sequence_frames, point):
    sequence = upload(stack, sequence_frames[:4])
    stack.publish(TOPIC, {"sequence_id": sequence, "params": {"min_frames": 4}})
    result = run(stack.settings.data_dir, "drain", "--workers", "1", env={"PANOPTES_CRASH_AT": point})
    assert result.returncode == crashpoints.EXIT_STATUS, f"did not die at {point}: {result.stderr[-2000:]}"
    [run_doc] = runs(stack)
    assert run_doc.data["status"] == "running"
    stack.drain(timeout=300)  # the redelivery

    [run_doc] = runs(stack)
    assert run_doc.data["status"] == "complete"
    curves = stack.documents.query(process.LIGHTCURVES)
    assert len(curves) == run_doc.data["num_stars"] > 0
    counts = [stack.documents.get(process.STARS, c.data["picid"])["num_lightcurves"] for c in curves]
    assert counts == [1] * len(curves)
    assert stack.dead_letters() == []
