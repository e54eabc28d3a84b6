"""How redrive reads --since and finds the topic a dead letter's message came from."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from panoptes_network.config import Settings
from panoptes_network.redrive import parse_since, topic_for

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)
SETTINGS = Settings.from_env({})


@pytest.mark.parametrize("text, expected", [
    ("90m", datetime(2026, 11, 30, 1, 30, tzinfo=timezone.utc)),
    ("2h", datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc)),
    ("1d", datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)),
    ("2026-11-30T02:00Z", datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)),
    ("2026-11-30T02:00", datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)),  # UTC unless it says otherwise
    ("2026-11-30T03:00+01:00", datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)),
])
def test_since_takes_an_age_or_an_iso_time(text, expected):
    assert parse_since(text, NOW) == expected


def test_a_since_that_is_neither_says_what_it_takes():
    with pytest.raises(ValueError, match="ISO 8601 time .* or an age"):
        parse_since("yesterday", NOW)


@pytest.mark.parametrize("letter, topic", [
    ({"service": "compress-fits", "subscription": "compress-fits"}, SETTINGS.compress_topic),  # the local queue
    ({"service": "record-image", "subscription": "projects/p/subscriptions/record-image"}, SETTINGS.record_topic),
    ({"service": "image-uploaded", "subscription": None}, SETTINGS.uploads_topic),  # a handler's own letter
    # Deployed: an Eventarc trigger's subscription, named after its function.
    ({"service": "eventarc-us-central1-record-image-123-sub-456",
      "subscription": "projects/p/subscriptions/eventarc-us-central1-record-image-123-sub-456"}, SETTINGS.record_topic),
    ({"service": "something-else", "subscription": "projects/p/subscriptions/something-else"}, None),
])
def test_the_topic_comes_from_the_subscription_or_service(letter, topic):
    assert topic_for(letter, SETTINGS) == topic
