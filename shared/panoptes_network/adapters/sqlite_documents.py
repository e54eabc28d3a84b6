"""Documents in SQLite: one table per collection, each document a JSON text.

Timestamps are stored as ``{"__datetime__": "2018-02-16T11:24:30.000000Z"}`` (fixed
width, so text order is time order) and GeoPoints as ``{"__geopoint__": [lat, lon]}``.
Queries compile to ``json_extract`` conditions with a type guard, so that, as in
Firestore, ``> 5`` never matches a string. The first query on a field creates an
expression index on it, so filters and orderings stay index lookups as a collection
grows.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from panoptes_network import crashpoints
from panoptes_network.adapters.sqlite import ThreadLocalConnections
from panoptes_network.ports.documents import (
    Columns,
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
    projection,
)

T = TypeVar("T")

COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,99}")
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
DATETIME_TAG, GEOPOINT_TAG = "__datetime__", "__geopoint__"
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_TYPE_GUARDS = {
    bool: "IN ('true', 'false')",
    int: "IN ('integer', 'real')",
    float: "IN ('integer', 'real')",
    str: "= 'text'",
}


_PLAIN = frozenset({str, int, float, bool, type(None)})  # stored as they are; checked first, as most values are


def _encode(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if type(value) is dict:
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return {DATETIME_TAG: value.astimezone(timezone.utc).strftime(DATETIME_FORMAT)}
    if isinstance(value, GeoPoint):
        return {GEOPOINT_TAG: [value.latitude, value.longitude]}
    if isinstance(value, Mapping):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    return value


def _plain(data: Mapping[str, Any]) -> bool:
    """Whether a document holds only maps, strings, finite numbers, booleans and nulls, under
    non-empty text keys (what JSON stores as it is): the bulk path's one check."""
    for key, value in data.items():
        kind = type(value)
        if kind is dict:
            if not _plain(value):
                return False
        elif kind not in _PLAIN or (kind is float and not math.isfinite(value)) or type(key) is not str or not key:
            return False
    return True


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if DATETIME_TAG in obj:
            return datetime.strptime(obj[DATETIME_TAG], DATETIME_FORMAT).replace(tzinfo=timezone.utc)
        if GEOPOINT_TAG in obj:
            return GeoPoint(*obj[GEOPOINT_TAG])
    return obj


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(_encode(data), separators=(",", ":"), allow_nan=False)


_TAGGED = json.JSONDecoder(object_hook=_decode_object)  # made once (json.loads with a hook makes one a call)


def loads(text: str) -> dict[str, Any]:
    # Most documents (a star's) hold no tagged value: decoded without a Python call per map.
    return _TAGGED.decode(text) if '"__' in text else json.loads(text)


def loads_many(texts: Sequence[str]) -> list[Any]:
    """:func:`loads` of each text, decoded as one JSON array where none holds a tagged value
    (json.loads costs about a microsecond a call before it reads a character)."""
    if any('"__' in text for text in texts):
        return [loads(text) for text in texts]
    return json.loads("[" + ",".join(texts) + "]") if texts else []


def merge(existing: Mapping[str, Any] | None, update: Mapping[str, Any], deep: bool) -> dict[str, Any]:
    """Firestore's set semantics: maps merged deeply with ``merge``, Increments resolved."""
    result = dict(existing or {}) if deep else {}
    for key, value in update.items():
        if type(value) in _PLAIN:
            result[key] = value
            continue
        current = (existing or {}).get(key)
        if isinstance(value, Increment):
            base = current if isinstance(current, (int, float)) and not isinstance(current, bool) else 0
            result[key] = base + value.amount
        elif deep and isinstance(value, Mapping) and isinstance(current, Mapping):
            result[key] = merge(current, value, deep=True)
        elif isinstance(value, Mapping):
            result[key] = merge(None, value, deep=False)
        else:
            result[key] = value
    return result


merge_into = merge  # set_many's ``merge`` argument hides the function there


def _json_path(field: str) -> str:
    parts = field.split(".")
    for part in parts:
        if not FIELD_NAME.fullmatch(part):
            raise ValueError(f"field path {field!r} is not made of plain names")
    return "$." + ".".join(parts)


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _Query:
    """Compiles filters and orderings to SQL over ``json_extract``, noting indexes to create."""

    def __init__(self):
        self.conditions: list[str] = []
        self.params: list[Any] = []
        self.indexed: set[str] = set()

    def value_expression(self, field: str, value: Any) -> str:
        path = _json_path(field)
        if isinstance(value, datetime):
            path += "." + DATETIME_TAG
        expression = f"json_extract(data, {_sql_literal(path)})"
        self.indexed.add(expression)
        return expression

    def add(self, field: str, op: str, value: Any) -> None:
        if op == "in":
            parts = []
            # Numbers and strings as one ``expression IN (...)`` each, which SQLite answers
            # from the expression index (an OR of equalities it would answer by a scan).
            # The type guard parses each row's document again, so it is left out where no other
            # type can match: SQLite never finds text equal to a number, and JSON true and false
            # come out of json_extract as 1 and 0, so only a 0 or 1 needs the guard.
            for kinds, guard in (((int, float), _TYPE_GUARDS[int]), ((str,), _TYPE_GUARDS[str])):
                same = [item for item in value if type(item) in kinds]
                if same:
                    expression = self.value_expression(field, same[0])
                    needs_guard = kinds != (str,) and any(item in (0, 1) for item in same)
                    path = _sql_literal(_json_path(field))
                    guarded = f"json_type(data, {path}) {guard} AND " if needs_guard else ""
                    parts.append(f"({guarded}{expression} IN ({', '.join('?' * len(same))}))")
                    self.params.extend(same)
            for item in value:
                if type(item) in (int, float, str):
                    continue
                sub = _Query()
                sub.add(field, "==", item)
                parts.append("(" + " AND ".join(sub.conditions) + ")")
                self.params.extend(sub.params)
                self.indexed |= sub.indexed
            self.conditions.append("(" + " OR ".join(parts) + ")")
            return
        path = _sql_literal(_json_path(field))
        if op == "array_contains":
            if isinstance(value, (datetime, GeoPoint, Mapping, list)):
                raise ValueError("array_contains takes a plain value")
            self.conditions.append(
                f"(json_type(data, {path}) = 'array' AND EXISTS (SELECT 1 FROM json_each(data, {path})"
                f" WHERE json_each.value = ? AND json_each.type {_TYPE_GUARDS.get(type(value), 'IS NOT NULL')}))"
            )
            self.params.append(value)
            return
        if value is None:
            if op not in ("==", "!="):
                raise ValueError("None can only be compared with == or !=")
            self.conditions.append(f"json_type(data, {path}) {'=' if op == '==' else '!='} 'null'")
            return
        if isinstance(value, GeoPoint):
            raise ValueError("GeoPoints cannot be filtered on")
        expression = self.value_expression(field, value)
        if isinstance(value, datetime):
            guard = f"json_type(data, {_sql_literal(_json_path(field) + '.' + DATETIME_TAG)}) = 'text'"
            parameter: Any = value.astimezone(timezone.utc).strftime(DATETIME_FORMAT)
        else:
            guard = f"json_type(data, {path}) {_TYPE_GUARDS[type(value)]}"
            parameter = (1 if value else 0) if isinstance(value, bool) else value
        if isinstance(value, bool) and op not in ("==", "!="):
            raise ValueError("booleans can only be compared with == or !=")
        sql_op = {"==": "="}.get(op, op)
        self.conditions.append(f"({guard} AND {expression} {sql_op} ?)")
        self.params.append(parameter)

    def order_expression(self, field: str) -> str:
        path = _json_path(field)
        self.conditions.append(f"json_type(data, {_sql_literal(path)}) IS NOT NULL")
        return (
            f"COALESCE(json_extract(data, {_sql_literal(path + '.' + DATETIME_TAG)}),"
            f" json_extract(data, {_sql_literal(path)}))"
        )


class _SQLiteTransaction(Transaction):
    def __init__(self, store: SQLiteDocuments, connection: sqlite3.Connection):
        self.store = store
        self.connection = connection
        self.writes: list[tuple[str, str, Mapping[str, Any], bool]] = []

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        if self.writes:
            raise RuntimeError("a transaction must do all its reads before its writes (as Firestore requires)")
        return self.store._get(self.connection, collection, doc_id)

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], *, merge: bool = True) -> None:
        check_value(data, f"{collection}/{doc_id}")
        self.writes.append((collection, doc_id, data, merge))


class SQLiteDocuments(DocumentStore):
    def __init__(self, path: Path):
        self.db = ThreadLocalConnections(Path(path), "")
        self._known_tables: set[str] = set()
        self._known_indexes: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _table(collection: str) -> str:
        if not isinstance(collection, str) or not COLLECTION_NAME.fullmatch(collection):
            raise ValueError(f"invalid collection name {collection!r}")
        return f'"docs_{collection}"'

    def _ensure_table(self, connection: sqlite3.Connection, collection: str) -> str:
        table = self._table(collection)
        if table not in self._known_tables:
            connection.execute(f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
            with self._lock:
                self._known_tables.add(table)
        return table

    def _table_exists(self, connection: sqlite3.Connection, collection: str) -> bool:
        table = self._table(collection)
        if table in self._known_tables:
            return True
        row = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table.strip('"'),)
        ).fetchone()
        if row:
            with self._lock:
                self._known_tables.add(table)
        return row is not None

    @staticmethod
    def _check_id(doc_id: str) -> None:
        if not isinstance(doc_id, str) or not doc_id or "/" in doc_id or len(doc_id) > 1500:
            raise ValueError(f"invalid document id {doc_id!r}")

    def _get(self, connection: sqlite3.Connection, collection: str, doc_id: str) -> dict[str, Any] | None:
        self._check_id(doc_id)
        if not self._table_exists(connection, collection):
            return None
        row = connection.execute(f"SELECT data FROM {self._table(collection)} WHERE id = ?", (doc_id,)).fetchone()
        return loads(row["data"]) if row else None

    def _write(self, connection, collection: str, doc_id: str, data: Mapping[str, Any], merge_: bool) -> None:
        self._check_id(doc_id)
        table = self._ensure_table(connection, collection)
        existing = self._get(connection, collection, doc_id)
        merged = merge(existing, data, deep=merge_)
        connection.execute(
            f"INSERT INTO {table} (id, data) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            (doc_id, dumps(merged)),
        )

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        return self._get(self.db.connection(), collection, doc_id)

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], *, merge: bool = True) -> None:
        check_value(data, f"{collection}/{doc_id}")
        with self.db.transaction() as connection:
            self._write(connection, collection, doc_id, data, merge)

    def set_many(self, collection: str, documents: Sequence[tuple[str, Mapping[str, Any]]], *,
                 merge: bool = True) -> None:
        documents = list(documents)
        check_batch(collection, documents)
        rows = []
        for doc_id, data in documents:
            self._check_id(doc_id)
            if merge or not _plain(data):
                check_value(data, f"{collection}/{doc_id}")
            if not merge:  # a bulk load's documents are plain JSON: written as they are, checked in one pass
                rows.append((doc_id, json.dumps(data, separators=(",", ":")) if _plain(data)
                             else dumps(merge_into(None, data, deep=False))))
        with self.db.transaction() as connection:
            if merge:
                for doc_id, data in documents:
                    self._write(connection, collection, doc_id, data, True)
                return
            # Replacing needs no read: one statement for the whole batch.
            table = self._ensure_table(connection, collection)
            connection.executemany(
                f"INSERT INTO {table} (id, data) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                rows)

    replaces_json_in_bulk = True

    def replace_json(self, collection: str, rows: Sequence[tuple[str, str]]) -> None:
        # Stored as given (JSON is what a row holds): one statement, one transaction, however
        # many rows. The table's expression indexes are dropped first and made again after,
        # so a reload builds each once from sorted keys instead of updating it row by row.
        # In id order, so the primary key grows at its end rather than page by random page.
        rows = sorted(rows, key=lambda row: row[0])
        for index, (doc_id, _) in enumerate(rows):
            self._check_id(doc_id)
            if index and doc_id == rows[index - 1][0]:
                raise ValueError(f"document {doc_id!r} twice in one write")
        with self.db.transaction() as connection:
            table = self._ensure_table(connection, collection)
            indexes = connection.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                (table.strip('"'),)).fetchall()
            for index in indexes:
                connection.execute(f'DROP INDEX "{index["name"]}"')
            connection.executemany(
                f"INSERT INTO {table} (id, data) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                rows)
            for index in indexes:
                connection.execute(index["sql"])

    def delete(self, collection: str, doc_id: str) -> None:
        self._check_id(doc_id)
        with self.db.transaction() as connection:
            if self._table_exists(connection, collection):
                connection.execute(f"DELETE FROM {self._table(collection)} WHERE id = ?", (doc_id,))

    def run_transaction(self, function: Callable[[Transaction], T]) -> T:
        # BEGIN IMMEDIATE takes the write lock before the first read, so there is no
        # contention to retry: concurrent transactions simply run one after another.
        with self.db.transaction() as connection:
            transaction = _SQLiteTransaction(self, connection)
            result = function(transaction)
            for collection, doc_id, data, merge_ in transaction.writes:
                self._write(connection, collection, doc_id, data, merge_)
                crashpoints.reached("documents:mid-transaction")
        return result

    def _compile(self, collection: str, where: Sequence[Filter], order_by: Sequence[Order]):
        check_filters(where)
        query = _Query()
        for field, op, value in where:
            query.add(field, op, value)
        orderings = []
        for field, direction in order_by:
            if direction not in ("asc", "desc"):
                raise ValueError(f"order direction must be 'asc' or 'desc', not {direction!r}")
            orderings.append(f"{query.order_expression(field)} {direction.upper()}")
        orderings.append("id ASC")
        clause = (" WHERE " + " AND ".join(query.conditions)) if query.conditions else ""
        return query, clause, " ORDER BY " + ", ".join(orderings)

    def _ensure_indexes(self, connection, collection: str, expressions: set[str]) -> None:
        table = self._table(collection)
        for expression in expressions:
            key = f"{table}:{expression}"
            if key in self._known_indexes:
                continue
            name = "ix_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{collection}_{expression}").strip("_")
            connection.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON {table} ({expression})')
            with self._lock:
                self._known_indexes.add(key)

    def query(
        self,
        collection: str,
        where: Sequence[Filter] = (),
        order_by: Sequence[Order] = (),
        limit: int | None = None,
        offset: int = 0,
        select: Sequence[str] | None = None,
    ) -> list[Document]:
        connection = self.db.connection()
        query, clause, ordering = self._compile(collection, where, order_by)
        if not self._table_exists(connection, collection):
            return []
        self._ensure_indexes(connection, collection, query.indexed)
        columns = "data"
        if select is not None:
            # json_extract with several paths answers a JSON array (a path given twice: one field still makes one).
            paths = [_sql_literal(_json_path(field)) for field in select] * (2 if len(select) == 1 else 1)
            columns = f"json_extract(data, {', '.join(paths)}) AS data" if select else "'[]' AS data"
        sql = f"SELECT id, {columns} FROM {self._table(collection)}{clause}{ordering}"
        params = list(query.params)
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else int(limit), int(offset)]
        rows = connection.execute(sql, params).fetchall()
        if select is not None:
            return [Document(row["id"], projection(dict(zip(select, loads(row["data"]))))) for row in rows]
        return [Document(row["id"], loads(row["data"])) for row in rows]

    def query_columns(self, collection: str, where: Sequence[Filter], numbers: Sequence[str],
                      select: Sequence[str] | None = None) -> Columns:
        # One json_extract of every field wanted, per row: each JSON function call parses the
        # document again, and that parse is most of a row's cost. The values come back as one
        # JSON array a row, decoded for all rows at once; the documents are then made only of
        # the rows chosen. A footprint query keeps a few thousand stars of a third more
        # candidates (bench/star_catalog.py).
        import numpy as np

        connection = self.db.connection()
        query, clause, ordering = self._compile(collection, where, ())
        if not self._table_exists(connection, collection):
            return Columns([], {path: np.zeros(0) for path in numbers}, lambda indices: [])
        self._ensure_indexes(connection, collection, query.indexed)
        fields = list(dict.fromkeys([*(select or ()), *numbers]))  # select's first, so its values lead
        paths = [_sql_literal(_json_path(field)) for field in fields] * (2 if len(fields) == 1 else 1)
        extract = f"json_extract(data, {', '.join(paths)})" if fields else "'[]'"
        cursor = connection.cursor()
        cursor.row_factory = None  # plain tuples: thousands of rows, no sqlite3.Row each
        rows = cursor.execute(f"SELECT id, {extract}{', data' if select is None else ''} "
                              f"FROM {self._table(collection)}{clause}{ordering}", query.params).fetchall()
        values = loads_many([row[1] for row in rows])
        columns = {}
        for path in numbers:
            at = fields.index(path)
            columns[path] = np.array([row[at] if type(row[at]) in (int, float) else math.nan for row in values], float)
        flat = select is not None and not any("." in field for field in select)

        def documents(indices: Sequence[int]) -> list[Document]:
            if select is None:
                return [Document(rows[index][0], data)
                        for index, data in zip(indices, loads_many([rows[index][2] for index in indices]))]
            chosen = []
            for index in indices:
                selected = values[index][:len(select)]
                if flat:  # top-level fields: the projection without its path walk
                    data = dict(zip(select, selected)) if None not in selected else {
                        field: value for field, value in zip(select, selected) if value is not None}
                else:
                    data = projection(dict(zip(select, selected)))
                chosen.append(Document(rows[index][0], data))
            return chosen

        return Columns([row[0] for row in rows], columns, documents)

    def count(self, collection: str, where: Sequence[Filter] = ()) -> int:
        connection = self.db.connection()
        query, clause, _ = self._compile(collection, where, ())
        if not self._table_exists(connection, collection):
            return 0
        self._ensure_indexes(connection, collection, query.indexed)
        row = connection.execute(f"SELECT COUNT(*) AS n FROM {self._table(collection)}{clause}", query.params)
        return int(row.fetchone()["n"])
