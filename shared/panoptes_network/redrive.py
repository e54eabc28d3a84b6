"""Redrive: publish dead-lettered messages again, once their cause is fixed.

Each dead letter goes back to the topic it came from (found from its subscription
through :mod:`panoptes_network.wiring`), with its own data and attributes (not those
Pub/Sub added when it forwarded it). Once published it is marked ``redriven`` (when, the
new message id, the topic), so a second redrive does not send it again; a crash between
the publish and the mark sends it twice at worst, which the idempotent handlers absorb.

Not redriven: a permanent failure (a handler refused the input: not FITS, bad path)
unless asked, and a letter that kept only an excerpt of its data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from panoptes_network import deadletter, runtime
from panoptes_network.config import Settings
from panoptes_network.wiring import subscriptions

REDRIVEN, WOULD_REDRIVE, SKIPPED = "redriven", "would redrive", "skipped"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class Outcome:
    letter_id: str
    service: str
    action: str  # REDRIVEN, WOULD_REDRIVE or SKIPPED
    detail: str  # the topic (and new message id), or why it was skipped


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC unless it says otherwise) or an age such as ``90m``, ``2h``, ``1d``."""
    duration = _DURATION.fullmatch(text.strip())
    now = now or datetime.now(timezone.utc)
    if duration:
        return now - timedelta(**{_UNITS[duration.group(2)]: float(duration.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: give an ISO 8601 time (2026-11-30T02:00Z) or an age (90m, 2h, 1d)") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _subscription_name(letter: Mapping[str, Any]) -> str:
    return str(letter.get("subscription") or letter.get("service") or "").rsplit("/", 1)[-1]


def topic_for(letter: Mapping[str, Any], settings: Settings) -> str | None:
    """The topic a dead letter's message was published on, or None if it cannot be told."""
    wired = subscriptions(settings)
    name, service = _subscription_name(letter), letter.get("service")
    for subscription in wired:
        if name == subscription.name or service in (subscription.name, subscription.service):
            return subscription.topic
    # Deployed, an Eventarc trigger's subscription is named after its function (eventarc-REGION-SERVICE-…).
    for subscription in sorted(wired, key=lambda s: len(s.service), reverse=True):
        if subscription.service in name:
            return subscription.topic
    return None


def _matches(letter: Mapping[str, Any], service: str | None) -> bool:
    return service is None or service in (letter.get("service"), _subscription_name(letter))


def redrive(settings: Settings, *, service: str | None = None, since: datetime | None = None,
            dry_run: bool = False, include_permanent: bool = False, deployed: bool = False) -> list[Outcome]:
    """Publish again every dead letter not yet redriven (of ``service``, recorded since ``since``).
    ``deployed``: on Google Cloud, where finalize events reach image-uploaded through Eventarc's
    own topic, not the uploads topic."""
    documents = runtime.documents(settings)
    where = [("time", ">=", since)] if since else []
    outcomes = []
    for doc in documents.query(deadletter.COLLECTION, where, [("time", "asc")]):
        letter = doc.data
        if letter.get("redriven") or not _matches(letter, service):
            continue
        outcomes.append(_redrive_one(settings, doc.id, letter, dry_run, include_permanent, deployed))
    return outcomes


def _redrive_one(settings: Settings, letter_id: str, letter: Mapping[str, Any], dry_run: bool,
                 include_permanent: bool, deployed: bool) -> Outcome:
    service = str(letter.get("service"))

    def skipped(why: str) -> Outcome:
        return Outcome(letter_id, service, SKIPPED, why)

    if deadletter.is_permanent(letter) and not include_permanent:
        return skipped(f"a permanent failure ({letter.get('reason')}); --include-permanent sends it anyway")
    topic = topic_for(letter, settings)
    if topic is None:
        return skipped(f"no topic is known for subscription {_subscription_name(letter)!r}")
    if deployed and topic == settings.uploads_topic:
        return skipped("a finalize event: deployed, Eventarc reads its own topic, not "
                       f"{topic}; `panoptes-network reconcile --fix` sends the file through again")
    try:
        data = deadletter.original_data(letter)
    except deadletter.NotRedrivable as error:
        return skipped(f"cannot be redriven: {error}")
    if dry_run:
        return Outcome(letter_id, service, WOULD_REDRIVE, f"to {topic}")
    attributes = {key: value for key, value in (letter.get("attributes") or {}).items()
                  if key not in deadletter.FORWARDING_ATTRIBUTES}
    message_id = runtime.topics(settings).publish(topic, data, attributes)
    runtime.documents(settings).set(deadletter.COLLECTION, letter_id, {"redriven": {
        "time": datetime.now(timezone.utc), "message_id": message_id, "topic": topic}}, merge=True)
    return Outcome(letter_id, service, REDRIVEN, f"to {topic} as message {message_id}")
