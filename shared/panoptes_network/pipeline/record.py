"""record-image: a frame's header -> ``images``, ``observations`` and ``units`` documents.

The bucket path is authoritative for unit, camera, sequence and image ids; the header
gives everything else. One transaction writes all three documents, and reads the
image's previous record first, so the same image recorded twice (redelivery or
re-upload) counts once and a changed exposure time corrects the totals.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any, Mapping

from astropy.io import fits as astropy_fits

from panoptes_network import crashpoints, fits, runtime, sky
from panoptes_network.config import Settings
from panoptes_network.deadletter import PermanentError
from panoptes_network.pipeline import job_path
from panoptes_network.ids import BucketPath
from panoptes_network.ports.bucket import ObjectNotFound
from panoptes_network.ports.documents import GeoPoint, Increment, Transaction

RECORDABLE_TYPES = (".fits.fz", ".fz", ".fits")
IMAGE_STATUS = "uploaded"
OBSERVATION_STATUS = "receiving_files"
UNIT_STATUS = "active"
# What the plate-solve service adds to an image document (pipeline/platesolve.py).
SOLVE_FIELDS = ("plate_solved", "ra_image", "dec_image", "status", "solve", "wcs_path")
_LEADING_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


# --- header values -----------------------------------------------------------------------


def _raw(header: astropy_fits.Header, key: str) -> Any:
    value = fits.header_value(header, key)  # never raises: an odd card is no reason to retry
    if value is None or isinstance(value, astropy_fits.card.Undefined):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def number(header: astropy_fits.Header, key: str) -> float | None:
    """A numeric value; strings such as ``'11 C'`` give their leading number."""
    value = _raw(header, key)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = float(value) if abs(value) < 1e308 else math.inf  # an int past a float's range
    else:
        match = _LEADING_NUMBER.match(str(value))
        value = float(match.group(1)) if match else None
    return value if value is not None and math.isfinite(value) else None  # NaN or 1e999 measure nothing


def integer(header: astropy_fits.Header, key: str) -> int | None:
    value = number(header, key)
    return int(value) if value is not None and value == int(value) else None


def text(header: astropy_fits.Header, key: str) -> str | None:
    value = _raw(header, key)
    return None if value is None else str(value)


def utc_time(header: astropy_fits.Header, key: str) -> datetime | None:
    value = text(header, key)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # not a time, or one that cannot be in UTC (year 1 at +01:00)
        return None


def measured_rggb(header: astropy_fits.Header) -> dict[str, int | None]:
    parts = (text(header, "MEASRGGB") or "").split()
    values: list[int | None] = [int(p) if p.lstrip("-").isdigit() else None for p in parts]
    if len(values) != 4:
        values = [None] * 4
    return dict(zip(("measrggb_r", "measrggb_g1", "measrggb_g2", "measrggb_b"), values))


def is_plate_solved(header: astropy_fits.Header) -> bool:
    return bool(text(header, "CTYPE1")) and number(header, "CRVAL1") is not None


# --- documents ---------------------------------------------------------------------------


def image_document(path: BucketPath, bucket_path: str, header: astropy_fits.Header) -> dict[str, Any]:
    solved = is_plate_solved(header)
    return {
        # The seed's fields.
        "ha_mnt": number(header, "HA-MNT"),
        "ra_mnt": number(header, "RA-MNT"),
        "dec_mnt": number(header, "DEC-MNT"),
        "ra_image": number(header, "CRVAL1") if solved else None,
        "dec_image": number(header, "CRVAL2") if solved else None,
        "exptime": number(header, "EXPTIME"),
        "moonfrac": number(header, "MOONFRAC"),
        "moonsep": number(header, "MOONSEP"),
        "airmass": number(header, "AIRMASS"),
        "bucket_path": bucket_path,
        "sequence_id": path.sequence_id,
        "status": IMAGE_STATUS,
        "time": path.image_time,
        # Extras worth searching on.
        "unit_id": path.unit_id,
        "camera_id": path.camera_id,
        "field_name": text(header, "FIELD"),
        "date_obs": utc_time(header, "DATE-OBS"),
        "iso": integer(header, "ISO"),
        "camtemp": number(header, "CAMTEMP"),
        "camera_serial": text(header, "CAMSN"),
        "plate_solved": solved,
        **measured_rggb(header),
    }


def observation_fields(path: BucketPath, header: astropy_fits.Header) -> dict[str, Any]:
    solved = is_plate_solved(header)
    return {
        "unit_id": path.unit_id,
        "camera_id": path.camera_id,
        "software_version": text(header, "CREATOR"),
        "ra": number(header, "CRVAL1") if solved else None,
        "dec": number(header, "CRVAL2") if solved else None,
        "ra_mnt": number(header, "RA-MNT"),
        "dec_mnt": number(header, "DEC-MNT"),
        "exptime": number(header, "EXPTIME"),
        "status": OBSERVATION_STATUS,
        "time": path.sequence_time,
        "field_name": text(header, "FIELD"),
        "project": text(header, "ORIGIN"),
        "iso": integer(header, "ISO"),
    }


def unit_document(path: BucketPath, header: astropy_fits.Header) -> dict[str, Any]:
    latitude, longitude = number(header, "LAT-OBS"), number(header, "LONG-OBS")
    location = None
    if latitude is not None and longitude is not None:
        try:
            location = GeoPoint(latitude, longitude)
        except ValueError:
            location = None
    return {
        "name": text(header, "OBSERVER") or path.unit_id,
        "elevation": number(header, "ELEV-OBS"),
        "location": location,
        "status": UNIT_STATUS,
    }


def fill(existing: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Fields to write so that known values are never replaced by empty ones."""
    existing = existing or {}
    return {key: value for key, value in new.items() if value is not None or existing.get(key) is None}


def write_documents(transaction: Transaction, path: BucketPath, image: dict, observation: dict, unit: dict) -> dict:
    image_id, sequence_id = path.image_id, path.sequence_id
    previous_image, previous_observation, previous_unit = transaction.get_many(
        [("images", image_id), ("observations", sequence_id), ("units", path.unit_id)]
    )

    exptime = image["exptime"] or 0.0
    observation_update = fill(previous_observation, observation)
    if previous_observation and previous_observation.get("ra") is not None:
        # The first plate-solved centre stays the observation's.
        observation_update.pop("ra", None)
        observation_update.pop("dec", None)
    first = (previous_observation or {}).get("first_image_time")
    last = (previous_observation or {}).get("last_image_time")
    observation_update["first_image_time"] = min(filter(None, (first, image["time"])))
    observation_update["last_image_time"] = max(filter(None, (last, image["time"])))
    if previous_image is None:
        observation_update["num_images"] = Increment(1)
        observation_update["total_exptime"] = Increment(exptime)
        counted = "new image"
    else:
        change = exptime - (previous_image.get("exptime") or 0.0)
        if change:
            observation_update["total_exptime"] = Increment(change)
        counted = "already recorded"
    # The spatial index follows the position the stored observation will have (sky.py).
    observation_update.update(sky.index_fields({**(previous_observation or {}), **observation_update}))

    if previous_image and previous_image.get("solve") and not image["plate_solved"]:
        # Recorded again after plate-solve tried it: its answer (solved or not) stays.
        image = {**image, **{key: previous_image.get(key) for key in SOLVE_FIELDS if key in previous_image}}
    transaction.set("images", image_id, image, merge=False)
    transaction.set("observations", sequence_id, observation_update, merge=True)
    unit_update = fill(previous_unit, unit) if previous_unit is None else {
        key: value for key, value in unit.items() if value is not None and previous_unit.get(key) is None
    }
    if unit_update:
        transaction.set("units", path.unit_id, unit_update, merge=True)
    return {"counted": counted}


def record_object(bucket_path: str, settings: Settings) -> dict:
    path = job_path(bucket_path, RECORDABLE_TYPES, "record-image")
    raw = runtime.bucket(settings.raw_bucket, settings)
    try:
        read = fits.read_header(lambda start, end: raw.read_range(bucket_path, start, end))
    except ObjectNotFound:
        raise PermanentError(f"gs://{settings.raw_bucket}/{bucket_path} does not exist") from None
    except fits.NotFitsError as error:
        raise PermanentError(f"{bucket_path}: {error}") from None

    crashpoints.reached("record-image:read")
    header = fits.with_primary_keywords(read)
    try:
        image = image_document(path, bucket_path, header)
        observation = observation_fields(path, header)
        unit = unit_document(path, header)
    except (ValueError, TypeError, ArithmeticError) as error:
        # The header alone decides this: every redelivery would meet it again.
        raise PermanentError(f"{bucket_path}: its header cannot be recorded: {type(error).__name__}: {error}") from None
    result = runtime.documents(settings).run_transaction(
        lambda transaction: write_documents(transaction, path, image, observation, unit)
    )
    if not image["plate_solved"]:
        # A frame without a WCS is solved by plate-solve; one with a WCS is recorded as solved.
        result["plate_solve_message"] = runtime.topics(settings).publish(settings.plate_solve_topic,
                                                                         {"bucket_path": bucket_path})
    return {
        "outcome": "recorded",
        "bucket_path": bucket_path,
        "image_id": path.image_id,
        "sequence_id": path.sequence_id,
        "unit_id": path.unit_id,
        "header_reads": read.reads,
        "header_bytes": read.bytes_read,
        **result,
    }


def reindex_observations(settings: Settings) -> dict[str, int]:
    """Give every observation the spatial index its position calls for (sky.py).

    For observations recorded before the index existed, or by other software: the
    explorer's cone search reads only indexed documents. Safe to repeat and to run while
    images are being recorded: each stale document is rewritten in a transaction that
    reads it again first.
    """
    documents = runtime.documents(settings)
    counts = {"observations": 0, "updated": 0, "without_position": 0}

    def reindex(transaction: Transaction, sequence_id: str) -> bool:
        current = transaction.get("observations", sequence_id)
        fields = sky.index_fields(current or {})
        if not fields or current.get(sky.INDEX_FIELD) == fields[sky.INDEX_FIELD]:
            return False
        transaction.set("observations", sequence_id, fields, merge=True)
        return True

    for observation in documents.query("observations"):
        counts["observations"] += 1
        fields = sky.index_fields(observation.data)
        if not fields:
            counts["without_position"] += 1
        elif observation.data.get(sky.INDEX_FIELD) != fields[sky.INDEX_FIELD]:
            counts["updated"] += documents.run_transaction(lambda transaction: reindex(transaction, observation.id))
    return counts

