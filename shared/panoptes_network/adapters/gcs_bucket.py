"""Buckets on Cloud Storage through google-cloud-storage.

With ``STORAGE_EMULATOR_HOST`` set the client talks to that emulator (fake-gcs-server
in the tests) with anonymous credentials.
"""

from __future__ import annotations

import base64
import os
from typing import Iterator, Mapping

from google.api_core import exceptions as google_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from panoptes_network.ports.bucket import (
    Bucket,
    Checksum,
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
)


def storage_client(project: str) -> storage.Client:
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client(project=project, credentials=AnonymousCredentials())
    return storage.Client(project=project)


def _md5_hex(blob: storage.Blob) -> str | None:
    return base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None


def _crc32c_hex(blob: storage.Blob) -> str | None:
    return base64.b64decode(blob.crc32c).hex() if blob.crc32c else None


class GCSBucket(Bucket):
    def __init__(self, client: storage.Client, name: str):
        self.name = name
        self.client = client
        self.bucket = client.bucket(name)

    def __repr__(self) -> str:
        return f"GCSBucket({self.name!r})"

    def _info(self, blob: storage.Blob) -> ObjectInfo:
        return ObjectInfo(
            bucket=self.name,
            name=blob.name,
            size=int(blob.size or 0),
            generation=int(blob.generation),
            md5_hex=_md5_hex(blob),
            content_type=blob.content_type,
            metadata=dict(blob.metadata or {}),
            updated=blob.updated,
            crc32c_hex=_crc32c_hex(blob),
        )

    def info(self, path: str) -> ObjectInfo:
        blob = self.bucket.get_blob(path)
        if blob is None:
            raise ObjectNotFound(self.name, path)
        return self._info(blob)

    def read_range(self, path: str, start: int, end: int) -> bytes:
        if start < 0 or end < start:
            raise ValueError(f"invalid byte range [{start}, {end})")
        if end == start:
            return b""
        try:
            # download_as_bytes' end is inclusive.
            return self.bucket.blob(path).download_as_bytes(start=start, end=end - 1, checksum=None)
        except google_exceptions.NotFound:
            raise ObjectNotFound(self.name, path) from None
        except google_exceptions.RequestRangeNotSatisfiable:
            return b""

    def read(self, path: str, *, if_generation_match: int | None = None) -> bytes:
        blob = self.bucket.blob(path)
        try:
            data = blob.download_as_bytes(if_generation_match=if_generation_match)
        except google_exceptions.NotFound:
            raise ObjectNotFound(self.name, path) from None
        except google_exceptions.PreconditionFailed as error:
            raise PreconditionFailed(f"gs://{self.name}/{path}: {error.message}") from None
        # Checked here too, from the generation the download reports: not every server
        # (fake-gcs-server among them) enforces the precondition on media downloads.
        if if_generation_match is not None and blob.generation is not None and int(blob.generation) != if_generation_match:
            raise PreconditionFailed(f"gs://{self.name}/{path} is generation {blob.generation}, not {if_generation_match}")
        return data

    def write(
        self,
        path: str,
        data: bytes,
        *,
        if_generation_match: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        checksum: Checksum = "md5",
    ) -> ObjectInfo:
        blob = self.bucket.blob(path)
        if metadata:
            blob.metadata = dict(metadata)
        try:
            blob.upload_from_string(
                data if isinstance(data, bytes) else bytes(data),  # the client takes bytes only
                content_type=content_type or "application/octet-stream",
                if_generation_match=if_generation_match,
                checksum=checksum,
            )
        except google_exceptions.PreconditionFailed as error:
            raise PreconditionFailed(f"gs://{self.name}/{path}: {error.message}") from None
        return self._info(blob)

    def delete(self, path: str, *, if_generation_match: int | None = None) -> None:
        if if_generation_match is not None:
            # Cloud Storage enforces the precondition itself; fake-gcs-server ignores it on
            # delete, so look first as well (on the emulator alone a race remains).
            live = self.info(path).generation
            if live != if_generation_match:
                raise PreconditionFailed(f"gs://{self.name}/{path} is generation {live}, not {if_generation_match}")
        try:
            self.bucket.blob(path).delete(if_generation_match=if_generation_match)
        except google_exceptions.NotFound:
            raise ObjectNotFound(self.name, path) from None
        except google_exceptions.PreconditionFailed as error:
            raise PreconditionFailed(f"gs://{self.name}/{path}: {error.message}") from None

    def update_metadata(self, path: str, metadata: Mapping[str, str]) -> ObjectInfo:
        blob = self.bucket.get_blob(path)
        if blob is None:
            raise ObjectNotFound(self.name, path)
        blob.metadata = {**(blob.metadata or {}), **{str(k): str(v) for k, v in metadata.items()}}
        blob.patch()
        return self._info(blob)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for blob in self.client.list_blobs(self.bucket, prefix=prefix or None):
            yield self._info(blob)

    def copy_to(
        self,
        path: str,
        destination: Bucket,
        new_path: str,
        *,
        metadata: Mapping[str, str] | None = None,
        if_generation_match: int | None = None,
    ) -> ObjectInfo:
        if not isinstance(destination, GCSBucket):
            return super().copy_to(
                path, destination, new_path, metadata=metadata, if_generation_match=if_generation_match
            )
        source = self.bucket.get_blob(path)
        if source is None:
            raise ObjectNotFound(self.name, path)
        if if_generation_match is not None:
            # As for delete: fake-gcs-server ignores the precondition on rewrite.
            existing = destination.bucket.get_blob(new_path)
            live = int(existing.generation) if existing else 0
            if live != if_generation_match:
                raise PreconditionFailed(f"gs://{destination.name}/{new_path} is generation {live}, "
                                         f"not {if_generation_match}")
        target = destination.bucket.blob(new_path)
        # Set before the rewrite so the copy is finalized with its metadata already on it.
        target.metadata = {**(source.metadata or {}), **(metadata or {})}
        target.content_type = source.content_type
        token = None
        try:
            while True:  # a server-side copy: the bytes never pass through this process
                token, _, _ = target.rewrite(
                    source,
                    token=token,
                    if_generation_match=if_generation_match,
                    if_source_generation_match=source.generation,
                )
                if token is None:
                    break
        except google_exceptions.PreconditionFailed as error:
            raise PreconditionFailed(f"gs://{destination.name}/{new_path}: {error.message}") from None
        return destination.info(new_path)
