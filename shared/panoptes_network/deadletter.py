"""Dead letters: messages that cannot succeed, kept with the reason, never retried.

A handler that meets input it can never process (an invalid path, a file that is not
FITS) raises :class:`PermanentError`; the handler helpers record a document in
``dead_letters`` and acknowledge the message, so Pub/Sub stops redelivering it. A
delivery that keeps failing for other reasons is retried with backoff and, after the
last attempt, recorded here too: by the local queue; on Pub/Sub, which forwards it to
the dead-letter topic, by the local stack (pushed to it) or, deployed, by
``panoptes-network collect-dead-letters`` from the topic's ``-held`` subscription.
``panoptes-network status`` lists them.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from typing import Any, Mapping

from panoptes_network.ports.documents import DocumentStore

COLLECTION = "dead_letters"
HELD_SUFFIX = "-held"  # the dead-letter topic's pull subscription, deployed: TOPIC-held


class PermanentError(Exception):
    """This message can never succeed; retrying would only repeat the failure."""


def _printable(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


def dead_letter_id(service: str, message_id: str, data: bytes) -> str:
    # The same message dead-lettered twice (redelivery) gives the same document.
    key = message_id or hashlib.sha1(data).hexdigest()
    return f"{service}-{key}"


def record(
    documents: DocumentStore,
    *,
    service: str,
    reason: str,
    data: bytes,
    attributes: Mapping[str, str] | None = None,
    message_id: str = "",
    subscription: str = "",
    attempts: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    doc_id = dead_letter_id(service, message_id, data)
    documents.set(
        COLLECTION,
        doc_id,
        {
            "service": service,
            "reason": reason,
            "data": _printable(data),
            "attributes": dict(attributes or {}),
            "message_id": message_id or None,
            "subscription": subscription or None,
            "attempts": attempts,
            "time": datetime.now(timezone.utc),
            **dict(extra or {}),
        },
        merge=False,
    )
    return doc_id


def record_forwarded(documents: DocumentStore, *, data: bytes, attributes: Mapping[str, str],
                     message_id: str) -> str:
    """Record a message Pub/Sub forwarded to the dead-letter topic after its last attempt;
    its attributes name the subscription it came from and the attempts made."""
    source = attributes.get("CloudPubSubDeadLetterSourceSubscription", "unknown subscription")
    attempts = attributes.get("CloudPubSubDeadLetterSourceDeliveryCount", "?")
    return record(
        documents,
        service=source.rsplit("/", 1)[-1],  # projects/P/subscriptions/NAME: a document id has no "/"
        reason=f"Pub/Sub gave up after {attempts} delivery attempts to {source}; see that service's log",
        data=data,
        attributes=attributes,
        message_id=message_id,
        subscription=source,
        attempts=int(attempts) if attempts.isdigit() else None,
    )

