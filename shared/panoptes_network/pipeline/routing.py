"""image-uploaded: decide what a newly finalized object in the raw bucket becomes.

| what arrived                        | what happens                                   |
|-------------------------------------|------------------------------------------------|
| ``.fits``                           | ``{"bucket_path"}`` on the compress-fits topic  |
| ``.fits.fz``, ``.fz``               | ``{"bucket_path"}`` on the record-image topic   |
| ``.cr2``, ``.cr3``, ``.dng``        | ``{"bucket_path"}`` on the make-rgb-fits topic  |
| ``.mp4``                            | moved to the timelapse bucket, same path        |
| ``.jpg``, ``.jpeg``                 | left where it is                               |
| legacy path (field name after unit) | renamed to the four-part path (routed again)   |
| anything else, or an invalid path   | moved to the temp bucket under ``quarantine/``, |
|                                     | the reason in the object's metadata            |

Nothing is ever deleted: a move copies first and deletes the source only once the
copy exists. Every action is safe to repeat (finalize events arrive at least once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from panoptes_network import runtime
from panoptes_network.config import Settings
from panoptes_network.ids import InvalidPathError, parse_bucket_path
from panoptes_network.messages import StorageObject
from panoptes_network.ports.bucket import ObjectNotFound

QUARANTINE_PREFIX = "quarantine/"
RAW_CAMERA_TYPES = (".cr2", ".cr3", ".dng")


@dataclass(frozen=True)
class Route:
    action: str  # publish | move | rename | leave | quarantine | ignore
    reason: str
    topic: str | None = None
    bucket: str | None = None
    path: str | None = None


def decide(obj: StorageObject, settings: Settings) -> Route:
    if obj.bucket != settings.raw_bucket:
        return Route("ignore", f"not the raw bucket ({settings.raw_bucket})")
    try:
        path = parse_bucket_path(obj.name)
    except InvalidPathError as error:
        return Route("quarantine", str(error), bucket=settings.temp_bucket, path=QUARANTINE_PREFIX + obj.name)
    if path.is_legacy:
        return Route("rename", f"legacy path with field name {path.field_name!r}", bucket=settings.raw_bucket,
                     path=path.path)
    file_type = path.file_type
    if file_type == ".fits":
        return Route("publish", "uncompressed FITS", topic=settings.compress_topic)
    if file_type in (".fits.fz", ".fz"):
        return Route("publish", "compressed FITS", topic=settings.record_topic)
    if file_type in RAW_CAMERA_TYPES:
        return Route("publish", "raw camera file", topic=settings.rgb_topic)
    if file_type == ".mp4":
        return Route("move", "timelapse", bucket=settings.timelapse_bucket, path=obj.name)
    if file_type in (".jpg", ".jpeg"):
        return Route("leave", "preview image")
    return Route("quarantine", f"unknown file type {path.extension!r}", bucket=settings.temp_bucket,
                 path=QUARANTINE_PREFIX + obj.name)


def apply(route: Route, obj: StorageObject, settings: Settings) -> dict:
    """Carry out a route; returns what was done, for the log line."""
    outcome = {"outcome": route.action, "reason": route.reason, "bucket": obj.bucket, "bucket_path": obj.name}
    if route.action == "publish":
        outcome["published_id"] = runtime.topics(settings).publish(route.topic, {"bucket_path": obj.name})
        outcome["topic"] = route.topic
    elif route.action in ("move", "rename", "quarantine"):
        metadata = None
        if route.action == "quarantine":
            metadata = {
                "quarantine_reason": route.reason,
                "source_bucket": obj.bucket,
                "source_path": obj.name,
                "quarantined_at": datetime.now(timezone.utc).isoformat(),
            }
        source = runtime.bucket(obj.bucket, settings)
        destination = runtime.bucket(route.bucket, settings)
        try:
            source.move(obj.name, destination, route.path, metadata=metadata)
        except ObjectNotFound:
            if not destination.exists(route.path):
                outcome["outcome"] = "gone"
                outcome["reason"] = "the object no longer exists and was not moved by us"
                return outcome
            outcome["outcome"] = f"{route.action} (already done)"
        outcome["destination"] = f"gs://{route.bucket}/{route.path}"
    return outcome


def route_object(obj: StorageObject, settings: Settings) -> dict:
    return apply(decide(obj, settings), obj, settings)
