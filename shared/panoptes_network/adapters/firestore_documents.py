"""Documents in Firestore through google-cloud-firestore.

With ``FIRESTORE_EMULATOR_HOST`` set the client talks to the emulator.

Contended transactions are retried with exponential backoff and full jitter, as
Firestore's guidance asks: the client library alone retries at once, and on a loaded
machine the same writers then collide again and again until its attempts run out.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence, TypeVar

from google.api_core import exceptions as google_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from panoptes_network.ports.documents import (
    Document,
    DocumentStore,
    Filter,
    GeoPoint,
    Increment,
    Order,
    Transaction,
    check_batch,
    check_filters,
    check_value,
)

T = TypeVar("T")


class TransactionContended(RuntimeError):
    """A transaction lost to contending writers on every attempt; nothing was written."""


@dataclass(frozen=True)
class TransactionRetry:
    """How long to keep at a contended transaction: at most about 38 s of waiting by default,
    well inside record-image's 300 s timeout. Four writers contending on one document on a
    loaded emulator needed up to 8 attempts."""

    attempts: int = 15
    first_delay: float = 0.1  # seconds
    max_delay: float = 4.0

    def delay(self, failed_attempts: int) -> float:
        """Full jitter: anywhere up to the exponential bound, so contenders spread out."""
        return random.uniform(0, min(self.max_delay, self.first_delay * 2 ** (failed_attempts - 1)))


def _contended(error: BaseException) -> bool:
    # The library wraps an aborted commit in ValueError("Failed to commit transaction in
    # N attempts"); a read inside the transaction can be aborted too.
    return isinstance(error, google_exceptions.Aborted) or (
        isinstance(error, ValueError) and isinstance(error.__cause__, google_exceptions.Aborted)
    )


def _to_firestore(value: Any) -> Any:
    if isinstance(value, GeoPoint):
        return firestore.GeoPoint(value.latitude, value.longitude)
    if isinstance(value, Increment):
        return firestore.Increment(value.amount)
    if isinstance(value, Mapping):
        return {key: _to_firestore(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_firestore(item) for item in value]
    return value


def _from_firestore(value: Any) -> Any:
    if isinstance(value, firestore.GeoPoint):
        return GeoPoint(value.latitude, value.longitude)
    if isinstance(value, datetime):
        return datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second,
            value.microsecond, tzinfo=timezone.utc,
        ) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, Mapping):
        return {key: _from_firestore(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_firestore(item) for item in value]
    return value


class _FirestoreTransaction(Transaction):
    def __init__(self, client: firestore.Client, transaction: firestore.Transaction):
        self.client = client
        self.transaction = transaction

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        snapshot = self.client.collection(collection).document(doc_id).get(transaction=self.transaction)
        return _from_firestore(snapshot.to_dict()) if snapshot.exists else None

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any] | None]:
        references = [self.client.collection(collection).document(doc_id) for collection, doc_id in keys]
        found = {snapshot.reference.path: snapshot for snapshot in self.transaction.get_all(references)}
        return [
            _from_firestore(found[reference.path].to_dict()) if found[reference.path].exists else None
            for reference in references
        ]

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], *, merge: bool = True) -> None:
        check_value(data, f"{collection}/{doc_id}")
        self.transaction.set(self.client.collection(collection).document(doc_id), _to_firestore(data), merge=merge)


class FirestoreDocuments(DocumentStore):
    def __init__(self, client: firestore.Client, retry: TransactionRetry | None = None):
        self.client = client
        self.retry = retry or TransactionRetry()

    @classmethod
    def for_project(cls, project: str) -> FirestoreDocuments:
        return cls(firestore.Client(project=project))

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        snapshot = self.client.collection(collection).document(doc_id).get()
        return _from_firestore(snapshot.to_dict()) if snapshot.exists else None

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], *, merge: bool = True) -> None:
        check_value(data, f"{collection}/{doc_id}")
        self.client.collection(collection).document(doc_id).set(_to_firestore(data), merge=merge)

    def set_many(self, collection: str, documents: Sequence[tuple[str, Mapping[str, Any]]], *,
                 merge: bool = True) -> None:
        documents = list(documents)
        check_batch(collection, documents)
        for doc_id, data in documents:
            check_value(data, f"{collection}/{doc_id}")
        if not documents:
            return
        batch = self.client.batch()
        for doc_id, data in documents:
            batch.set(self.client.collection(collection).document(doc_id), _to_firestore(data), merge=merge)
        batch.commit()

    def delete(self, collection: str, doc_id: str) -> None:
        self.client.collection(collection).document(doc_id).delete()

    def run_transaction(self, function: Callable[[Transaction], T]) -> T:
        """Run ``function`` in a transaction; raises :class:`TransactionContended` when
        every attempt lost to other writers (never a silent loss of the update)."""

        @firestore.transactional
        def attempt(transaction: firestore.Transaction) -> T:
            return function(_FirestoreTransaction(self.client, transaction))

        failed = 0
        while True:
            try:
                return attempt(self.client.transaction(max_attempts=1))
            except Exception as error:
                if not _contended(error):
                    raise
                failed += 1
                if failed >= self.retry.attempts:
                    raise TransactionContended(
                        f"transaction still contended after {failed} attempts: {error.__cause__ or error}"
                    ) from error
            time.sleep(self.retry.delay(failed))

    def _query(self, collection: str, where: Sequence[Filter], order_by: Sequence[Order]):
        check_filters(where)
        query = self.client.collection(collection)
        for field, op, value in where:
            query = query.where(filter=FieldFilter(field, op, _to_firestore(value)))
        for field, direction in order_by:
            if direction not in ("asc", "desc"):
                raise ValueError(f"order direction must be 'asc' or 'desc', not {direction!r}")
            query = query.order_by(
                field, direction=firestore.Query.ASCENDING if direction == "asc" else firestore.Query.DESCENDING
            )
        return query

    def query(
        self,
        collection: str,
        where: Sequence[Filter] = (),
        order_by: Sequence[Order] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Document]:
        query = self._query(collection, where, order_by)
        if offset:
            query = query.offset(int(offset))
        if limit is not None:
            query = query.limit(int(limit))
        return [Document(snapshot.id, _from_firestore(snapshot.to_dict())) for snapshot in query.stream()]

    def count(self, collection: str, where: Sequence[Filter] = ()) -> int:
        result = self._query(collection, where, ()).count().get()
        return int(result[0][0].value)
