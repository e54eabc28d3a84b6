"""The bucket port: what the services need of object storage, and nothing more.

Adapters: :mod:`panoptes_network.adapters.local_bucket` (files under the data directory)
and :mod:`panoptes_network.adapters.gcs_bucket` (google-cloud-storage). Both pass
``tests/contract/test_bucket_contract.py``.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Iterator, Literal, Mapping

import google_crc32c

ONLY_IF_ABSENT = 0  # if_generation_match=0: write only when no live object has the name

# How a write is checked, as google-cloud-storage's ``checksum`` names them. CRC32C costs
# a tenth of MD5; Cloud Storage works out an object's MD5 itself either way, and the
# local store when it is first asked for (:meth:`Bucket.md5`).
Checksum = Literal["md5", "crc32c"]


class BucketError(Exception):
    """Base of the bucket port's errors."""


class ObjectNotFound(BucketError, FileNotFoundError):
    def __init__(self, bucket: str, name: str):
        super().__init__(f"gs://{bucket}/{name} does not exist")
        self.bucket, self.name = bucket, name


class PreconditionFailed(BucketError):
    """The object's generation was not the one the caller required."""


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    name: str
    size: int
    generation: int
    md5_hex: str | None = None  # None where the store does not know it yet: see Bucket.md5
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    updated: datetime | None = None
    crc32c_hex: str | None = None  # Cloud Storage's CRC32C (Castagnoli), as 8 hex digits


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def file_md5_hex(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def crc32c_hex(data: bytes) -> str:
    try:
        return f"{google_crc32c.value(data):08x}"  # bytes, or a numpy array, as they are
    except TypeError:  # bytearray, memoryview: google-crc32c wants an unexported buffer
        return f"{google_crc32c.value(bytes(data)):08x}"


class Bucket(abc.ABC):
    """One bucket. Object names are the bucket paths, ``/``-separated, never starting with ``/``."""

    name: str

    @abc.abstractmethod
    def read_range(self, path: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``; fewer when the object ends first, none past its end."""

    @abc.abstractmethod
    def read(self, path: str, *, if_generation_match: int | None = None) -> bytes:
        """The whole object; with ``if_generation_match``, only if it is that generation."""

    @abc.abstractmethod
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
        """Create or replace the object with ``data`` (bytes, or a contiguous bytes-like
        object such as a uint8 numpy array), all at once (never visible half-written), and
        raise unless what is stored has the data's ``checksum`` (Cloud Storage: the client
        library validates it; local: worked out from the bytes as they are written). The
        object's CRC32C is known after any write; its MD5 after an ``md5`` write, and
        otherwise from :meth:`md5`.

        ``if_generation_match=ONLY_IF_ABSENT`` writes only if the name is free; any other
        number only if the live object has that generation. Otherwise
        :class:`PreconditionFailed`.
        """

    @abc.abstractmethod
    def delete(self, path: str, *, if_generation_match: int | None = None) -> None:
        """Delete the object; :class:`ObjectNotFound` if absent."""

    @abc.abstractmethod
    def info(self, path: str) -> ObjectInfo:
        """Size, generation, checksum and metadata; :class:`ObjectNotFound` if absent."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose names start with ``prefix``, in name order."""

    @abc.abstractmethod
    def update_metadata(self, path: str, metadata: Mapping[str, str]) -> ObjectInfo:
        """Merge custom metadata into the object's."""

    @contextlib.contextmanager
    def local_file(self, path: str, *, if_generation_match: int | None = None) -> Iterator[Path]:
        """The object as a file on this machine, for libraries that read files by name
        (LibRaw reads a file faster than the same bytes in memory); gone after the block.

        Here: downloaded into a temporary folder (on Cloud Run, memory). The local store
        links its own file instead.
        """
        with tempfile.TemporaryDirectory(prefix="panoptes-object-") as folder:
            file = Path(folder) / (PurePosixPath(path).name or "object")
            file.write_bytes(self.read(path, if_generation_match=if_generation_match))
            yield file

    def md5(self, path: str) -> str:
        """The object's MD5, worked out from its bytes where the store does not know it
        (on Cloud Storage only a composite object has none)."""
        info = self.info(path)
        if info.md5_hex:
            return info.md5_hex
        return md5_hex(self.read(path, if_generation_match=info.generation))

    def exists(self, path: str) -> bool:
        try:
            self.info(path)
        except ObjectNotFound:
            return False
        return True

    def copy_to(
        self,
        path: str,
        destination: Bucket,
        new_path: str,
        *,
        metadata: Mapping[str, str] | None = None,
        if_generation_match: int | None = None,
    ) -> ObjectInfo:
        """Copy into ``destination`` (another bucket of the same adapter, or this one)."""
        source = self.info(path)
        merged = {**source.metadata, **(metadata or {})}
        return destination.write(
            new_path,
            self.read(path),
            content_type=source.content_type,
            metadata=merged,
            if_generation_match=if_generation_match,
        )

    def move(
        self,
        path: str,
        destination: Bucket,
        new_path: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Copy, then delete the source only if it is still the generation that was copied.

        Redelivery-safe: if the copy already exists with the same content, it is reused.
        """
        source = self.info(path)
        try:
            copied = self.copy_to(
                path, destination, new_path, metadata=metadata, if_generation_match=ONLY_IF_ABSENT
            )
        except PreconditionFailed:
            copied = destination.info(new_path)
            if copied.size != source.size or destination.md5(new_path) != self.md5(path):
                raise PreconditionFailed(
                    f"cannot move gs://{self.name}/{path}: gs://{destination.name}/{new_path} "
                    "already exists with different content"
                ) from None
        self.delete(path, if_generation_match=source.generation)
        return copied
