"""Fixtures shared by every test: the real POCS frames, the emulators, and a stack on
either backend.

- Frames come from ``../shared/data/pocs/`` beside the repository. Absent, the tests
  that need them skip with the reason, except under ``CI=true`` where they fail.
- ``emulators`` starts Firestore and Pub/Sub (gcloud) and fake-gcs-server once per
  session on free ports. Without gcloud the gcp tests skip, except under ``CI=true``.
- ``backend`` runs a test once per backend; ``stack`` gives it a fresh data directory
  (local) or freshly reset emulators (gcp), plus upload / drain helpers.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from panoptes_network import runtime
from panoptes_network.stack.emulators import EmulatorError, Emulators, gcloud_available

REPOSITORY = Path(__file__).resolve().parents[1]
POCS_DATA = Path(os.environ.get("PANOPTES_TEST_DATA", REPOSITORY.parent / "shared" / "data" / "pocs"))
IN_CI = os.environ.get("CI", "").lower() == "true"
EMULATOR_PROJECT = "panoptes-test"

# Fast retries so that failure paths finish in seconds, not minutes.
TEST_DELIVERY_POLICY = {
    "PANOPTES_MAX_ATTEMPTS": "5",
    "PANOPTES_MIN_BACKOFF": "0.2",
    "PANOPTES_MAX_BACKOFF": "1",
}


def skip_or_fail(reason: str) -> None:
    """Outside CI a missing prerequisite skips; in CI it is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must run in CI)")
    pytest.skip(reason)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        skip_or_fail(f"{name} is not installed")
    return path


@pytest.fixture(scope="session")
def pocs() -> Path:
    if not (POCS_DATA / "tiny.fits").is_file():
        skip_or_fail(f"the POCS test frames are not at {POCS_DATA}")
    return POCS_DATA


@pytest.fixture(scope="session")
def emulators():
    reason = gcloud_available()
    if reason:
        skip_or_fail(f"Google emulators unavailable: {reason}")
    emulators = Emulators(project=EMULATOR_PROJECT)
    try:
        emulators.start()
    except EmulatorError as error:
        skip_or_fail(f"Google emulators did not start: {error}")
    yield emulators
    emulators.stop()


def reset_emulators(emulators: Emulators, settings) -> None:
    """Empty Firestore, the buckets and the Pub/Sub topology, keeping the uploads topic."""
    env = emulators.environment
    request = urllib.request.Request(
        f"http://{env['FIRESTORE_EMULATOR_HOST']}/emulator/v1/projects/{emulators.project}/databases/(default)/documents",
        method="DELETE",
    )
    for attempt in range(20):
        try:
            urllib.request.urlopen(request, timeout=30).close()
            break
        except urllib.error.HTTPError as error:
            # 409 while a transaction of the previous test is still open: wait for it.
            if error.code != 409 or attempt == 19:
                raise
            time.sleep(0.5)

    from google.api_core import exceptions as google_exceptions
    from google.cloud import pubsub_v1

    subscriber, publisher = pubsub_v1.SubscriberClient(), pubsub_v1.PublisherClient()
    for subscription in subscriber.list_subscriptions(project=f"projects/{emulators.project}"):
        subscriber.delete_subscription(subscription=subscription.name)
    for topic in publisher.list_topics(project=f"projects/{emulators.project}"):
        if not topic.name.endswith("/" + emulators.uploads_topic):
            publisher.delete_topic(topic=topic.name)

    from panoptes_network.adapters.gcs_bucket import storage_client

    client = storage_client(emulators.project)
    for name in settings.buckets:
        try:
            bucket = client.get_bucket(name)
        except google_exceptions.NotFound:
            client.create_bucket(name)
            continue
        for blob in client.list_blobs(bucket):
            blob.delete()


@pytest.fixture(params=["local", "gcp"])
def backend(request, monkeypatch, tmp_path):
    """Configure this test for one backend; yields the backend's name."""
    for key, value in TEST_DELIVERY_POLICY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PANOPTES_BACKEND", request.param)
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(tmp_path / "data"))
    if request.param == "gcp":
        emulators = request.getfixturevalue("emulators")
        for key, value in emulators.environment.items():
            monkeypatch.setenv(key, value)
        from panoptes_network.config import settings

        reset_emulators(emulators, settings())
    else:
        for key in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
            monkeypatch.delenv(key, raising=False)
    runtime.reset()
    yield request.param
    runtime.reset()


class Stack:
    """The pipeline on one backend, driven as a user would: upload, then wait for it."""

    def __init__(self, backend: str):
        from panoptes_network.config import settings

        self.backend = backend
        self.settings = settings()
        self.server = None
        if backend == "gcp":
            from panoptes_network.stack.gcp import ensure_topology
            from panoptes_network.stack.server import StackServer

            self.server = StackServer(self.settings, "127.0.0.1", 0).start_background()
            ensure_topology(self.settings, self.server.url)

    @property
    def raw(self):
        return runtime.bucket(self.settings.raw_bucket, self.settings)

    def bucket(self, name: str):
        return runtime.bucket(name, self.settings)

    @property
    def documents(self):
        return runtime.documents(self.settings)

    def upload(self, source: Path | bytes, bucket_path: str):
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        return self.raw.write(bucket_path, data)

    def publish(self, topic: str, payload: dict) -> str:
        return runtime.topics(self.settings).publish(topic, payload)

    def drain(self, timeout: float = 120) -> None:
        """Wait until every message, and every retry, has been handled."""
        if self.backend == "local":
            from panoptes_network.stack.dispatcher import drain

            assert drain(timeout, workers=1), "the local queue did not empty"
        else:
            assert self.server.wait_until_idle(1.0, timeout), "the emulator stack did not settle"

    def replay(self, since) -> None:
        """Deliver every message published since ``since`` once more (at-least-once delivery)."""
        if self.backend == "local":
            replayed = runtime.topics(self.settings).replay(since.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
            assert replayed > 0
        else:
            from panoptes_network.stack.gcp import replay

            replay(self.settings, since)

    def names(self, bucket: str | None = None, prefix: str = "") -> list[str]:
        return [info.name for info in runtime.bucket(bucket or self.settings.raw_bucket, self.settings).list(prefix)]

    def dead_letters(self) -> list[dict]:
        from panoptes_network import deadletter

        return [doc.data for doc in self.documents.query(deadletter.COLLECTION)]

    def close(self) -> None:
        if self.server:
            self.server.shutdown()


@pytest.fixture
def stack(backend):
    stack = Stack(backend)
    yield stack
    stack.close()


def dump(value) -> str:
    return json.dumps(value, default=str, sort_keys=True)
