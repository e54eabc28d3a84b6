"""Dead letters: messages that cannot succeed, kept with the reason, never retried.

A handler that meets input it can never process (an invalid path, a file that is not
FITS) raises :class:`PermanentError`; the handler helpers record a document in
``dead_letters`` and acknowledge the message, so Pub/Sub stops redelivering it. A
delivery that keeps failing for other reasons is retried with backoff and, after the
last attempt, recorded here too: by the local queue; on Pub/Sub, which forwards it to
the dead-letter topic, by the local stack (pushed to it) or, deployed, by
``panoptes-network collect-dead-letters`` from the topic's ``-held`` subscription.
``panoptes-network status`` lists them; ``panoptes-network redrive`` publishes them again
(:mod:`panoptes_network.redrive`).

A dead letter keeps the message's data whole up to :data:`DATA_LIMIT` bytes (Pub/Sub
messages here are small JSON), so it can be redriven; past that only an excerpt, with
the size and sha256 of the whole, and it cannot be redriven.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from typing import Any, Mapping

from panoptes_network.ports.documents import DocumentStore

COLLECTION = "dead_letters"
HELD_SUFFIX = "-held"  # the dead-letter topic's pull subscription, deployed: TOPIC-held
DATA_LIMIT = 64 * 1024  # bytes of data kept whole; a document must stay well under Firestore's 1 MiB
EXCERPT_BYTES = 4 * 1024  # what is kept of data past DATA_LIMIT
# Attributes Pub/Sub adds when it forwards to the dead-letter topic: not the message's own.
FORWARDING_ATTRIBUTES = ("CloudPubSubDeadLetterSourceSubscription", "CloudPubSubDeadLetterSourceDeliveryCount",
                         "CloudPubSubDeadLetterSourceSubscriptionProject",
                         "CloudPubSubDeadLetterSourceTopicPublishTime")


class PermanentError(Exception):
    """This message can never succeed; retrying would only repeat the failure."""


class NotRedrivable(Exception):
    """The dead letter does not hold the whole message."""


def _encoded(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def _excerpt(data: bytes) -> tuple[str, str]:
    head = data[:EXCERPT_BYTES]
    for cut in range(4):  # the cut may split a UTF-8 character of up to 4 bytes
        try:
            return head[:len(head) - cut].decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            continue
    return base64.b64encode(head).decode("ascii"), "base64"


def data_fields(data: bytes) -> dict[str, Any]:
    """How a dead letter keeps ``data``: whole when small, else an excerpt; always its size and hash."""
    truncated = len(data) > DATA_LIMIT
    text, encoding = _excerpt(data) if truncated else _encoded(data)
    return {"data": text, "data_encoding": encoding, "data_size": len(data),
            "data_sha256": hashlib.sha256(data).hexdigest(), "data_truncated": truncated}


def original_data(letter: Mapping[str, Any]) -> bytes:
    """The message's data as published; :class:`NotRedrivable` when only an excerpt was kept."""
    if letter.get("data_truncated"):
        raise NotRedrivable(f"only an excerpt of its {letter.get('data_size')} bytes was kept "
                            f"(sha256 {letter.get('data_sha256')})")
    text = letter.get("data") or ""
    encoding = letter.get("data_encoding")
    if encoding is None and text.startswith("base64:"):  # written before data_encoding existed
        text, encoding = text[len("base64:"):], "base64"
    data = base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")
    expected = letter.get("data_sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise NotRedrivable("its data does not match the sha256 recorded with it")
    return data


def is_permanent(letter: Mapping[str, Any]) -> bool:
    """A handler refused it (not FITS, bad path); recorded before this field, only handlers
    recorded no attempt count."""
    return bool(letter.get("permanent", letter.get("attempts") is None))


def dead_letter_id(service: str, message_id: str, data: bytes) -> str:
    # The same message dead-lettered again (a redelivery) gives the same document; a
    # different payload under a reused message id gives another, never erasing the first.
    digest = hashlib.sha256(data).hexdigest()[:16]
    return f"{service}-{message_id or 'no-message-id'}-{digest}"


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
    permanent: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> str:
    doc_id = dead_letter_id(service, message_id, data)
    now = datetime.now(timezone.utc)
    letter = {
        "service": service,
        "reason": reason,
        **data_fields(data),
        "attributes": dict(attributes or {}),
        "message_id": message_id or None,
        "subscription": subscription or None,
        "attempts": attempts,
        "permanent": permanent,
        "time": now,
        "first_time": now,
        "redriven": None,
        **dict(extra or {}),
    }

    def write(transaction) -> None:
        if transaction.get(COLLECTION, doc_id) is None:
            transaction.set(COLLECTION, doc_id, letter, merge=False)
        else:  # the same message again: its latest attempt, reason and time; the rest stays
            transaction.set(COLLECTION, doc_id, {"reason": reason, "attempts": attempts, "time": now}, merge=True)

    documents.run_transaction(write)
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
        attempts=int(attempts) if attempts.isascii() and attempts.isdigit() else None,
    )
