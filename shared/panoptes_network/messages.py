"""The three message forms the services receive, decoded and encoded in one place.

- The Pub/Sub push envelope, what a push subscription POSTs to Cloud Run::

      {"message": {"data": base64, "attributes": {...}, "messageId": "...",
                   "publishTime": "..."}, "subscription": "projects/P/subscriptions/S"}

- The CloudEvents a Cloud Function gen2 receives: ``google.cloud.storage.object.v1.finalized``
  (data: the object resource) and ``google.cloud.pubsub.topic.v1.messagePublished``
  (data: the push envelope above).

- The Cloud Storage Pub/Sub notification (``JSON_API_V1`` payload): attributes
  ``eventType=OBJECT_FINALIZE``, ``bucketId``, ``objectId``, ``objectGeneration``; data:
  the object resource.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
OBJECT_FINALIZE = "OBJECT_FINALIZE"


class BadMessage(ValueError):
    """A request that is not one of the message forms above, or lacks what the handler needs."""


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class PubSubMessage:
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str = ""
    publish_time: str = ""
    subscription: str = ""

    def json(self) -> dict[str, Any]:
        """The data as a JSON object, or :class:`BadMessage` saying why not."""
        from panoptes_network.http import HttpError, parse_json

        try:
            payload = parse_json(self.data, "message data")  # also refuses lone surrogates, deep nesting
        except HttpError as error:
            raise BadMessage(error.msg) from None
        if not isinstance(payload, dict):
            raise BadMessage("message data is JSON but not an object")
        return payload

    def envelope(self) -> dict[str, Any]:
        return encode_push_envelope(
            self.data, self.attributes, self.message_id, self.subscription, self.publish_time
        )


def encode_data(data: bytes | str | Mapping[str, Any]) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")


def encode_push_envelope(
    data: bytes | str | Mapping[str, Any],
    attributes: Mapping[str, str] | None = None,
    message_id: str = "",
    subscription: str = "",
    publish_time: str = "",
) -> dict[str, Any]:
    message_id = message_id or uuid.uuid4().hex
    publish_time = publish_time or utc_now_iso()
    return {
        "message": {
            "data": base64.b64encode(encode_data(data)).decode("ascii"),
            "attributes": dict(attributes or {}),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": publish_time,
            "publish_time": publish_time,
        },
        "subscription": subscription,
    }


def decode_push_envelope(body: Any) -> PubSubMessage:
    """Decode a push envelope (or the ``data`` of a messagePublished CloudEvent)."""
    if not isinstance(body, Mapping):
        raise BadMessage("request body is not a JSON object; expected a Pub/Sub push envelope")
    message = body.get("message")
    if not isinstance(message, Mapping):
        raise BadMessage("no 'message' object in the body; expected a Pub/Sub push envelope")
    encoded = message.get("data", "")
    if not isinstance(encoded, str):
        raise BadMessage("message.data is not a base64 string")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadMessage("message.data is not valid base64") from None
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in attributes.items()
    ):
        raise BadMessage("message.attributes is not an object of strings")
    return PubSubMessage(
        data=data,
        attributes=dict(attributes),
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        publish_time=str(message.get("publishTime") or message.get("publish_time") or ""),
        subscription=str(body.get("subscription") or ""),
    )


def bucket_path_of(message: PubSubMessage) -> str:
    """The ``bucket_path`` every pipeline message carries."""
    bucket_path = message.json().get("bucket_path")
    if not isinstance(bucket_path, str) or not bucket_path:
        raise BadMessage("message data has no 'bucket_path' string")
    return bucket_path


def _event_type_and_data(event: Any) -> tuple[str, Any]:
    """Accept a ``cloudevents`` CloudEvent or a plain dict in structured form."""
    if isinstance(event, Mapping):
        return str(event.get("type", "")), event.get("data")
    try:
        return str(event["type"]), event.data
    except (KeyError, TypeError, AttributeError):
        raise BadMessage("not a CloudEvent") from None


def message_from_cloud_event(event: Any) -> PubSubMessage:
    """The Pub/Sub message inside a ``messagePublished`` CloudEvent (record-image's trigger)."""
    event_type, data = _event_type_and_data(event)
    if event_type != PUBSUB_PUBLISHED:
        raise BadMessage(f"CloudEvent type {event_type!r} is not {PUBSUB_PUBLISHED}")
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            raise BadMessage("CloudEvent data is not JSON") from None
    return decode_push_envelope(data)


@dataclass(frozen=True)
class StorageObject:
    """An object a finalize event names."""

    bucket: str
    name: str
    generation: int | None = None
    size: int | None = None
    content_type: str | None = None

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any]) -> StorageObject:
        bucket, name = resource.get("bucket"), resource.get("name")
        if not isinstance(bucket, str) or not bucket or not isinstance(name, str) or not name:
            raise BadMessage("storage object resource lacks 'bucket' or 'name'")
        return cls(
            bucket=bucket,
            name=name,
            generation=_optional_int(resource.get("generation")),
            size=_optional_int(resource.get("size")),
            content_type=resource.get("contentType"),
        )

    def resource(self) -> dict[str, Any]:
        """The JSON API object resource (as in a notification's data or a CloudEvent's)."""
        resource: dict[str, Any] = {
            "kind": "storage#object",
            "bucket": self.bucket,
            "name": self.name,
            "id": f"{self.bucket}/{self.name}/{self.generation or ''}",
        }
        if self.generation is not None:
            resource["generation"] = str(self.generation)
        if self.size is not None:
            resource["size"] = str(self.size)
        if self.content_type:
            resource["contentType"] = self.content_type
        return resource


def _optional_int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def storage_notification(obj: StorageObject) -> tuple[bytes, dict[str, str]]:
    """Data and attributes of the Pub/Sub notification Cloud Storage sends on finalize."""
    attributes = {
        "eventType": OBJECT_FINALIZE,
        "payloadFormat": "JSON_API_V1",
        "bucketId": obj.bucket,
        "objectId": obj.name,
        "eventTime": utc_now_iso(),
    }
    if obj.generation is not None:
        attributes["objectGeneration"] = str(obj.generation)
    return encode_data(obj.resource()), attributes


def storage_cloud_event(obj: StorageObject) -> dict[str, Any]:
    """A ``storage.object.v1.finalized`` CloudEvent in structured form, as Eventarc sends it."""
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "type": STORAGE_FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{obj.bucket}",
        "subject": f"objects/{obj.name}",
        "time": utc_now_iso(),
        "datacontenttype": "application/json",
        "data": obj.resource(),
    }


def finalized_object(event: Any) -> StorageObject | None:
    """The object a finalize event names, from a storage CloudEvent or a notification.

    Returns None for notifications of other events (delete, metadata update), which
    the router ignores.
    """
    event_type, data = _event_type_and_data(event)
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            raise BadMessage("CloudEvent data is not JSON") from None
    if event_type == STORAGE_FINALIZED:
        if not isinstance(data, Mapping):
            raise BadMessage("storage CloudEvent has no object resource")
        return StorageObject.from_resource(data)
    if event_type == PUBSUB_PUBLISHED:
        return finalized_object_from_notification(decode_push_envelope(data))
    raise BadMessage(f"CloudEvent type {event_type!r} is neither {STORAGE_FINALIZED} nor {PUBSUB_PUBLISHED}")


def finalized_object_from_notification(message: PubSubMessage) -> StorageObject | None:
    attributes = message.attributes
    if "eventType" not in attributes:
        raise BadMessage("Pub/Sub message is not a Cloud Storage notification (no eventType)")
    if attributes["eventType"] != OBJECT_FINALIZE:
        return None
    bucket, name = attributes.get("bucketId"), attributes.get("objectId")
    if not bucket or not name:
        raise BadMessage("storage notification lacks bucketId or objectId")
    resource: dict[str, Any] = {}
    if message.data:
        try:
            resource = json.loads(message.data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            resource = {}  # NONE payload format: the attributes are enough.
    return StorageObject(
        bucket=bucket,
        name=name,
        generation=_optional_int(attributes.get("objectGeneration") or resource.get("generation")),
        size=_optional_int(resource.get("size")),
        content_type=resource.get("contentType"),
    )
