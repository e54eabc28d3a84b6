"""The bucket port's contract, run against both adapters (files on disk; fake-gcs-server)."""

from __future__ import annotations

import numpy as np
import pytest

from panoptes_network import runtime
from panoptes_network.adapters.local_bucket import LocalStorage
from panoptes_network.ports.bucket import (
    ONLY_IF_ABSENT,
    BucketError,
    ObjectNotFound,
    PreconditionFailed,
    crc32c_hex,
    md5_hex,
)


@pytest.fixture
def buckets(backend):
    from panoptes_network.config import settings

    current = settings()
    if backend == "local":
        return runtime.bucket(current.rgb_bucket), runtime.bucket(current.temp_bucket)
    return runtime.bucket(current.rgb_bucket), runtime.bucket(current.temp_bucket)


def test_write_then_read_whole_and_ranges(buckets):
    bucket, _ = buckets
    data = bytes(range(256)) * 40
    info = bucket.write("a/b/c.bin", data, content_type="application/octet-stream", metadata={"k": "v"})
    assert info.size == len(data) and info.md5_hex == md5_hex(data) and info.generation > 0
    assert info.crc32c_hex == crc32c_hex(data)
    assert bucket.read("a/b/c.bin") == data
    assert bucket.read_range("a/b/c.bin", 10, 20) == data[10:20]
    assert bucket.read_range("a/b/c.bin", len(data) - 5, len(data) + 100) == data[-5:]
    assert bucket.read_range("a/b/c.bin", 0, 0) == b""
    assert bucket.info("a/b/c.bin").metadata == {"k": "v"}
    assert bucket.info("a/b/c.bin").content_type == "application/octet-stream"


def test_crc32c_write_knows_its_crc_and_gives_its_md5_when_asked(buckets):
    bucket, _ = buckets
    data = bytes(range(256)) * 4000
    info = bucket.write("crc/plane.fits", data, checksum="crc32c")
    assert info.crc32c_hex == crc32c_hex(data)
    assert info.md5_hex in (None, md5_hex(data))  # Cloud Storage knows it at once; the local store when asked
    assert bucket.md5("crc/plane.fits") == md5_hex(data)
    assert bucket.info("crc/plane.fits").md5_hex == md5_hex(data)  # and keeps it
    assert bucket.read("crc/plane.fits") == data


def test_a_bytes_like_array_is_written_as_its_bytes(buckets):
    bucket, _ = buckets
    data = np.arange(30_000, dtype=np.uint16).view(np.uint8)  # what fits.primary_image gives
    info = bucket.write("crc/array.fits", data, checksum="crc32c")
    assert bucket.read("crc/array.fits") == data.tobytes()
    assert info.size == data.nbytes and info.crc32c_hex == crc32c_hex(data.tobytes())


def test_crc32c_is_castagnoli():
    assert crc32c_hex(b"123456789") == "e3069283"  # the CRC-32C check value (RFC 3720 B.4)


def test_local_md5_reading_refuses_a_file_changed_behind_the_store(tmp_path):
    """Only the local store keeps its objects as files anyone can edit."""
    bucket = LocalStorage(tmp_path).bucket("panoptes-rgb-images")
    bucket.write("crc/edited.fits", b"SIMPLE  = T" * 100, checksum="crc32c")
    bucket.file_path("crc/edited.fits").write_bytes(b"SIMPLE  = F" * 100)
    with pytest.raises(BucketError, match="no longer holds what was written"):
        bucket.md5("crc/edited.fits")
    assert bucket.info("crc/edited.fits").md5_hex is None  # nothing wrong was kept


def test_local_file_holds_the_object_and_is_gone_after(buckets):
    bucket, _ = buckets
    data = bytes(range(256)) * 1000
    first = bucket.write("files/raw.cr2", data)
    with bucket.local_file("files/raw.cr2", if_generation_match=first.generation) as file:
        assert file.read_bytes() == data and file.suffix == ".cr2"
        bucket.write("files/raw.cr2", b"replaced meanwhile")
        assert file.read_bytes() == data  # still the generation asked for
    assert not file.exists()


def test_local_file_of_another_generation_or_of_nothing_is_refused(buckets):
    bucket, _ = buckets
    info = bucket.write("files/gen.cr2", b"one")
    with pytest.raises(PreconditionFailed):
        with bucket.local_file("files/gen.cr2", if_generation_match=info.generation + 1):
            pass
    with pytest.raises(ObjectNotFound):
        with bucket.local_file("files/none.cr2"):
            pass


def test_missing_objects_raise_not_found(buckets):
    bucket, _ = buckets
    with pytest.raises(ObjectNotFound):
        bucket.read("nope")
    with pytest.raises(ObjectNotFound):
        bucket.read_range("nope", 0, 10)
    with pytest.raises(ObjectNotFound):
        bucket.info("nope")
    with pytest.raises(ObjectNotFound):
        bucket.delete("nope")
    assert not bucket.exists("nope")


def test_only_if_absent_refuses_to_overwrite(buckets):
    bucket, _ = buckets
    bucket.write("x", b"first", if_generation_match=ONLY_IF_ABSENT)
    with pytest.raises(PreconditionFailed):
        bucket.write("x", b"second", if_generation_match=ONLY_IF_ABSENT)
    assert bucket.read("x") == b"first"


def test_generation_preconditions_on_write_read_and_delete(buckets):
    bucket, _ = buckets
    first = bucket.write("g", b"one")
    second = bucket.write("g", b"two", if_generation_match=first.generation)
    assert second.generation != first.generation
    with pytest.raises(PreconditionFailed):
        bucket.write("g", b"three", if_generation_match=first.generation)
    with pytest.raises(PreconditionFailed):
        bucket.read("g", if_generation_match=first.generation)
    assert bucket.read("g", if_generation_match=second.generation) == b"two"
    with pytest.raises(PreconditionFailed):
        bucket.delete("g", if_generation_match=first.generation)
    assert bucket.exists("g")
    bucket.delete("g", if_generation_match=second.generation)
    assert not bucket.exists("g")


def test_list_is_ordered_and_matches_prefix_literally(buckets):
    bucket, _ = buckets
    for name in ("b/2", "a/1", "a_/x", "a%/y", "A/z", "a/0"):
        bucket.write(name, name.encode())
    assert [info.name for info in bucket.list("a/")] == ["a/0", "a/1"]
    assert [info.name for info in bucket.list("a_")] == ["a_/x"]
    assert [info.name for info in bucket.list("a%")] == ["a%/y"]
    assert [info.name for info in bucket.list()] == sorted(["b/2", "a/1", "a_/x", "a%/y", "A/z", "a/0"])


def test_update_metadata_merges(buckets):
    bucket, _ = buckets
    bucket.write("m", b"data", metadata={"a": "1"})
    bucket.update_metadata("m", {"b": "2"})
    assert bucket.info("m").metadata == {"a": "1", "b": "2"}
    assert bucket.read("m") == b"data"


def test_move_between_buckets_keeps_content_and_adds_metadata(buckets):
    source, destination = buckets
    source.write("PAN001/file.mp4", b"video", metadata={"origin": "unit"})
    moved = source.move("PAN001/file.mp4", destination, "moved/file.mp4", metadata={"why": "test"})
    assert moved.name == "moved/file.mp4"
    assert destination.read("moved/file.mp4") == b"video"
    assert destination.info("moved/file.mp4").metadata == {"origin": "unit", "why": "test"}
    assert not source.exists("PAN001/file.mp4")
    with pytest.raises(ObjectNotFound):
        source.move("PAN001/file.mp4", destination, "moved/file.mp4")


def test_move_reuses_an_identical_copy_but_never_clobbers_a_different_one(buckets):
    source, destination = buckets
    source.write("same", b"content")
    destination.write("same", b"content")
    source.move("same", destination, "same")
    assert not source.exists("same")
    source.write("differs", b"new content")
    destination.write("differs", b"old content")
    with pytest.raises(PreconditionFailed):
        source.move("differs", destination, "differs")
    assert source.read("differs") == b"new content"
    assert destination.read("differs") == b"old content"


@pytest.mark.parametrize("name", ["PAN001/../escape.fits", "a/./b", "a//b", "100%/x", "sp ace/ü.fits"])
def test_any_object_name_round_trips_and_stays_inside_the_bucket(buckets, backend, name):
    bucket, _ = buckets
    bucket.write(name, b"payload")
    assert bucket.read(name) == b"payload"
    assert [info.name for info in bucket.list()] == [name]
    if backend == "local":
        assert bucket.file_path(name).resolve().is_relative_to(bucket.folder.resolve())
    bucket.delete(name)
    assert not bucket.exists(name)


def test_a_local_data_directory_from_before_crc32c_is_upgraded_in_place(tmp_path):
    import sqlite3

    bucket = LocalStorage(tmp_path).bucket("panoptes-raw-images")
    bucket.write("old/frame.fits", b"SIMPLE  = T" * 10)
    with sqlite3.connect(tmp_path / "buckets.sqlite") as connection:  # as an older version left it
        connection.execute("ALTER TABLE objects DROP COLUMN crc32c")

    reopened = LocalStorage(tmp_path).bucket("panoptes-raw-images")
    old = reopened.info("old/frame.fits")
    assert old.crc32c_hex is None and old.md5_hex == md5_hex(b"SIMPLE  = T" * 10)
    assert reopened.write("new/frame.fits", b"x" * 10).crc32c_hex == crc32c_hex(b"x" * 10)
