"""``panoptes-network demo`` sends generated frames through the local pipeline, and ``up``
points an empty data directory at it."""

from __future__ import annotations

import argparse
import time

import pytest

from panoptes_network import runtime
from panoptes_network.config import settings
from panoptes_network.stack import cli


def test_demo_command_records_observations_through_the_pipeline(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PANOPTES_BACKEND", "local")
    for key in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(key, raising=False)
    runtime.reset()
    data_dir = tmp_path / "data"
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(data_dir))

    cli._offer_demo(settings(), argparse.Namespace(no_demo_prompt=False))  # stdin is not a terminal here
    assert "panoptes-network demo" in capsys.readouterr().out

    # Small cut-outs keep the test quick; the pipeline treats them as it treats any frame.
    assert cli.main(["demo", "--nights", "1", "--seed", "4", "--workers", "1", "--transits", "0",
                     "--data-dir", str(data_dir),
                     "--frame-shape", "96x144"]) == 0
    out = capsys.readouterr().out
    assert "every message delivered" in out
    documents = runtime.documents(settings())
    observations = documents.query("observations")
    assert observations and all("healpix" in doc.data for doc in observations)
    assert documents.count("images") == sum(doc.data["num_images"] for doc in observations)
    raw = [info.name for info in runtime.bucket(settings().raw_bucket).list()]
    assert raw and all(name.endswith(".fits.fz") for name in raw)  # compressed by compress-fits
    assert documents.query("dead_letters") == []
    # Then the sweep: every observation processed once (these tiny frames: not enough frames).
    assert "observation(s) sent to process-observation" in out
    runs = documents.query("processed_observations")
    assert sorted(doc.data["sequence_id"] for doc in runs) == sorted(doc.id for doc in observations)
    assert all(doc.data["processing_state"] in ("processed", "not_enough_frames") for doc in observations)
    runtime.reset()


def test_demo_takes_every_option_drain_reads():
    """demo drains after uploading through command_drain, which reads drain's options
    (--settle on the gcp backend among them)."""
    from panoptes_network.stack.cli import build_parser

    parser = build_parser()
    demo, drain = vars(parser.parse_args(["demo"])), vars(parser.parse_args(["drain"]))
    assert set(drain) - {"run"} <= set(demo)
    assert (demo["timeout"], drain["timeout"]) == (900.0, 600.0)
    assert (demo["full_size"], demo["frame_shape"]) == (False, None)
    assert vars(parser.parse_args(["demo", "--frame-shape", "560x840"]))["frame_shape"] == (560, 840)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_drain_delivers_while_the_demo_uploads_and_ends_only_after_it(stack, pocs):
    """`demo` drains while it uploads (dispatcher.drain's ``during``): the workers deliver a
    frame as soon as it lands, and an idle queue mid-upload does not end them."""
    from panoptes_network.stack.dispatcher import drain

    sequence = "PAN001/14d3bd/20160909T081152"
    first, second = f"{sequence}/20160909T081226.fits", f"{sequence}/20160909T081434.fits.fz"
    compressed_while_uploading = []

    def upload() -> None:
        stack.upload(pocs / "tiny.fits", first)
        queue, deadline = runtime.topics(stack.settings), time.monotonic() + 60
        while queue.has_unfinished() and time.monotonic() < deadline:
            time.sleep(0.1)  # the workers deliver its every message meanwhile
        compressed_while_uploading.append(first + ".fz" in stack.names())
        time.sleep(1.0)  # the queue empty for five of their polls: they must wait for the rest
        stack.upload(pocs / "solved.fits.fz", second)

    assert drain(120, workers=2, during=upload)
    assert compressed_while_uploading == [True]
    assert stack.names() == [first + ".fz", second]
    assert stack.documents.get("observations", "PAN001_14d3bd_20160909T081152")["num_images"] == 2
    assert stack.dead_letters() == []
