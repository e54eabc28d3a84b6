"""Buckets as folders: ``DATA_DIR/buckets/BUCKET/OBJECT_NAME``.

Object contents are plain files a user can open; generations, checksums and metadata
live beside them in ``DATA_DIR/buckets.sqlite``, which is also the lock that makes
preconditions atomic across processes. A write lands in a temporary file first and is
renamed into place, so no reader ever sees half an object.

A bucket with a finalize hook (the raw bucket, whose notifications feed image-uploaded)
promises what Cloud Storage does: every committed object's notification is sent at
least once. The notification goes into an outbox row in the same SQLite transaction as
the object's row, is sent after the commit, then crossed off; if the writer dies in
between, :meth:`LocalStorage.send_orphaned_notifications` (``up`` and ``drain`` call it)
sends it for the dead writer.

Temporary files are named after their writer (:mod:`~panoptes_network.adapters.owners`):
those of writers that are gone are removed when the storage is opened.

Checksums are Cloud Storage's two: the CRC32C of every object, worked out as it is
written, and its MD5, at write time where the writer asks for it (``checksum="md5"``,
the default), else the first time :meth:`LocalBucket.md5` is asked; that reading is
checked against the CRC32C before it is kept.

Object names are Cloud Storage names, so anything goes; each ``/``-separated part is
percent-encoded where it could not be a safe file name (``..``, ``.``, empty, ``%``),
so no name reaches outside the bucket's folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping
from urllib.parse import quote, unquote

from panoptes_network import crashpoints
from panoptes_network.adapters import owners
from panoptes_network.adapters.sqlite import ThreadLocalConnections
from panoptes_network.ports.bucket import (
    ONLY_IF_ABSENT,
    Bucket,
    ObjectInfo,
    ObjectNotFound,
    BucketError,
    Checksum,
    PreconditionFailed,
    crc32c_hex,
    md5_hex,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    name TEXT NOT NULL,
    generation INTEGER NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT,
    content_type TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    updated TEXT NOT NULL,
    crc32c TEXT,
    PRIMARY KEY (bucket, name)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL,
    object TEXT NOT NULL,  -- the ObjectInfo the notification is about, as JSON
    owner TEXT             -- the process sending it; NULL: whoever recovers it
);
"""
# Data directories made before a column existed get it added (NULL: not known).
ADDED_COLUMNS = {"crc32c": "TEXT"}

_SAFE = " -_.~+=,@()[]!$&'"

FinalizeHook = Callable[[ObjectInfo], None]
# A temporary file's name starts with its writer's name and this (never in a host name).
OWNER_SEPARATOR = "~"
# Temporary files named before they carried their writer: removed once this old.
UNOWNED_TEMP_MAX_AGE_SECONDS = 3600.0
_HASHER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="local-bucket-checksum")


def encode_part(part: str) -> str:
    if part == "":
        return "%"
    if part in (".", ".."):
        return part.replace(".", "%2E")
    return quote(part, safe=_SAFE)


def decode_part(part: str) -> str:
    return "" if part == "%" else unquote(part)


def _info_to_json(info: ObjectInfo) -> str:
    return json.dumps({**dataclasses.asdict(info), "metadata": dict(info.metadata),
                       "updated": info.updated.isoformat() if info.updated else None})


def _info_from_json(text: str) -> ObjectInfo:
    fields = json.loads(text)
    updated = fields.pop("updated")
    return ObjectInfo(**fields, updated=datetime.fromisoformat(updated) if updated else None)


class LocalStorage:
    """The buckets of one data directory; hands out :class:`LocalBucket` objects."""

    def __init__(self, data_dir: Path, on_finalize: Callable[[str], FinalizeHook | None] | None = None):
        self.root = Path(data_dir) / "buckets"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(exist_ok=True)
        self.db = ThreadLocalConnections(Path(data_dir) / "buckets.sqlite", SCHEMA)
        with self.db.transaction() as connection:
            present = {row["name"] for row in connection.execute("PRAGMA table_info(objects)")}
            for column, kind in ADDED_COLUMNS.items():
                if column not in present:
                    connection.execute(f"ALTER TABLE objects ADD COLUMN {column} {kind}")
        self._on_finalize = on_finalize
        self.remove_abandoned_temp_files()

    def bucket(self, name: str) -> LocalBucket:
        return LocalBucket(self, name, self._hook(name))

    def _hook(self, bucket_name: str) -> FinalizeHook | None:
        return self._on_finalize(bucket_name) if self._on_finalize else None

    def temp_prefix(self) -> str:
        return f"{owners.current()}{OWNER_SEPARATOR}"

    def remove_abandoned_temp_files(self) -> list[str]:
        """Remove the temporary files and folders of writers that are gone; returns their names."""
        removed = []
        for entry in self.tmp.iterdir():
            owner, separator, _ = entry.name.partition(OWNER_SEPARATOR)
            if separator and owners.Owner.parse(owner):
                abandoned = owners.is_gone(owner)
            else:  # from a version that did not name its writer
                try:
                    abandoned = time.time() - entry.lstat().st_mtime > UNOWNED_TEMP_MAX_AGE_SECONDS
                except FileNotFoundError:
                    continue
            if not abandoned:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
        return removed

    def send_orphaned_notifications(self) -> int:
        """Send the notifications whose writer died before sending them; returns how many.

        They are claimed first, so two recovering processes do not both send one; a
        recoverer that dies in turn leaves them claimed by a process that is gone.
        """
        orphaned = [row for row in self.db.connection().execute("SELECT * FROM outbox").fetchall()
                    if row["owner"] is None or owners.is_gone(row["owner"])]
        if not orphaned:  # the usual case: no write lock taken
            return 0
        claimed = []
        with self.db.transaction() as connection:
            for row in orphaned:
                if connection.execute("UPDATE outbox SET owner = ? WHERE id = ? AND owner IS ?",
                                      (str(owners.current()), row["id"], row["owner"])).rowcount:
                    claimed.append(row)
        for row in claimed:
            self.send_notification(row["id"], self._hook(row["bucket"]), _info_from_json(row["object"]))
        return len(claimed)

    def send_notification(self, outbox_id: int, hook: FinalizeHook | None, info: ObjectInfo) -> None:
        """Send one notification, then cross it off; if sending fails, leave it to recovery."""
        try:
            if hook:
                hook(info)
        except BaseException:
            with self.db.transaction() as connection:  # any recoverer may send it now
                connection.execute("UPDATE outbox SET owner = NULL WHERE id = ?", (outbox_id,))
            raise
        crashpoints.reached("bucket:notified")
        with self.db.transaction() as connection:
            connection.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))


class LocalBucket(Bucket):
    def __init__(self, storage: LocalStorage, name: str, on_finalize: FinalizeHook | None = None):
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid bucket name {name!r}")
        self.storage = storage
        self.name = name
        self.folder = storage.root / name
        self.on_finalize = on_finalize

    def __repr__(self) -> str:
        return f"LocalBucket({self.name!r})"

    def file_path(self, path: str) -> Path:
        if not isinstance(path, str) or not path:
            raise ValueError("object name is empty")
        return self.folder.joinpath(*(encode_part(part) for part in path.split("/")))

    def _row(self, connection, path: str):
        return connection.execute(
            "SELECT * FROM objects WHERE bucket = ? AND name = ?", (self.name, path)
        ).fetchone()

    def _info(self, row) -> ObjectInfo:
        return ObjectInfo(
            bucket=self.name,
            name=row["name"],
            size=row["size"],
            generation=row["generation"],
            md5_hex=row["md5"],
            content_type=row["content_type"],
            metadata=json.loads(row["metadata"]),
            updated=datetime.fromisoformat(row["updated"]),
            crc32c_hex=row["crc32c"],
        )

    def info(self, path: str) -> ObjectInfo:
        row = self._row(self.storage.db.connection(), path)
        if row is None or not self.file_path(path).is_file():
            raise ObjectNotFound(self.name, path)
        return self._info(row)

    def read_range(self, path: str, start: int, end: int) -> bytes:
        if start < 0 or end < start:
            raise ValueError(f"invalid byte range [{start}, {end})")
        try:
            with open(self.file_path(path), "rb") as handle:
                handle.seek(start)
                return handle.read(end - start)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(self.name, path) from None
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:  # legal in Cloud Storage, impossible here: never written
                raise ObjectNotFound(self.name, path) from None
            raise

    def read(self, path: str, *, if_generation_match: int | None = None) -> bytes:
        try:
            data = self.file_path(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(self.name, path) from None
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:
                raise ObjectNotFound(self.name, path) from None
            raise
        if if_generation_match is not None:
            # Checked after reading: a replacement lands by rename, so the bytes read
            # belong to the generation that was live before it, or the check fails.
            generation = self.info(path).generation
            if generation != if_generation_match:
                raise PreconditionFailed(
                    f"gs://{self.name}/{path} is generation {generation}, not {if_generation_match}"
                )
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
        if checksum not in ("md5", "crc32c"):
            raise ValueError(f"checksum must be 'md5' or 'crc32c', not {checksum!r}")
        target = self.file_path(path)
        handle = tempfile.NamedTemporaryFile(dir=self.storage.tmp, prefix=self.storage.temp_prefix(), delete=False)
        # Checksums and file writes release the GIL: hash while the bytes go to disk.
        crc32c = _HASHER.submit(crc32c_hex, data)
        md5 = _HASHER.submit(md5_hex, data) if checksum == "md5" else None
        try:
            with handle:
                handle.write(data)
            crashpoints.reached("bucket:temp-written")
            # Before the write lock, so that other writers need not wait for them.
            crc32c_value, md5_value = crc32c.result(), md5.result() if md5 else None
            with self.storage.db.transaction() as connection:
                row = self._row(connection, path)
                live = row is not None and target.is_file()
                self._check_precondition(path, live, row, if_generation_match)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(handle.name, target)
                info = ObjectInfo(
                    bucket=self.name,
                    name=path,
                    size=len(data),
                    generation=max(time.time_ns() // 1000, (row["generation"] + 1) if row else 0),
                    md5_hex=md5_value,
                    content_type=content_type,
                    metadata=dict(metadata or {}),
                    updated=datetime.now(timezone.utc),
                    crc32c_hex=crc32c_value,
                )
                connection.execute(
                    "INSERT OR REPLACE INTO objects (bucket, name, generation, size, md5, content_type, metadata,"
                    " updated, crc32c) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.name,
                        path,
                        info.generation,
                        info.size,
                        info.md5_hex,
                        info.content_type,
                        json.dumps(dict(info.metadata), sort_keys=True),
                        info.updated.isoformat(),
                        info.crc32c_hex,
                    ),
                )
                outbox_id = connection.execute(  # committed with the object, or not at all
                    "INSERT INTO outbox (bucket, object, owner) VALUES (?, ?, ?)",
                    (self.name, _info_to_json(info), str(owners.current())),
                ).lastrowid if self.on_finalize else None
        finally:
            if os.path.exists(handle.name):
                os.unlink(handle.name)
        crashpoints.reached("bucket:committed")
        if outbox_id is not None:
            self.storage.send_notification(outbox_id, self.on_finalize, info)
        return info

    @contextlib.contextmanager
    def local_file(self, path: str, *, if_generation_match: int | None = None) -> Iterator[Path]:
        """A hard link to the object's file: no copy, and it keeps this generation's bytes
        even if the object is replaced or deleted meanwhile (writers replace files under
        the write lock taken here)."""
        source = self.file_path(path)
        folder = Path(tempfile.mkdtemp(dir=self.storage.tmp, prefix=self.storage.temp_prefix() + "local-file-"))
        snapshot = folder / source.name
        try:
            with self.storage.db.transaction() as connection:
                row = self._row(connection, path)
                if row is None or not source.is_file():
                    raise ObjectNotFound(self.name, path)
                self._check_precondition(path, True, row, if_generation_match)
                os.link(source, snapshot)
            yield snapshot
        finally:
            snapshot.unlink(missing_ok=True)
            folder.rmdir()

    def md5(self, path: str) -> str:
        info = self.info(path)
        if info.md5_hex:
            return info.md5_hex
        data = self.read(path, if_generation_match=info.generation)
        if info.crc32c_hex and crc32c_hex(data) != info.crc32c_hex:
            raise BucketError(f"gs://{self.name}/{path} no longer holds what was written: "
                              f"its CRC32C is {crc32c_hex(data)}, not {info.crc32c_hex}")
        md5 = md5_hex(data)
        with self.storage.db.transaction() as connection:  # kept only for the generation it is of
            connection.execute("UPDATE objects SET md5 = ? WHERE bucket = ? AND name = ? AND generation = ?",
                               (md5, self.name, path, info.generation))
        return md5

    def _check_precondition(self, path: str, live: bool, row, if_generation_match: int | None) -> None:
        if if_generation_match is None:
            return
        if if_generation_match == ONLY_IF_ABSENT:
            if live:
                raise PreconditionFailed(f"gs://{self.name}/{path} already exists")
            return
        if not live:
            raise ObjectNotFound(self.name, path)
        if row["generation"] != if_generation_match:
            raise PreconditionFailed(
                f"gs://{self.name}/{path} is generation {row['generation']}, not {if_generation_match}"
            )

    def delete(self, path: str, *, if_generation_match: int | None = None) -> None:
        target = self.file_path(path)
        with self.storage.db.transaction() as connection:
            row = self._row(connection, path)
            if row is None or not target.is_file():
                raise ObjectNotFound(self.name, path)
            self._check_precondition(path, True, row, if_generation_match)
            target.unlink()
            connection.execute("DELETE FROM objects WHERE bucket = ? AND name = ?", (self.name, path))
        self._prune_empty_folders(target.parent)

    def _prune_empty_folders(self, folder: Path) -> None:
        while folder != self.folder and folder.is_relative_to(self.folder):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def update_metadata(self, path: str, metadata: Mapping[str, str]) -> ObjectInfo:
        with self.storage.db.transaction() as connection:
            row = self._row(connection, path)
            if row is None:
                raise ObjectNotFound(self.name, path)
            merged = {**json.loads(row["metadata"]), **{str(k): str(v) for k, v in metadata.items()}}
            connection.execute(
                "UPDATE objects SET metadata = ? WHERE bucket = ? AND name = ?",
                (json.dumps(merged, sort_keys=True), self.name, path),
            )
        return self.info(path)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # A name range rather than LIKE: LIKE ignores case and would need escaping.
        rows = self.storage.db.connection().execute(
            "SELECT * FROM objects WHERE bucket = ? AND name >= ? AND name < ? ORDER BY name",
            (self.name, prefix, prefix + "\U0010ffff"),
        ).fetchall()
        for row in rows:
            yield self._info(row)
