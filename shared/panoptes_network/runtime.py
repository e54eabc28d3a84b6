"""The adapters of this process, chosen by ``PANOPTES_BACKEND`` and made once.

Handlers ask here for a bucket, the topics or the documents; they never import an
adapter. Clients are cached per configuration (backend, data directory, project,
emulator hosts), so a test or the CLI that changes the environment gets fresh ones.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from panoptes_network.config import Settings, settings as current_settings
from panoptes_network.messages import StorageObject, storage_notification
from panoptes_network.ports.bucket import Bucket, ObjectInfo
from panoptes_network.ports.documents import DocumentStore
from panoptes_network.ports.topics import Topics
from panoptes_network.wiring import subscriptions

EMULATOR_VARIABLES = ("STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")

_cache: dict[tuple, Any] = {}
_lock = threading.RLock()


def _key(settings: Settings, what: str) -> tuple:
    return (what, settings, tuple(os.environ.get(name) for name in EMULATOR_VARIABLES), os.getpid())


def _cached(settings: Settings, what: str, make: Callable[[], Any]) -> Any:
    key = _key(settings, what)
    with _lock:
        if key not in _cache:
            _cache[key] = make()
        return _cache[key]


def reset() -> None:
    """Forget every client (tests call this between configurations)."""
    with _lock:
        _cache.clear()


def _local_storage(settings: Settings):
    from panoptes_network.adapters.local_bucket import LocalStorage

    def notifier(bucket_name: str):
        if bucket_name != settings.raw_bucket:
            return None

        def publish_finalize(info: ObjectInfo) -> None:
            data, attributes = storage_notification(
                StorageObject(info.bucket, info.name, info.generation, info.size, info.content_type)
            )
            topics(settings).publish(settings.uploads_topic, data, attributes)

        return publish_finalize

    return LocalStorage(settings.data_dir, on_finalize=notifier)


def local_storage(settings: Settings | None = None):
    """The local backend's buckets as a whole: their notification outbox, their temporary files."""
    settings = settings or current_settings()
    return _cached(settings, "storage", lambda: _local_storage(settings))


def bucket(name: str, settings: Settings | None = None) -> Bucket:
    settings = settings or current_settings()
    if settings.backend == "local":
        return local_storage(settings).bucket(name)
    from panoptes_network.adapters.gcs_bucket import GCSBucket, storage_client

    client = _cached(settings, "storage", lambda: storage_client(settings.project))
    return GCSBucket(client, name)


def topics(settings: Settings | None = None) -> Topics:
    settings = settings or current_settings()
    if settings.backend == "local":
        from panoptes_network.adapters.local_queue import LocalQueue

        return _cached(settings, "topics", lambda: LocalQueue(settings.data_dir, subscriptions(settings)))
    from panoptes_network.adapters.pubsub_topics import PubSubTopics

    return _cached(settings, "topics", lambda: PubSubTopics(settings.project))


def documents(settings: Settings | None = None) -> DocumentStore:
    settings = settings or current_settings()
    if settings.backend == "local":
        from panoptes_network.adapters.sqlite_documents import SQLiteDocuments

        return _cached(settings, "documents", lambda: SQLiteDocuments(settings.data_dir / "documents.sqlite"))
    from panoptes_network.adapters.firestore_documents import FirestoreDocuments

    return _cached(settings, "documents", lambda: FirestoreDocuments.for_project(settings.project))
