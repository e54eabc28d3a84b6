"""The topic port's contract, run against both adapters (the SQLite queue; the Pub/Sub emulator):
what is published reaches every subscription, data and attributes intact."""

from __future__ import annotations

import json


from panoptes_network import runtime
from panoptes_network.config import settings
from panoptes_network.ports.topics import Subscription


_local_inbox: dict[str, list] = {}


def subscribe(backend: str, topic: str, name: str):
    """Make a subscription and return a function that receives what reached it."""
    if backend == "local":
        from panoptes_network.adapters.local_queue import LocalQueue

        queue = LocalQueue(settings().data_dir, [Subscription(name, topic, "nobody")])

        def receive():
            # Leasing takes any subscription's delivery: keep the others' for their turn.
            while (delivery := queue.lease("test")) is not None:
                _local_inbox.setdefault(delivery.subscription, []).append((delivery.data, delivery.attributes))
                queue.ack(delivery)
            return _local_inbox.pop(name, [])

        return receive

    from google.cloud import pubsub_v1

    project = settings().project
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    try:
        publisher.create_topic(name=publisher.topic_path(project, topic))
    except Exception:
        pass
    path = subscriber.subscription_path(project, name)
    subscriber.create_subscription(name=path, topic=publisher.topic_path(project, topic))

    def receive():
        response = subscriber.pull(subscription=path, max_messages=100, timeout=10)
        if response.received_messages:
            subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in response.received_messages])
        return [(m.message.data, dict(m.message.attributes)) for m in response.received_messages]

    return receive


def test_published_message_reaches_each_subscription_intact(backend):
    first = subscribe(backend, "contract-topic", "contract-first")
    second = subscribe(backend, "contract-topic", "contract-second")
    topics = runtime.topics()
    message_id = topics.publish("contract-topic", {"bucket_path": "PAN001/a.fits"}, {"k": "v", "n": 3})
    assert isinstance(message_id, str) and message_id
    expected = [(json.dumps({"bucket_path": "PAN001/a.fits"}, separators=(",", ":")).encode(), {"k": "v", "n": "3"})]
    assert first() == expected
    assert second() == expected


def test_bytes_are_published_unchanged(backend):
    receive = subscribe(backend, "contract-bytes", "contract-bytes-sub")
    payload = bytes(range(256))
    runtime.topics().publish("contract-bytes", payload)
    assert receive() == [(payload, {})]
