"""The work of each service; the service folders' main.py files only wrap these."""

from __future__ import annotations

from panoptes_network.deadletter import PermanentError
from panoptes_network.ids import BucketPath, InvalidPathError, parse_bucket_path


def job_path(bucket_path: str, file_types: tuple[str, ...], service: str) -> BucketPath:
    """The path a job was sent, or :class:`PermanentError` if it is invalid or of a type
    the service does not take: retrying either could never succeed."""
    try:
        path = parse_bucket_path(bucket_path)
    except InvalidPathError as error:
        raise PermanentError(str(error)) from None
    if path.file_type not in file_types:
        raise PermanentError(f"{bucket_path} is not a file {service} takes ({', '.join(file_types)})")
    return path
