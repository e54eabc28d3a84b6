import base64
import json

import pytest

from panoptes_network.messages import (
    BadMessage,
    StorageObject,
    bucket_path_of,
    decode_push_envelope,
    encode_push_envelope,
    finalized_object,
    message_from_cloud_event,
    storage_cloud_event,
    storage_notification,
)


def test_push_envelope_round_trip():
    envelope = encode_push_envelope({"bucket_path": "PAN001/x.fits"}, {"a": "b"}, message_id="42",
                                    subscription="projects/p/subscriptions/s")
    message = decode_push_envelope(json.loads(json.dumps(envelope)))
    assert message.json() == {"bucket_path": "PAN001/x.fits"}
    assert message.attributes == {"a": "b"} and message.message_id == "42"
    assert message.subscription == "projects/p/subscriptions/s"
    assert bucket_path_of(message) == "PAN001/x.fits"


def test_decodes_the_push_format_pubsub_sends():
    # As the Pub/Sub emulator pushed it (both spellings of the ids are present).
    body = {"subscription": "projects/panoptes-test/subscriptions/tst1-push",
            "message": {"publishTime": "2026-11-25T09:55:02.962Z", "data": "eyJhIjoxfQ==",
                        "publish_time": "2026-11-25T09:55:02.962Z", "messageId": "1",
                        "attributes": {"k": "v"}, "message_id": "1"}}
    message = decode_push_envelope(body)
    assert message.json() == {"a": 1} and message.message_id == "1"
    assert message.publish_time == "2026-11-25T09:55:02.962Z"


@pytest.mark.parametrize(
    "body, reason",
    [
        (None, "not a JSON object"),
        ([], "not a JSON object"),
        ({}, "no 'message'"),
        ({"message": {"data": "!!!"}}, "not valid base64"),
        ({"message": {"data": 5}}, "not a base64 string"),
        ({"message": {"data": "", "attributes": {"a": 1}}}, "attributes"),
    ],
)
def test_bad_envelopes_say_why(body, reason):
    with pytest.raises(BadMessage, match=reason):
        decode_push_envelope(body)


@pytest.mark.parametrize("data, reason", [(b"not json", "not JSON"), (b"[1]", "not an object"),
                                          (b"{}", "no 'bucket_path'"),
                                          (b'{"bucket_path": "PAN001/\\ud800"}', "lone surrogate"),
                                          (b"[" * 5000 + b"]" * 5000, "nests deeper")])
def test_payload_problems_say_why(data, reason):
    message = decode_push_envelope(encode_push_envelope(data))
    with pytest.raises(BadMessage, match=reason):
        bucket_path_of(message)


def test_storage_cloud_event_gives_the_object():
    obj = StorageObject("panoptes-raw-images", "PAN001/a.fits", generation=17, size=10)
    assert finalized_object(storage_cloud_event(obj)) == StorageObject(
        "panoptes-raw-images", "PAN001/a.fits", generation=17, size=10)


def test_storage_notification_inside_a_pubsub_cloud_event_gives_the_object():
    obj = StorageObject("panoptes-raw-images", "PAN001/a.fits", generation=17, size=10)
    data, attributes = storage_notification(obj)
    event = {"type": "google.cloud.pubsub.topic.v1.messagePublished",
             "data": encode_push_envelope(data, attributes)}
    assert finalized_object(event) == obj


def test_other_storage_events_are_ignored_and_non_notifications_refused():
    data, attributes = storage_notification(StorageObject("b", "n"))
    attributes["eventType"] = "OBJECT_DELETE"
    event = {"type": "google.cloud.pubsub.topic.v1.messagePublished", "data": encode_push_envelope(data, attributes)}
    assert finalized_object(event) is None
    plain = {"type": "google.cloud.pubsub.topic.v1.messagePublished", "data": encode_push_envelope(b"{}")}
    with pytest.raises(BadMessage, match="not a Cloud Storage notification"):
        finalized_object(plain)
    with pytest.raises(BadMessage, match="neither"):
        finalized_object({"type": "something.else", "data": {}})


def test_message_from_a_pubsub_cloud_event():
    event = {"type": "google.cloud.pubsub.topic.v1.messagePublished",
             "data": {"message": {"data": base64.b64encode(b'{"bucket_path": "p"}').decode(), "messageId": "9"}}}
    assert bucket_path_of(message_from_cloud_event(event)) == "p"
    with pytest.raises(BadMessage):
        message_from_cloud_event({"type": "google.cloud.storage.object.v1.finalized", "data": {}})
