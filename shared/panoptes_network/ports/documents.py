"""The document port: a small subset of Firestore that both adapters can honour exactly.

Values are JSON-like (None, bool, int, float, str, list, dict) plus timezone-aware UTC
``datetime`` and :class:`GeoPoint`. ``set(..., merge=True)`` merges maps deeply, as
Firestore does; :class:`Increment` adds atomically. Transactions read first, then write,
and are retried by the adapter on contention, so the function given may run more than
once.

Adapters: :mod:`panoptes_network.adapters.sqlite_documents` and
:mod:`panoptes_network.adapters.firestore_documents`; both pass
``tests/contract/test_documents_contract.py``.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

T = TypeVar("T")

OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "array_contains")
BATCH_LIMIT = 500  # Firestore's most writes in one batch


@dataclass(frozen=True)
class GeoPoint:
    latitude: float
    longitude: float

    def __post_init__(self):
        if not (-90 <= self.latitude <= 90) or not (-180 <= self.longitude <= 180):
            raise ValueError(f"GeoPoint({self.latitude}, {self.longitude}) is off the globe")

    def to_json(self) -> dict[str, float]:
        return {"latitude": self.latitude, "longitude": self.longitude}


@dataclass(frozen=True)
class Increment:
    """Add ``amount`` to the stored number (missing counts as 0) in one atomic step."""

    amount: int | float = 1


@dataclass(frozen=True)
class Document:
    id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Columns:
    """What :meth:`DocumentStore.query_columns` answers: ids, numeric columns, and the
    documents of the rows chosen by index, decoded only when asked for."""

    ids: list[str]
    numbers: dict[str, Any]  # field path -> numpy float array, NaN where missing or not a number
    _documents: Callable[[Sequence[int]], list[Document]]

    def __len__(self) -> int:
        return len(self.ids)

    def documents(self, indices: Sequence[int]) -> list[Document]:
        return self._documents([int(index) for index in indices])


def _number_or_nan(value: Any) -> float:
    return float(value) if type(value) in (int, float) else math.nan


Filter = tuple[str, str, Any]
Order = tuple[str, str]  # (field, "asc" | "desc")


class Transaction(abc.ABC):
    @abc.abstractmethod
    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None: ...

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """Several documents at once (one round trip where the store allows), in order."""
        return [self.get(collection, doc_id) for collection, doc_id in keys]

    @abc.abstractmethod
    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], *, merge: bool = True) -> None: ...


class DocumentStore(abc.ABC):
    @abc.abstractmethod
    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """The document's data, or None if absent."""

    @abc.abstractmethod
    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], *, merge: bool = True) -> None:
        """Write; with ``merge`` keep fields not given (maps merged deeply)."""

    @abc.abstractmethod
    def delete(self, collection: str, doc_id: str) -> None: ...

    @abc.abstractmethod
    def run_transaction(self, function: Callable[[Transaction], T]) -> T:
        """Run ``function(transaction)`` atomically and return its result."""

    @abc.abstractmethod
    def query(
        self,
        collection: str,
        where: Sequence[Filter] = (),
        order_by: Sequence[Order] = (),
        limit: int | None = None,
        offset: int = 0,
        select: Sequence[str] | None = None,
    ) -> list[Document]:
        """Documents matching every filter, ordered, at most ``limit``.

        With ``select`` (field paths, dotted into maps), each document holds only those
        fields, and only where they are set and not null (:func:`projection`): what a reader
        of many large documents needs, without reading or decoding the rest."""

    @abc.abstractmethod
    def count(self, collection: str, where: Sequence[Filter] = ()) -> int: ...

    @abc.abstractmethod
    def set_many(self, collection: str, documents: Sequence[tuple[str, Mapping[str, Any]]], *,
                 merge: bool = True) -> None:
        """Write up to :data:`BATCH_LIMIT` documents ``(doc_id, data)`` in one batch: all or none.

        For bulk loads (the star catalog): one round trip, not one per document. A load of
        more is split into batches by the caller, who knows how to resume after a failure.
        """

    # Whether replace_json writes any number of rows in one transaction at bulk-load speed
    # (SQLite), so a loader that can build JSON text itself should hand it large pieces.
    replaces_json_in_bulk = False

    def replace_json(self, collection: str, rows: Sequence[tuple[str, str]]) -> None:
        """Replace documents given as ``(doc_id, JSON text of a map)``, all or none: for a loader
        that builds the text itself (the star catalog), so a store that keeps JSON writes it as
        it is, without a dict per document. The texts must hold only plain JSON values (no
        tagged datetimes or GeoPoints, no NaN), and the caller vouches for that: where
        :attr:`replaces_json_in_bulk`, they are not checked one by one.

        Here: decoded and written with :meth:`set_many`, at most :data:`BATCH_LIMIT` at once."""
        import json

        rows = list(rows)
        if len(rows) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} documents in one batch on this store, not {len(rows)}")
        self.set_many(collection, [(doc_id, json.loads(text)) for doc_id, text in rows], merge=False)

    def increment(self, collection: str, doc_id: str, field: str, amount: int | float = 1) -> None:
        self.set(collection, doc_id, {field: Increment(amount)}, merge=True)

    def query_columns(self, collection: str, where: Sequence[Filter], numbers: Sequence[str],
                      select: Sequence[str] | None = None) -> "Columns":
        """The documents matching every filter, in id order, as numeric columns first: for a
        reader that picks a few of many candidates by their numbers (the stars of a frame's
        footprint by position and magnitude) and needs whole documents of those alone.

        ``numbers`` (field paths): one float array each, NaN where the field is missing or
        not a number. :meth:`Columns.documents` then gives the chosen documents, holding
        ``select`` as :meth:`query` does.

        Here: the documents are read whole (with ``select`` and ``numbers``) and the columns
        taken from them; a store that can read the numbers alone overrides this."""
        import numpy as np

        read = None if select is None else sorted({*select, *numbers})
        found = self.query(collection, where, select=read)
        columns = {path: np.array([_number_or_nan(field_value(doc.data, path)) for doc in found], float)
                   for path in numbers}

        def documents(indices: Sequence[int]) -> list[Document]:
            if select is None:
                return [found[index] for index in indices]
            return [Document(found[index].id, projection({path: field_value(found[index].data, path)
                                                          for path in select})) for index in indices]

        return Columns([doc.id for doc in found], columns, documents)


_PLAIN = frozenset({str, int, float, bool, type(None)})


def check_value(value: Any, where: str = "value") -> None:
    """Refuse what one adapter could store and the other could not."""
    if type(value) in _PLAIN:  # the common case first: typing's isinstance checks are slow
        if type(value) is float and not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number")
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str or not key:
                raise ValueError(f"{where}: field names must be non-empty strings")
            check_value(item, f"{where}.{key}")
        return
    if value is None or isinstance(value, (bool, str, GeoPoint, Increment)):
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number")
        return
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{where}: datetime {value} has no timezone; use UTC")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"{where}: field names must be non-empty strings")
            check_value(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if isinstance(item, (list, tuple)):
                raise ValueError(f"{where}[{index}]: lists may not hold lists")
            check_value(item, f"{where}[{index}]")
        return
    raise ValueError(f"{where}: {type(value).__name__} cannot be stored in a document")


def projection(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": None}`` -> ``{"a": {"b": 1}}``: selected fields as a document holds them."""
    document: dict[str, Any] = {}
    for path, value in values.items():
        if value is None:
            continue
        *parents, name = path.split(".")
        target = document
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = value
    return document


def field_value(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None."""
    for name in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(name)
    return data


def check_batch(collection: str, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """What :meth:`DocumentStore.set_many` refuses of a batch as a whole, the same on every
    adapter (each document is then checked by :func:`check_value`, or as strictly)."""
    if len(documents) > BATCH_LIMIT:
        raise ValueError(f"a batch holds at most {BATCH_LIMIT} writes, not {len(documents)}")
    if len({doc_id for doc_id, _ in documents}) != len(documents):
        raise ValueError("a batch may write each document only once")


def check_filters(where: Iterable[Filter]) -> None:
    for field, op, value in where:
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
        if op == "in" and (not isinstance(value, (list, tuple)) or not 0 < len(value) <= 30):
            raise ValueError("'in' takes a list of 1 to 30 values")
        check_value(value, field)


def as_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def to_jsonable(value: Any) -> Any:
    """A document value as JSON takes it: ISO 8601 UTC times, GeoPoints as
    ``{"latitude", "longitude"}``, non-finite numbers as null, numpy arrays and scalars as
    lists and Python numbers."""
    kind = type(value)  # the common kinds first, by type: isinstance against Mapping is slow
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {key: to_jsonable(item) for key, item in value.items()}
    if kind is list:
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, GeoPoint):
        return value.to_json()
    if isinstance(value, Mapping):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # arrays and scalars, numpy not imported here
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
