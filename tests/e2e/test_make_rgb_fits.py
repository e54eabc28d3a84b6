"""Issue #4 end to end, on both backends: upload a raw frame (a generated DNG) to the raw
bucket, let image-uploaded route it and make-rgb-fits turn it into three planes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits as astropy_fits

from tests.conftest import REPOSITORY
from tests.dng import expected_level, lit_dng

SEQUENCE = "PAN001/14d3bd/20180216T110623"
RAW_PATH = f"{SEQUENCE}/20180216T112430.dng"
RGB_PATHS = [f"{SEQUENCE}/20180216T112430_{plane}.fits" for plane in "bgr"]  # in name order


def planes(stack) -> dict[str, astropy_fits.PrimaryHDU]:
    bucket = stack.bucket(stack.settings.rgb_bucket)
    found = {}
    for info in bucket.list():
        hdu = astropy_fits.open(io.BytesIO(bucket.read(info.name)))[0]
        found[info.name] = hdu
    return found


def rgb_objects(stack) -> dict[str, tuple[str, int]]:
    bucket = stack.bucket(stack.settings.rgb_bucket)
    return {info.name: (bucket.md5(info.name), info.generation) for info in bucket.list()}


@pytest.mark.parametrize("extension", [".dng", ".cr2", ".cr3"])
def test_raw_upload_gives_three_planes_and_keeps_the_original(stack, extension):
    raw_path = RAW_PATH.replace(".dng", extension)
    data = lit_dng(lit="r")
    stack.upload(data, raw_path)
    stack.drain()
    assert stack.dead_letters() == []
    assert stack.names() == [raw_path] and stack.raw.read(raw_path) == data  # the original stays
    found = planes(stack)
    assert sorted(found) == RGB_PATHS
    level = expected_level()
    for name, hdu in found.items():
        plane = name[-6]
        assert hdu.header["COLOR"] == plane
        assert hdu.header["IMAGEID"] == "PAN001_14d3bd_20180216T112430"
        assert hdu.header["SEQID"] == "PAN001_14d3bd_20180216T110623"
        assert hdu.header["RAWFILE"] == f"gs://{stack.settings.raw_bucket}/{raw_path}"
        assert hdu.header["EXPTIME"] == 120.0 and hdu.header["DATE-OBS"] == "2018-02-16T11:24:30"
        assert hdu.header["RAWPY DEMOSAIC_ALGORITHM"] == "AAHD"
        assert hdu.data.shape == (32, 48) and hdu.data.dtype == np.uint16
        if plane == "r":
            assert hdu.data == pytest.approx(level, rel=2e-4)
        else:
            assert hdu.data.max() <= 2


def test_rawpy_options_in_the_message_are_used_and_recorded(stack):
    stack.upload(lit_dng(lit="b"), RAW_PATH)
    stack.drain()
    stack.publish(stack.settings.rgb_topic, {"bucket_path": RAW_PATH,
                                             "rawpy_options": {"output_bps": 8, "half_size": False,
                                                               "demosaic_algorithm": "linear"}})
    stack.drain()
    assert stack.dead_letters() == []
    found = planes(stack)
    assert sorted(found) == RGB_PATHS
    blue = found[RGB_PATHS[0]]
    assert blue.data.shape == (64, 96) and blue.data.dtype == np.uint8  # replaced by the 8-bit, full-size run
    assert blue.header["RAWPY OUTPUT_BPS"] == 8 and blue.header["RAWPY DEMOSAIC_ALGORITHM"] == "LINEAR"
    assert np.median(blue.data) == pytest.approx(expected_level(output_bps=8), abs=1)


def test_invalid_rawpy_options_are_dead_lettered_with_the_reason(stack):
    stack.upload(lit_dng(), RAW_PATH)
    stack.drain()
    before = rgb_objects(stack)
    stack.publish(stack.settings.rgb_topic, {"bucket_path": RAW_PATH, "rawpy_options": {"output_bps": 12}})
    stack.publish(stack.settings.rgb_topic, {"bucket_path": RAW_PATH, "rawpy_options": {"sharpen": True}})
    stack.drain()
    reasons = sorted(letter["reason"] for letter in stack.dead_letters())
    assert len(reasons) == 2
    assert "'output_bps' must be 8 or 16" in reasons[0]
    assert "unknown rawpy option 'sharpen'" in reasons[1]
    assert all(letter["service"] == "make-rgb-fits" and letter["attempts"] is None
               for letter in stack.dead_letters())
    assert rgb_objects(stack) == before  # nothing rewritten


@pytest.mark.parametrize(
    "name, content, extension, reason",
    [
        ("zero-byte", b"", ".cr2", "is empty"),
        ("text", b"this is not a raw camera file\n" * 200, ".cr2", "not a raw camera file"),
        ("truncated", lit_dng()[:-2000], ".dng", "truncated"),
    ],
)
def test_bad_raw_files_are_dead_lettered_and_never_lost(stack, name, content, extension, reason):
    raw_path = RAW_PATH.replace(".dng", extension)
    stack.upload(content, raw_path)
    stack.drain()
    assert stack.names() == [raw_path] and stack.raw.read(raw_path) == content
    (letter,) = stack.dead_letters()
    assert letter["service"] == "make-rgb-fits"
    assert reason in letter["reason"] and raw_path in letter["reason"]
    assert letter["attempts"] is None  # dead-lettered on the first attempt, not retried
    assert stack.names(stack.settings.rgb_bucket) == []


def test_redelivery_rewrites_nothing_and_replaces_a_stale_plane(stack):
    start = datetime.now(timezone.utc)
    stack.upload(lit_dng(lit="g"), RAW_PATH)
    stack.drain()
    first = rgb_objects(stack)
    assert sorted(first) == RGB_PATHS
    stack.replay(start)
    stack.drain()
    assert rgb_objects(stack) == first  # same bytes, not even a new generation
    assert stack.dead_letters() == []

    # A plane left wrong by some earlier run is put right by the next delivery.
    rgb_bucket = stack.bucket(stack.settings.rgb_bucket)
    rgb_bucket.write(RGB_PATHS[1], b"SIMPLE  = stale")
    stack.replay(start)
    stack.drain()
    after = rgb_objects(stack)
    assert {name: md5 for name, (md5, _) in after.items()} == {name: md5 for name, (md5, _) in first.items()}
    assert stack.dead_letters() == []


def test_cli_upload_drain_ls_shows_the_planes(tmp_path):
    """What a user types, on the local backend: upload --as, drain, ls the RGB bucket."""
    frame = tmp_path / "frame.cr2"
    frame.write_bytes(lit_dng())
    env = {**os.environ, "PANOPTES_BACKEND": "local", "PANOPTES_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": str(REPOSITORY / "shared")}
    for key in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        env.pop(key, None)
    script = Path(sys.executable).parent / "panoptes-network"  # the installed command
    cli = [str(script)] if script.is_file() else [sys.executable, "-m", "panoptes_network.stack.cli"]
    raw_path = RAW_PATH.replace(".dng", ".cr2")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    uploaded = run("upload", str(frame), "--as", raw_path)
    assert uploaded.returncode == 0, uploaded.stderr
    drained = run("drain")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    listed = run("ls", "panoptes-rgb-images")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[-1] for line in listed.stdout.splitlines()] == RGB_PATHS
    assert Path(tmp_path / "data" / "buckets" / "panoptes-rgb-images" / RGB_PATHS[2]).is_file()
