"""image-uploaded's routing table, and the handler's acceptance of both trigger forms."""

from __future__ import annotations

import json

import pytest

from panoptes_network import runtime
from panoptes_network.config import Settings
from panoptes_network.messages import StorageObject, encode_push_envelope, storage_cloud_event, storage_notification
from panoptes_network.pipeline.routing import decide
from panoptes_network.stack.services import load_app

SETTINGS = Settings.from_env({})
RAW = SETTINGS.raw_bucket
BASE = "PAN001/14d3bd/20180216T110623/20180216T112430"


@pytest.mark.parametrize(
    "name, action, target",
    [
        (BASE + ".fits", "publish", "compress-fits"),
        (BASE + ".fits.fz", "publish", "record-image"),
        (BASE + ".fz", "publish", "record-image"),
        (BASE + ".cr2", "publish", "make-rgb-fits"),
        (BASE + ".CR3", "publish", "make-rgb-fits"),
        (BASE + ".dng", "publish", "make-rgb-fits"),
        (BASE + ".mp4", "move", "panoptes-timelapse"),
        (BASE + ".jpg", "leave", None),
        ("PAN001/Tess_Sec21_Cam02/14d3bd/20180216T110623/20180216T112430.fits", "rename", RAW),
        (BASE + ".exe", "quarantine", "panoptes-temp"),
        ("PAN001/20180216T112430.fits", "quarantine", "panoptes-temp"),
        ("PAN001/../14d3bd/20180216T110623/20180216T112430.fits", "quarantine", "panoptes-temp"),
    ],
)
def test_routing_table(name, action, target):
    route = decide(StorageObject(RAW, name), SETTINGS)
    assert route.action == action
    assert (route.topic or route.bucket) == target
    if action == "quarantine":
        assert route.path == "quarantine/" + name and route.reason
    if action == "rename":
        assert route.path == BASE + ".fits"


def test_objects_of_other_buckets_are_ignored():
    assert decide(StorageObject("someone-elses", BASE + ".fits"), SETTINGS).action == "ignore"


@pytest.fixture
def local(monkeypatch, tmp_path):
    monkeypatch.setenv("PANOPTES_BACKEND", "local")
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(tmp_path))
    runtime.reset()
    yield
    runtime.reset()


def published(subscription: str) -> list[dict]:
    queue = runtime.topics()
    found = []
    while (delivery := queue.lease("test")) is not None:
        if delivery.subscription == subscription:
            found.append(json.loads(delivery.data))
        queue.ack(delivery)
    return found


def test_image_uploaded_accepts_the_eventarc_cloud_event(local):
    client = load_app("image-uploaded").test_client()
    event = storage_cloud_event(StorageObject(RAW, BASE + ".cr2", generation=3))
    response = client.post("/", json=event, headers={"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 200
    assert published("make-rgb-fits") == [{"bucket_path": BASE + ".cr2"}]


def test_image_uploaded_accepts_a_binary_mode_cloud_event(local):
    client = load_app("image-uploaded").test_client()
    event = storage_cloud_event(StorageObject(RAW, BASE + ".fits"))
    headers = {f"ce-{key}": value for key, value in event.items() if key != "data" and key != "datacontenttype"}
    response = client.post("/", json=event["data"], headers=headers)
    assert response.status_code == 200
    assert published("compress-fits") == [{"bucket_path": BASE + ".fits"}]


def test_image_uploaded_accepts_the_storage_notification_pushed_by_pubsub(local):
    client = load_app("image-uploaded").test_client()
    data, attributes = storage_notification(StorageObject(RAW, BASE + ".fits.fz", generation=5))
    response = client.post("/", json=encode_push_envelope(data, attributes, subscription="projects/p/subscriptions/s"))
    assert response.status_code == 200
    assert published("record-image") == [{"bucket_path": BASE + ".fits.fz"}]


def test_record_image_accepts_its_pubsub_cloud_event(local, pocs):
    runtime.bucket(RAW).write(BASE + ".fits.fz", (pocs / "solved.fits.fz").read_bytes())
    client = load_app("record-image").test_client()
    event = {
        "specversion": "1.0", "id": "1", "source": "//pubsub.googleapis.com/projects/p/topics/record-image",
        "type": "google.cloud.pubsub.topic.v1.messagePublished", "datacontenttype": "application/json",
        "data": encode_push_envelope({"bucket_path": BASE + ".fits.fz"}, message_id="77"),
    }
    response = client.post("/", json=event, headers={"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 200
    assert runtime.documents().get("images", "PAN001_14d3bd_20180216T112430")["exptime"] == 120.4


def test_compress_fits_without_an_envelope_is_a_400_with_the_reason(local):
    client = load_app("compress-fits").test_client()
    response = client.post("/", data="nothing")
    assert response.status_code == 400
    assert "not JSON" in response.get_json()["error"]
    response = client.post("/", json={"subscription": "compress-fits"})
    assert response.status_code == 400
    assert "push envelope" in response.get_json()["error"]
