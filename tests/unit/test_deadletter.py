"""Dead letters keep a bounded copy of the data and never erase one another (issue 11, items 5 and 6)."""

from __future__ import annotations

import hashlib
import json

import pytest

from panoptes_network import deadletter, runtime


@pytest.fixture
def docs(backend):
    return runtime.documents()


def letters(docs) -> list[dict]:
    return [doc.data for doc in docs.query(deadletter.COLLECTION, order_by=[("first_time", "asc")])]


def test_a_huge_payload_keeps_an_excerpt_with_its_size_and_hash_and_is_not_redrivable(docs):
    data = json.dumps({"bucket_path": "PAN001/x/" + "é" * 60_000 + ".fits"}).encode()
    assert len(data) > deadletter.DATA_LIMIT
    deadletter.record(docs, service="record-image", reason="too big", data=data, message_id="1")
    (letter,) = letters(docs)
    assert letter["data_truncated"] is True and letter["data_size"] == len(data)
    assert letter["data_sha256"] == hashlib.sha256(data).hexdigest()
    assert len(letter["data"].encode()) <= deadletter.EXCERPT_BYTES and data.decode().startswith(letter["data"])
    with pytest.raises(deadletter.NotRedrivable, match=f"excerpt of its {len(data)} bytes"):
        deadletter.original_data(letter)


def test_redrive_skips_a_truncated_letter_and_says_why(docs):
    from panoptes_network import redrive
    from panoptes_network.config import settings

    data = b'{"bucket_path": "' + b"x" * (deadletter.DATA_LIMIT + 1) + b'"}'
    deadletter.record(docs, service="compress-fits", reason="gave up", data=data, message_id="1", attempts=5)
    (outcome,) = redrive.redrive(settings())
    assert outcome.action == redrive.SKIPPED
    assert outcome.detail == (f"cannot be redriven: only an excerpt of its {len(data)} bytes was kept "
                              f"(sha256 {hashlib.sha256(data).hexdigest()})")
    assert letters(docs)[0]["redriven"] is None


def test_deployed_a_finalize_event_is_left_to_reconcile(docs):
    from panoptes_network import redrive
    from panoptes_network.config import settings

    deadletter.record(docs, service="eventarc-us-central1-image-uploaded-1-sub-2", reason="gave up", attempts=5,
                      data=b'{"bucket": "panoptes-raw-images", "name": "PAN001/x.fits"}', message_id="1")
    (outcome,) = redrive.redrive(settings(), deployed=True)
    assert outcome.action == redrive.SKIPPED and "reconcile --fix" in outcome.detail
    (outcome,) = redrive.redrive(settings(), dry_run=True)  # the emulators and the local stack read that topic
    assert outcome.action == redrive.WOULD_REDRIVE and outcome.detail == f"to {settings().uploads_topic}"


@pytest.mark.parametrize("data", [b'{"bucket_path": "PAN001/14d3bd/20160909T081152/20160909T081226.fits"}',
                                  b"\xff\x00 not text", b""])
def test_a_small_payload_is_kept_whole_for_redrive(docs, data):
    deadletter.record(docs, service="compress-fits", reason="r", data=data, message_id="9")
    (letter,) = letters(docs)
    assert letter["data_truncated"] is False and deadletter.original_data(letter) == data


def test_a_reused_message_id_with_another_payload_keeps_both_and_a_redelivery_updates_one(docs):
    first, second = b'{"bucket_path": "a.fits"}', b'{"bucket_path": "b.fits"}'
    deadletter.record(docs, service="compress-fits", reason="gave up", data=first, message_id="42", attempts=5)
    deadletter.record(docs, service="compress-fits", reason="gave up", data=second, message_id="42", attempts=5)
    deadletter.record(docs, service="compress-fits", reason="gave up again", data=first, message_id="42",
                      attempts=7)
    kept = letters(docs)
    assert [deadletter.original_data(letter) for letter in kept] == [first, second]
    assert [(letter["attempts"], letter["reason"]) for letter in kept] == [(7, "gave up again"), (5, "gave up")]
    assert kept[0]["first_time"] < kept[0]["time"]


def test_letters_recorded_before_these_fields_still_read():
    assert deadletter.original_data({"data": "base64:/wA="}) == b"\xff\x00"
    assert deadletter.original_data({"data": '{"a": 1}'}) == b'{"a": 1}'
    assert deadletter.is_permanent({"attempts": None}) and not deadletter.is_permanent({"attempts": 5})
