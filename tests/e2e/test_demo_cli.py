"""``panoptes-network demo`` sends generated frames through the local pipeline, and ``up``
points an empty data directory at it."""

from __future__ import annotations

import argparse

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
    assert cli.main(["demo", "--nights", "1", "--seed", "4", "--workers", "1", "--transits", "0", "--data-dir", str(data_dir),
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
