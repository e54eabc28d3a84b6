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
MAX_STACK_BACKOFF = 10.0  # a developer waits for retries on this machine: keep them short
DEAD_LETTER_SUBSCRIPTION = "panoptes-dead-letter-stack"
MONITOR_SUFFIX = "-monitor"
ACK_STATUSES = (102, 200, 201, 202, 204)


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
            "max_delivery_attempts": max_delivery_attempts(policy),
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
    for name, _ in pushed_subscriptions(settings):
        for suffix in ("", MONITOR_SUFFIX):  # the monitor too, so the replay is awaited
            path = subscriber.subscription_path(settings.project, name + suffix)
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


def max_delivery_attempts(policy: DeliveryPolicy) -> int:
    return max(MIN_DELIVERY_ATTEMPTS, policy.max_attempts)


def pushed_subscriptions(settings: Settings) -> list[tuple[str, str]]:
    """(subscription name, topic) of every push subscription the stack makes."""
    return [(s.name, s.topic) for s in subscriptions(settings)] + [
        (DEAD_LETTER_SUBSCRIPTION, settings.dead_letter_topic)
    ]


class PushLedger:
    """Knows, exactly, whether any message is still waiting to be pushed to this stack.

    Pub/Sub has no "backlog" call on the emulator, so beside every push subscription the
    stack keeps a pull subscription on the same topic (``NAME-monitor``): every message
    published is received there once, and expected once at the push endpoint. A message
    is settled when its push was acknowledged, or failed as many times as the
    dead-letter policy allows and Pub/Sub has forwarded it to the dead-letter topic,
    which is pushed here (:meth:`forwarded`) and tracked the same way: until then the
    message is not settled, or drain would end before its dead letter is recorded. Seeking a subscription back (a
    replay) seeks its monitor too, so replays are expected and awaited as well.
    """

    def __init__(self, settings: Settings):
        import threading
        from collections import Counter

        self.settings = settings
        self.max_attempts = max_delivery_attempts(DeliveryPolicy.from_env())
        self.expected: Counter = Counter()
        self.settled: Counter = Counter()
        self.failures: Counter = Counter()
        self.awaiting_forward: Counter = Counter()  # subscription -> messages given up, not yet forwarded
        self._lock = threading.Lock()
        self._subscriber = None

    def monitors(self) -> list[tuple[str, str]]:
        subscriber = self.subscriber()
        return [(name, subscriber.subscription_path(self.settings.project, name + MONITOR_SUFFIX))
                for name, _ in pushed_subscriptions(self.settings)]

    def subscriber(self) -> pubsub_v1.SubscriberClient:
        if self._subscriber is None:
            self._subscriber = pubsub_v1.SubscriberClient()
        return self._subscriber

    def sync(self) -> None:
        """Count every message published so far (drain the monitors)."""
        subscriber = self.subscriber()
        for name, path in self.monitors():
            while True:
                try:
                    response = subscriber.pull(
                        request={"subscription": path, "max_messages": 1000, "return_immediately": True},
                        timeout=10,
                    )
                except google_exceptions.NotFound:
                    break
                received = response.received_messages
                if not received:
                    break
                with self._lock:
                    for item in received:
                        self.expected[(name, item.message.message_id)] += 1
                subscriber.acknowledge(subscription=path, ack_ids=[item.ack_id for item in received])

    def record(self, subscription: str, message_id: str, status: int) -> None:
        key = (subscription.rsplit("/", 1)[-1], message_id)
        with self._lock:
            if status in ACK_STATUSES:
                self.settled[key] += 1
                self.failures[key] = 0
                return
            self.failures[key] += 1
            if self.failures[key] >= self.max_attempts:  # Pub/Sub dead-letters it now
                self.settled[key] += 1
                self.failures[key] = 0
                if key[0] != DEAD_LETTER_SUBSCRIPTION:
                    self.awaiting_forward[key[0]] += 1

    def forwarded(self, source_subscription: str) -> None:
        """Pub/Sub forwarded a message it gave up on from ``source_subscription``."""
        name = source_subscription.rsplit("/", 1)[-1]
        with self._lock:
            if self.awaiting_forward[name] > 0:
                self.awaiting_forward[name] -= 1

    def pending(self) -> int:
        with self._lock:
            return (sum(max(0, count - self.settled[key]) for key, count in self.expected.items())
                    + sum(self.awaiting_forward.values()))


def push_endpoints(settings: Settings, base_url: str) -> dict[str, str]:
    """Subscription name -> the URL the stack at ``base_url`` takes its pushes at."""
    endpoints = {s.name: f"{base_url}/{s.service}/" for s in subscriptions(settings)}
    endpoints[DEAD_LETTER_SUBSCRIPTION] = f"{base_url}/_stack/dead-letter"
    return endpoints


def current_push_endpoints(settings: Settings) -> dict[str, str | None]:
    """Subscription name -> where Pub/Sub pushes it now (None: no such subscription)."""
    subscriber = pubsub_v1.SubscriberClient()
    endpoints: dict[str, str | None] = {}
    try:
        for name, _ in pushed_subscriptions(settings):
            try:
                found = subscriber.get_subscription(subscription=subscriber.subscription_path(settings.project, name))
                endpoints[name] = found.push_config.push_endpoint or None
            except google_exceptions.NotFound:
                endpoints[name] = None
    finally:
        subscriber.close()
    return endpoints


def ensure_topology(settings: Settings, base_url: str) -> None:
    """Topics, dead-letter topic and push subscriptions to ``base_url``; idempotent.
    Only ``panoptes-network up`` calls it: it points every push at one running stack."""
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    policy = DeliveryPolicy.from_env()
    project = settings.project
    endpoints = push_endpoints(settings, base_url)
    dead_letter_topic = publisher.topic_path(project, settings.dead_letter_topic)
    ensure_topic(publisher, dead_letter_topic)
    for subscription in subscriptions(settings):
        topic = publisher.topic_path(project, subscription.topic)
        ensure_topic(publisher, topic)
        ensure_push_subscription(
            subscriber,
            subscriber.subscription_path(project, subscription.name),
            topic,
            endpoints[subscription.name],
            dead_letter_topic,
            policy,
        )
    ensure_push_subscription(
        subscriber,
        subscriber.subscription_path(project, DEAD_LETTER_SUBSCRIPTION),
        dead_letter_topic,
        endpoints[DEAD_LETTER_SUBSCRIPTION],
        None,
        policy,
    )
    for name, topic in pushed_subscriptions(settings):
        try:
            subscriber.create_subscription(request={
                "name": subscriber.subscription_path(project, name + MONITOR_SUFFIX),
                "topic": publisher.topic_path(project, topic),
                "retain_acked_messages": using_emulators(),
            })
        except google_exceptions.AlreadyExists:
            pass
    ensure_buckets(settings)
    log.info("gcp topology ready", project=project, push_base_url=base_url, emulators=using_emulators())


def collect_held_dead_letters(settings: Settings, batch: int = 100) -> int:
    """Move what the deployed dead-letter topic holds (its ``-held`` subscription) into the
    ``dead_letters`` collection, where ``panoptes-network status`` shows it. Each message
    is acknowledged only once recorded, and recorded under an id of its own, so a run
    cut short and run again records nothing twice. Returns how many were moved."""
    from panoptes_network import deadletter, runtime

    documents = runtime.documents(settings)
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(settings.project, settings.dead_letter_topic + deadletter.HELD_SUFFIX)
    moved = 0
    try:
        while True:
            response = subscriber.pull(request={"subscription": path, "max_messages": batch,
                                                "return_immediately": True}, timeout=30)
            if not response.received_messages:
                return moved
            for item in response.received_messages:
                deadletter.record_forwarded(documents, data=item.message.data,
                                            attributes=dict(item.message.attributes),
                                            message_id=item.message.message_id)
            subscriber.acknowledge(subscription=path, ack_ids=[item.ack_id for item in response.received_messages])
            moved += len(response.received_messages)
    finally:
        subscriber.close()

