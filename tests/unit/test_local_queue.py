"""The local queue's delivery guarantees: leases, backoff, a last attempt, a dead letter."""

from __future__ import annotations

import time

import pytest

from panoptes_network.adapters.local_queue import DeliveryPolicy, LocalQueue
from panoptes_network.ports.topics import Subscription


@pytest.fixture
def queue(tmp_path):
    policy = DeliveryPolicy(max_attempts=3, min_backoff=0.05, max_backoff=0.2, ack_deadline=0.5)
    return LocalQueue(tmp_path, [Subscription("sub", "topic", "service")], policy)


def test_publish_without_subscription_is_dropped(queue):
    queue.publish("nobody-listens", {"a": 1})
    assert queue.lease("w") is None


def test_a_leased_delivery_is_not_leased_twice_until_its_lease_expires(queue):
    queue.publish("topic", {"a": 1})
    first = queue.lease("w1")
    assert first is not None and first.attempts == 1
    assert queue.lease("w2") is None
    time.sleep(0.6)  # the ack deadline passes: the worker is presumed dead
    again = queue.lease("w2")
    assert again is not None and again.message_id == first.message_id and again.attempts == 2


def test_ack_finishes_a_delivery(queue):
    queue.publish("topic", b"x")
    queue.ack(queue.lease("w"))
    assert queue.counts().done == 1 and not queue.has_unfinished()


def test_failures_back_off_then_die_after_the_last_attempt(queue):
    queue.publish("topic", b"x")
    seen = []
    while True:
        delivery = queue.lease("w")
        if delivery is None:
            wait = queue.seconds_until_next_due()
            if wait is None:
                break
            assert wait <= 0.2 + 0.01
            time.sleep(wait)
            continue
        seen.append((delivery.attempts, time.monotonic()))
        queue.nack(delivery, f"boom {delivery.attempts}")
    assert [attempt for attempt, _ in seen] == [1, 2, 3]
    gaps = [later - earlier for (_, earlier), (_, later) in zip(seen, seen[1:])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # exponential backoff
    assert queue.counts().dead == 1
    assert queue.dead()[0]["last_error"] == "boom 3"


def test_backoff_is_exponential_and_capped():
    policy = DeliveryPolicy(min_backoff=1, max_backoff=10)
    assert [policy.backoff(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
