"""process-observation's pure parts: the run id, message parsing, document values, and the
demo's transit sequences."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from panoptes_network import demo
from panoptes_network.deadletter import PermanentError
from panoptes_network.messages import BadMessage, PubSubMessage
from panoptes_network.photometry import PhotometryParams, picid_of
from panoptes_network.ports.documents import to_jsonable
from panoptes_network.pipeline import process

SEQUENCE = "PAN001_14d3bd_20240801T090000"


def test_run_id_follows_sequence_params_version_and_frames_only():
    frames = ["PAN001_14d3bd_20240801T090215", "PAN001_14d3bd_20240801T090000"]
    base = process.run_id(SEQUENCE, PhotometryParams(), frames)
    assert base.startswith(SEQUENCE + "_") and len(base) == len(SEQUENCE) + 13
    assert process.run_id(SEQUENCE, PhotometryParams(), list(reversed(frames))) == base  # order of reading
    assert process.run_id(SEQUENCE, PhotometryParams(min_frames=5), frames) != base
    assert process.run_id(SEQUENCE, PhotometryParams(), frames[:1]) != base
    assert process.run_id(SEQUENCE, PhotometryParams(), frames, pipeline_version="photometry-0") != base


def message(data: bytes) -> PubSubMessage:
    return PubSubMessage(data=data)


def test_messages_without_a_sequence_or_with_bad_params_are_refused_with_the_reason():
    sequence, params = process.parse_message(message(b'{"sequence_id": "S", "params": {"min_frames": 4}}'))
    assert sequence == "S" and params.min_frames == 4
    with pytest.raises(BadMessage, match="sequence_id"):
        process.parse_message(message(b'{"params": {}}'))
    with pytest.raises(PermanentError, match="unknown photometry parameters: radius"):
        process.parse_message(message(b'{"sequence_id": "S", "params": {"radius": 3}}'))
    with pytest.raises(PermanentError, match="min_frames must be a int"):
        process.parse_message(message(b'{"sequence_id": "S", "params": {"min_frames": "many"}}'))
    with pytest.raises(PermanentError, match="params must be an object"):
        process.parse_message(message(b'{"sequence_id": "S", "params": [1]}'))


def test_document_values_have_no_nan_and_no_numpy():
    moment = datetime(2024, 8, 1, 9, tzinfo=timezone.utc)
    value = to_jsonable({"a": np.array([1.5, np.nan]), "b": np.float32(2), "c": [moment], "d": np.int64(3),
                         "e": (np.bool_(True), math.inf)})
    assert value == {"a": [1.5, None], "b": 2.0, "c": ["2024-08-01T09:00:00Z"], "d": 3, "e": [True, None]}
    assert type(value["d"]) is int and type(value["b"]) is float


def test_demo_plans_a_transit_of_a_real_hot_jupiter_in_the_middle_of_its_sequence():
    with demo._offline_astropy():
        [sequence] = demo.transit_sequences(3, date(2026, 11, 29),
                                            not_after=datetime(2026, 11, 30, 12, tzinfo=timezone.utc))
        demo.observe(sequence)
    planet = next(p for p in demo.HOT_JUPITERS if p.host == sequence.target.name)
    [transit] = sequence.signals
    assert transit.period_days == planet.period_days and transit.depth == planet.depth
    assert sequence.times[0] < transit.epoch - timedelta(hours=planet.duration_hours / 2)
    assert transit.epoch + timedelta(hours=planet.duration_hours / 2) < sequence.times[-1]
    # The signal is on the host: the brightest catalog star at the host's position, G < 10.
    from panoptes_network.catalog import stars_in_footprint

    host = stars_in_footprint(sequence.target.ra, sequence.target.dec, 0.02, 0.02)[0]
    assert picid_of(transit.star_id) == picid_of(int(host["id"]), int(host["hip"])) and host["mag"] < 10
    spec = demo.frame_spec(sequence, 0, 0, sequence.shape)
    assert spec.signals == (transit,) and (spec.height, spec.width) == demo.TRANSIT_FRAME_SHAPE


def test_the_demo_transit_host_is_measured_not_saturated():
    """On an autumn night HD 189733 (G 7.4) would be the demo's transit host, and it
    saturates every 120 s frame, so its lightcurve would be nothing but flags: the demo
    takes hosts of G >= TRANSIT_HOST_MIN_MAG, unsaturated mid-sequence (the transit's middle)."""
    from panoptes_network.catalog import stars_in_footprint
    from panoptes_network.photometry import measure_frame

    with demo._offline_astropy():
        [sequence] = demo.transit_sequences(1, date(2026, 10, 1),
                                            not_after=datetime(2026, 10, 3, tzinfo=timezone.utc))
        demo.observe(sequence)
        frame = demo.simulated(sequence, sequence.frames // 2, 0, sequence.shape)
    stars = stars_in_footprint(wcs=frame.truth.wcs, shape=frame.data.shape)
    measured = measure_frame(frame.data, frame.header, frame.truth.wcs, stars)
    host = list(measured.picid).index(picid_of(sequence.signals[0].star_id))
    assert measured.mag[host] >= demo.TRANSIT_HOST_MIN_MAG
    assert (measured.flags[host] == 0).all(), measured.flags[host]
