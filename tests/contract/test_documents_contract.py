"""The document port's contract, run against both adapters (SQLite; the Firestore emulator)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from panoptes_network import runtime
from panoptes_network.ports.documents import BATCH_LIMIT, GeoPoint, Increment

T0 = datetime(2018, 2, 16, 11, 6, 23, tzinfo=timezone.utc)


@pytest.fixture
def docs(backend):
    return runtime.documents()


def test_values_round_trip_with_their_types(docs):
    value = {
        "none": None, "yes": True, "int": 42, "float": 1.5, "text": "KIC 8462852",
        "time": T0, "where": GeoPoint(19.54, -155.58), "list": [1, "two", 3.0],
        "map": {"inner": {"deeper": T0 + timedelta(seconds=1)}},
    }
    docs.set("things", "one", value)
    got = docs.get("things", "one")
    assert got == value
    assert got["time"].tzinfo is not None and got["time"].utcoffset() == timedelta(0)
    assert isinstance(got["int"], int) and isinstance(got["where"], GeoPoint)


def test_absent_document_is_none_and_delete_removes(docs):
    assert docs.get("things", "missing") is None
    docs.set("things", "gone", {"a": 1})
    docs.delete("things", "gone")
    assert docs.get("things", "gone") is None


def test_naive_datetimes_are_refused(docs):
    with pytest.raises(ValueError):
        docs.set("things", "naive", {"time": datetime(2020, 1, 1)})


def test_merge_is_deep_and_replace_is_not(docs):
    docs.set("things", "m", {"a": 1, "map": {"x": 1, "y": 2}})
    docs.set("things", "m", {"b": 2, "map": {"y": 3}}, merge=True)
    assert docs.get("things", "m") == {"a": 1, "b": 2, "map": {"x": 1, "y": 3}}
    docs.set("things", "m", {"c": 3}, merge=False)
    assert docs.get("things", "m") == {"c": 3}


def test_increment_is_atomic_under_concurrency(docs):
    docs.increment("counters", "c", "n", 5)
    assert docs.get("counters", "c") == {"n": 5}

    def bump():
        for _ in range(5):
            docs.set("counters", "c", {"n": Increment(1)})

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert docs.get("counters", "c")["n"] == 45


def test_transactions_serialise_read_modify_write(docs):
    docs.set("counters", "t", {"n": 0, "seen": []})

    def add_one(transaction):
        current = transaction.get("counters", "t")
        transaction.set("counters", "t", {"n": current["n"] + 1})
        return current["n"] + 1

    errors = []

    def worker():
        try:
            for _ in range(3):
                docs.run_transaction(add_one)
        except Exception as error:  # a lost update must surface here, not vanish with the thread
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert docs.get("counters", "t")["n"] == 12
    assert docs.run_transaction(add_one) == 13


@pytest.mark.parametrize("backend", ["gcp"], indirect=True)
def test_a_transaction_contended_on_every_attempt_raises_and_writes_nothing(docs):
    from google.api_core.exceptions import Aborted

    from panoptes_network.adapters.firestore_documents import (
        FirestoreDocuments,
        TransactionContended,
        TransactionRetry,
    )

    impatient = FirestoreDocuments(docs.client, TransactionRetry(attempts=3, first_delay=0.01, max_delay=0.02))
    attempts = []

    def always_contended(transaction):
        attempts.append(transaction.get("counters", "lost"))
        transaction.set("counters", "lost", {"n": 1})
        raise Aborted("simulated: another writer won")  # what Firestore raises on contention

    with pytest.raises(TransactionContended, match="after 3 attempts"):
        impatient.run_transaction(always_contended)
    assert attempts == [None, None, None]
    assert docs.get("counters", "lost") is None


def test_a_transaction_reads_several_documents_at_once_in_order(docs):
    docs.set("things", "b", {"n": 2})
    docs.set("other", "a", {"n": 1})
    found = docs.run_transaction(
        lambda transaction: transaction.get_many([("other", "a"), ("things", "missing"), ("things", "b")])
    )
    assert found == [{"n": 1}, None, {"n": 2}]


def test_a_transaction_reads_before_it_writes(docs):
    def read_after_write(transaction):
        transaction.set("things", "a", {"x": 1})
        transaction.get("things", "a")

    with pytest.raises(Exception):
        docs.run_transaction(read_after_write)
    assert docs.get("things", "a") is None


@pytest.fixture
def observations(docs):
    rows = {
        "o1": {"unit_id": "PAN001", "num_images": 10, "time": T0, "ra": 10.0, "tags": ["a", "b"]},
        "o2": {"unit_id": "PAN001", "num_images": 3, "time": T0 + timedelta(days=1), "ra": 200.0, "tags": ["b"]},
        "o3": {"unit_id": "PAN012", "num_images": 7, "time": T0 + timedelta(days=2), "ra": None, "tags": []},
        "o4": {"unit_id": "PAN012", "num_images": "many", "time": T0 + timedelta(days=3)},
    }
    for doc_id, data in rows.items():
        docs.set("observations", doc_id, data)
    return rows


def ids(found):
    return [doc.id for doc in found]


def test_query_equality_ranges_and_types(docs, observations):
    assert sorted(ids(docs.query("observations", [("unit_id", "==", "PAN012")]))) == ["o3", "o4"]
    assert sorted(ids(docs.query("observations", [("num_images", ">=", 7)]))) == ["o1", "o3"]
    # A number range never matches a string, as in Firestore.
    assert "o4" not in ids(docs.query("observations", [("num_images", ">", 0)]))
    assert sorted(ids(docs.query("observations", [("unit_id", "in", ["PAN001", "PAN099"])]))) == ["o1", "o2"]
    # An ``in`` of several types matches each value with its own type; 10 matches 10.0.
    assert sorted(ids(docs.query("observations", [("num_images", "in", [3, "many", True, "3"])]))) == ["o2", "o4"]
    assert ids(docs.query("observations", [("ra", "in", [10, "10", False])])) == ["o1"]
    docs.set("flags", "yes", {"v": True})
    docs.set("flags", "one", {"v": 1})
    docs.set("flags", "text", {"v": "1"})
    docs.set("flags", "list", {"v": [1]})
    assert ids(docs.query("flags", [("v", "in", [1, 5])])) == ["one"]
    assert ids(docs.query("flags", [("v", "in", [5, 7])])) == []
    assert ids(docs.query("flags", [("v", "in", ["1", "x"])])) == ["text"]
    assert ids(docs.query("flags", [("v", "in", [True])])) == ["yes"]
    assert sorted(ids(docs.query("observations", [("tags", "array_contains", "b")]))) == ["o1", "o2"]
    assert ids(docs.query("observations", [("ra", "==", None)])) == ["o3"]


def test_query_time_ranges_order_limit_offset(docs, observations):
    window = [("time", ">=", T0 + timedelta(hours=12)), ("time", "<", T0 + timedelta(days=2, hours=12))]
    assert ids(docs.query("observations", window, [("time", "asc")])) == ["o2", "o3"]
    assert ids(docs.query("observations", order_by=[("time", "desc")], limit=2)) == ["o4", "o3"]
    assert ids(docs.query("observations", order_by=[("time", "asc")], limit=2, offset=1)) == ["o2", "o3"]
    assert ids(docs.query("observations", [("unit_id", "==", "PAN001")], [("num_images", "desc")])) == ["o1", "o2"]


def test_query_selects_fields_of_each_document(docs, observations):
    docs.set("observations", "o5",
             {"unit_id": "PAN099", "time": T0 + timedelta(days=5), "sky": {"cell": 7, "other": 1}, "ra": None})
    found = docs.query("observations", [("unit_id", "in", ["PAN001", "PAN099"])], [("time", "asc")],
                       select=["num_images", "time", "sky.cell", "ra"])
    # Only the fields asked for, nested as stored; a field null or absent is left out.
    assert [(doc.id, doc.data) for doc in found] == [
        ("o1", {"num_images": 10, "time": T0, "ra": 10.0}),
        ("o2", {"num_images": 3, "time": T0 + timedelta(days=1), "ra": 200.0}),
        ("o5", {"time": T0 + timedelta(days=5), "sky": {"cell": 7}}),
    ]
    assert [doc.data for doc in docs.query("observations", [("unit_id", "==", "PAN012")], select=["tags"])] == [
        {"tags": []}, {}]


def test_count(docs, observations):
    assert docs.count("observations") == 4
    assert docs.count("observations", [("unit_id", "==", "PAN001")]) == 2
    assert docs.count("empty_collection") == 0


def test_bad_queries_are_refused(docs):
    with pytest.raises(ValueError):
        docs.query("observations", [("a", "~", 1)])
    with pytest.raises(ValueError):
        docs.query("observations", [("a", "in", list(range(31)))])


def test_set_many_writes_a_full_batch_replacing_or_merging(docs):
    docs.set("things", "kept", {"a": 1, "map": {"x": 1}})
    docs.set("things", "replaced", {"a": 1})
    batch = [(f"n{index:03d}", {"index": index, "time": T0}) for index in range(BATCH_LIMIT - 2)]
    docs.set_many("things", batch + [("kept", {"map": {"y": 2}})], merge=True)
    docs.set_many("things", [("replaced", {"b": 2})], merge=False)
    assert docs.count("things") == BATCH_LIMIT
    assert docs.get("things", "n497") == {"index": 497, "time": T0}
    assert docs.get("things", "kept") == {"a": 1, "map": {"x": 1, "y": 2}}
    assert docs.get("things", "replaced") == {"b": 2}


def test_set_many_refuses_a_bad_batch_and_writes_none_of_it(docs):
    with pytest.raises(ValueError):
        docs.set_many("things", [(str(index), {"i": index}) for index in range(BATCH_LIMIT + 1)])
    with pytest.raises(ValueError):
        docs.set_many("things", [("same", {"i": 1}), ("same", {"i": 2})])
    with pytest.raises(ValueError):
        docs.set_many("things", [("fine", {"i": 1}), ("nan", {"i": float("nan")})])
    assert docs.count("things") == 0


def test_replace_json_replaces_documents_from_their_text_all_or_none(docs):
    docs.set("things", "old", {"a": 1, "map": {"x": 1}})
    docs.replace_json("things", [("old", '{"b":2.5,"map":{"y":null}}'), ("new", '{"s":"text","n":[1,2]}')])
    assert docs.get("things", "old") == {"b": 2.5, "map": {"y": None}}
    assert docs.get("things", "new") == {"s": "text", "n": [1, 2]}
    with pytest.raises(ValueError):
        docs.replace_json("things", [("fine", '{"i":1}'), ("same", '{"i":1}'), ("same", '{"i":2}')])
    assert docs.get("things", "fine") is None and docs.count("things") == 2


def test_query_columns_gives_numbers_first_and_the_chosen_documents_as_query_would(docs, observations):
    import math

    docs.set("observations", "o5", {"unit_id": "PAN001", "num_images": True, "time": T0, "sky": {"cell": 7},
                                    "ra": 3})
    where = [("unit_id", "in", ["PAN001", "PAN012"])]
    columns = docs.query_columns("observations", where, ["ra", "num_images", "sky.cell"],
                                 select=["num_images", "time", "sky.cell"])
    assert columns.ids == ["o1", "o2", "o3", "o4", "o5"]  # id order
    nan = math.nan
    # NaN where the field is absent, null, or not a number (a string, a boolean).
    for name, expected in {"ra": [10.0, 200.0, nan, nan, 3.0], "num_images": [10, 3, 7, nan, nan],
                           "sky.cell": [nan, nan, nan, nan, 7]}.items():
        assert [None if math.isnan(value) else value for value in columns.numbers[name]] == \
            [None if math.isnan(value) else value for value in expected], name
    selected = {doc.id: doc.data
                for doc in docs.query("observations", where, select=["num_images", "time", "sky.cell"])}
    chosen = columns.documents([4, 0, 3])
    assert [(doc.id, doc.data) for doc in chosen] == [(doc_id, selected[doc_id]) for doc_id in ("o5", "o1", "o4")]
    assert chosen[0].data == {"num_images": True, "time": T0, "sky": {"cell": 7}}
    whole = docs.query_columns("observations", where, ["ra"])
    assert [doc.data for doc in whole.documents([1, 4])] == [docs.get("observations", name) for name in ("o2", "o5")]
    flat = docs.query_columns("observations", where, ["ra"], select=["ra", "unit_id"])
    assert [doc.data for doc in flat.documents(range(len(flat)))] == [
        {"ra": 10.0, "unit_id": "PAN001"}, {"ra": 200.0, "unit_id": "PAN001"}, {"unit_id": "PAN012"},
        {"unit_id": "PAN012"}, {"ra": 3, "unit_id": "PAN001"}]
    nothing = docs.query_columns("no_such_collection", [], ["ra"], select=["ra"])
    assert nothing.ids == [] and len(nothing.numbers["ra"]) == 0 and nothing.documents([]) == []
