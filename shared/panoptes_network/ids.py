"""Bucket paths and the ids built from them.

A unit uploads each frame to ``UNIT_ID/CAMERA_ID/SEQUENCE_TIME/IMAGE_TIME.EXT``,
for example ``PAN001/14d3bd/20180216T110623/20180216T112430.fits.fz``. The path,
not the FITS header, is authoritative for the ids: headers of older frames carry
placeholders such as ``XXXXXX``.

Older units put the field name after the unit id
(``PAN001/Tess_Sec21_Cam02/14d3bd/...``); :func:`parse_bucket_path` recognises that
legacy form and :attr:`BucketPath.path` gives the canonical four-part path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

# [0-9], not \d: \d matches any Unicode digit ("PAN١٢٣"), and ids are ASCII.
UNIT_ID_PATTERN = re.compile(r"PAN[0-9]{3}")
CAMERA_ID_PATTERN = re.compile(r"[0-9a-fA-F]{6}")
TIME_PATTERN = re.compile(r"[0-9]{8}T[0-9]{6}")
# A sequence id or an image id: UNIT_CAMERA_TIME (BucketPath.sequence_id, .image_id).
ID_PATTERN = re.compile(f"{UNIT_ID_PATTERN.pattern}_{CAMERA_ID_PATTERN.pattern}_{TIME_PATTERN.pattern}")
TIME_FORMAT = "%Y%m%dT%H%M%S"
MAX_PATH_LENGTH = 1024  # Cloud Storage's limit on object names, in bytes.


class InvalidPathError(ValueError):
    """A bucket path that does not follow ``UNIT_ID/CAMERA_ID/SEQUENCE_TIME/IMAGE_TIME.EXT``."""


def parse_time(text: str, what: str = "time") -> datetime:
    """``YYYYMMDDTHHMMSS`` (UTC) as a timezone-aware datetime."""
    if not TIME_PATTERN.fullmatch(text):
        raise InvalidPathError(f"{what} {text!r} is not of the form YYYYMMDDTHHMMSS")
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError as error:
        raise InvalidPathError(f"{what} {text!r} is not a valid date and time: {error}") from None


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


@dataclass(frozen=True)
class BucketPath:
    unit_id: str
    camera_id: str
    sequence_time: datetime
    image_time: datetime
    extension: str  # as uploaded, with the leading dot: ".fits.fz"
    field_name: str | None = None  # only in the legacy five-part path

    @property
    def sequence_id(self) -> str:
        return f"{self.unit_id}_{self.camera_id}_{format_time(self.sequence_time)}"

    @property
    def image_id(self) -> str:
        return f"{self.unit_id}_{self.camera_id}_{format_time(self.image_time)}"

    @property
    def file_type(self) -> str:
        """The extension in lower case, what routing goes by."""
        return self.extension.lower()

    @property
    def is_legacy(self) -> bool:
        return self.field_name is not None

    @property
    def path(self) -> str:
        """The canonical four-part path (the legacy field name dropped)."""
        return "/".join(
            (
                self.unit_id,
                self.camera_id,
                format_time(self.sequence_time),
                format_time(self.image_time) + self.extension,
            )
        )

    def with_extension(self, extension: str) -> str:
        """The canonical path of a sibling file, e.g. ``.fits`` -> ``.fits.fz``."""
        return self.path[: -len(self.extension)] + extension


def check_object_name(name: str) -> str:
    """Refuse names that are unsafe anywhere: empty, absolute, ``.``/``..`` parts, too long."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidPathError("bucket path is empty")
    if len(name.encode("utf-8")) > MAX_PATH_LENGTH:
        raise InvalidPathError(f"bucket path is longer than {MAX_PATH_LENGTH} bytes")
    if name.startswith("/"):
        raise InvalidPathError(f"bucket path {name!r} is absolute; give it relative to the bucket")
    if any(ord(character) < 32 for character in name):
        raise InvalidPathError(f"bucket path {name!r} contains control characters")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidPathError(f"bucket path {name!r} has an empty, '.' or '..' part")
    return name


def split_extension(filename: str) -> tuple[str, str]:
    """``20180216T112430.fits.fz`` -> (``20180216T112430``, ``.fits.fz``)."""
    stem, dot, rest = filename.partition(".")
    return stem, (dot + rest) if dot else ""


def parse_bucket_path(name: str) -> BucketPath:
    """Parse and validate a bucket path; raise :class:`InvalidPathError` with the reason."""
    check_object_name(name)
    parts = name.split("/")
    field_name = None
    if len(parts) == 5:
        field_name = parts.pop(1)
    if len(parts) != 4:
        raise InvalidPathError(
            f"bucket path {name!r} has {len(name.split('/'))} parts; expected "
            "UNIT_ID/CAMERA_ID/SEQUENCE_TIME/IMAGE_TIME.EXT"
        )
    unit_id, camera_id, sequence_part, filename = parts
    if not UNIT_ID_PATTERN.fullmatch(unit_id):
        raise InvalidPathError(f"unit id {unit_id!r} is not PAN followed by three digits")
    if not CAMERA_ID_PATTERN.fullmatch(camera_id):
        raise InvalidPathError(f"camera id {camera_id!r} is not six hexadecimal characters")
    sequence_time = parse_time(sequence_part, "sequence time")
    stem, extension = split_extension(filename)
    image_time = parse_time(stem, "image time")
    if not extension:
        raise InvalidPathError(f"bucket path {name!r} has no file extension")
    return BucketPath(
        unit_id=unit_id,
        camera_id=camera_id,
        sequence_time=sequence_time,
        image_time=image_time,
        extension=extension,
        field_name=field_name,
    )


def bucket_path_from_header(header, extension: str) -> str:
    """The bucket path a unit would upload a frame to, from its POCS header.

    Uses OBSERVER (unit), INSTRUME (camera), SEQID (sequence time) and IMAGEID (image
    time, else DATE-OBS). Placeholders such as ``XXXXXX`` fail validation, with the reason.
    """

    def value(key: str) -> str:
        found = header.get(key)
        return str(found).strip() if found is not None else ""

    def last_part(key: str) -> str:
        return value(key).split("_")[-1]

    date_obs = value("DATE-OBS").replace("-", "").replace(":", "").split(".")[0]
    image_time = last_part("IMAGEID") if TIME_PATTERN.fullmatch(last_part("IMAGEID")) else date_obs
    parts = [value("OBSERVER") or value("PANID"), value("INSTRUME"), last_part("SEQID"), image_time]
    if not all(parts):
        missing = [key for key, part in zip(("OBSERVER", "INSTRUME", "SEQID", "IMAGEID/DATE-OBS"), parts) if not part]
        raise InvalidPathError(f"the header lacks {', '.join(missing)} to build the bucket path; give one with --as")
    candidate = "/".join(parts[:3]) + "/" + parts[3] + extension
    try:
        parse_bucket_path(candidate)
    except InvalidPathError as error:
        raise InvalidPathError(f"the header gives {candidate!r}, which is not valid ({error}); give one with --as") from None
    return candidate
