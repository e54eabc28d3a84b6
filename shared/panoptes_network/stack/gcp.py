"""The local stack on the gcp backend: topics and push subscriptions to this machine.

With the emulators (``*_EMULATOR_HOST``) this makes the whole chain real: a write to the
raw bucket makes fake-gcs-server publish a storage notification, Pub/Sub pushes it to
``/image-uploaded/``, that handler publishes on a topic, Pub/Sub pushes to the next
service, and so on, with Pub/Sub's own retries and dead-letter policy.
"""

from __future__ import annotations

import os
from datetime import datetime

from google.api_core import exceptions as google_exceptions
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2, timestamp_pb2

from panoptes_network import log
from panoptes_network.adapters.local_queue import DeliveryPolicy
from panoptes_network.config import Settings
from panoptes_network.wiring import subscriptions

MIN_DELIVERY_ATTEMPTS = 5  # Pub/Sub's lower bound for a dead-letter policy
MAX_STACK_BACKOFF = 10.0  # keeps "no request for a while" a sound test of "nothing pending"
DEAD_LETTER_SUBSCRIPTION = "panoptes-dead-letter-stack"


def using_emulators() -> bool:
    return bool(os.environ.get("PUBSUB_EMULATOR_HOST"))


def stack_backoff(policy: DeliveryPolicy) -> tuple[float, float]:
    maximum = min(policy.max_backoff, MAX_STACK_BACKOFF)
    return min(policy.min_backoff, maximum), maximum


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def ensure_topic(publisher: pubsub_v1.PublisherClient, path: str) -> None:
    try:
        publisher.create_topic(name=path)
    except google_exceptions.AlreadyExists:
        pass


def ensure_push_subscription(
    subscriber: pubsub_v1.SubscriberClient,
    name: str,
    topic: str,
    endpoint: str,
    dead_letter_topic: str | None,
    policy: DeliveryPolicy,
) -> None:
    minimum, maximum = stack_backoff(policy)
    request = {
        "name": name,
        "topic": topic,
        "push_config": {"push_endpoint": endpoint},
        "ack_deadline_seconds": int(min(600, max(10, policy.ack_deadline))),
        "retry_policy": {"minimum_backoff": _duration(minimum), "maximum_backoff": _duration(maximum)},
        # On the emulators, keep acknowledged messages so they can be replayed (seek).
        "retain_acked_messages": using_emulators(),
    }
    if dead_letter_topic:
        request["dead_letter_policy"] = {
            "dead_letter_topic": dead_letter_topic,
            "max_delivery_attempts": max(MIN_DELIVERY_ATTEMPTS, policy.max_attempts),
        }
    try:
        subscriber.create_subscription(request=request)
    except google_exceptions.AlreadyExists:
        # Same name from an earlier run: point it at this run's URL.
        subscriber.modify_push_config(subscription=name, push_config={"push_endpoint": endpoint})


def replay(settings: Settings, since: datetime) -> None:
    """Deliver again everything published since ``since``, by seeking each subscription."""
    subscriber = pubsub_v1.SubscriberClient()
    moment = timestamp_pb2.Timestamp()
    moment.FromDatetime(since)
    for subscription in subscriptions(settings):
        path = subscriber.subscription_path(settings.project, subscription.name)
        subscriber.seek(request={"subscription": path, "time": moment})


def ensure_buckets(settings: Settings) -> None:
    """Create the four buckets on the storage emulator (never on real Cloud Storage)."""
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        return
    from panoptes_network.adapters.gcs_bucket import storage_client

    client = storage_client(settings.project)
    for name in settings.buckets:
        try:
            client.create_bucket(name)
        except google_exceptions.Conflict:
            pass


def ensure_topology(settings: Settings, base_url: str) -> None:
    """Topics, dead-letter topic and push subscriptions to ``base_url``; idempotent."""
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    policy = DeliveryPolicy.from_env()
    project = settings.project
    dead_letter_topic = publisher.topic_path(project, settings.dead_letter_topic)
    ensure_topic(publisher, dead_letter_topic)
    for subscription in subscriptions(settings):
        topic = publisher.topic_path(project, subscription.topic)
        ensure_topic(publisher, topic)
        ensure_push_subscription(
            subscriber,
            subscriber.subscription_path(project, subscription.name),
            topic,
            f"{base_url}/{subscription.service}/",
            dead_letter_topic,
            policy,
        )
    ensure_push_subscription(
        subscriber,
        subscriber.subscription_path(project, DEAD_LETTER_SUBSCRIPTION),
        dead_letter_topic,
        f"{base_url}/_stack/dead-letter",
        None,
        policy,
    )
    ensure_buckets(settings)
    log.info("gcp topology ready", project=project, push_base_url=base_url, emulators=using_emulators())
