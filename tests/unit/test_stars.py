"""The stars collection on both backends: loads that resume and do not repeat, a TIC export,
and footprint queries checked against a brute-force scan. On the Firestore emulator
(a few hundred writes a second) each test loads only the stars it needs."""

from __future__ import annotations

import numpy as np
import pytest

from panoptes_network import catalog, runtime, sky, stars
from panoptes_network.stack import cli
from tests.unit.test_catalog import FULL_SHAPE, PIXEL_SCALE, brute_force, keys, tan_wcs

# (ra, dec, rotation): rotated, over the pole (and across RA = 0 there), across RA = 0 at the equator.
FIELDS = [(100.0, 20.0, 30.0), (0.5, 88.0, 45.0), (359.0, 0.0, -70.0)]
WIDTH, HEIGHT = FULL_SHAPE[1] * PIXEL_SCALE, FULL_SHAPE[0] * PIXEL_SCALE
MAG_LIMIT = 7.0  # the stars these tests load: enough to fill each field, few enough for the emulator


def near_fields(mag_limit: float = MAG_LIMIT) -> np.ndarray:
    """The bundled stars brighter than ``mag_limit`` within 12 deg of a field centre (the
    footprints and some sky round them, so a query must also leave stars out)."""
    everything = catalog.bundled_stars()
    bright = everything[everything["mag"] < mag_limit]
    near = np.zeros(len(bright), bool)
    for ra, dec, _ in FIELDS:
        near |= sky.separation(ra, dec, bright["ra"], bright["dec"]) < 12
    return bright[near]


def document_keys(found) -> set[int]:
    """As test_catalog.keys: the Gaia id, or minus the Hipparcos number (documents ``HIP n``)."""
    return {-int(doc.id.removeprefix("HIP ")) if doc.id.startswith("HIP ") else int(doc.id) for doc in found}


@pytest.fixture
def loaded(backend):
    subset = near_fields()
    result = stars.load(runtime.documents(), stars.gaia_source(subset, "test-fields", "test fields"))
    assert result.written == len(subset)
    return subset


@pytest.mark.parametrize("ra, dec, rotation", FIELDS)
def test_a_footprint_query_answers_what_a_brute_force_scan_finds(loaded, backend, ra, dec, rotation):
    documents = runtime.documents()
    # The emulator spends ~0.2 s on each value of an ``in``: there, one query of 30 coarser cells.
    cells = {"local": stars.MAX_FOOTPRINT_CELLS, "gcp": 30}[backend]
    expected = brute_force(loaded, tan_wcs(ra, dec, rotation), FULL_SHAPE)
    found = stars.in_footprint(documents, ra, dec, WIDTH, HEIGHT, rotation, max_cells=cells)
    assert len(expected) > 20 and document_keys(found) == expected
    by_wcs = stars.in_footprint(documents, wcs=tan_wcs(ra, dec, rotation), shape=FULL_SHAPE, max_cells=cells)
    assert document_keys(by_wcs) == expected
    magnitudes = [doc.data["mag"] for doc in found]
    assert magnitudes == sorted(magnitudes)
    middle = stars.in_footprint(documents, ra, dec, WIDTH, HEIGHT, rotation, mag_min=5.5, mag_max=6.5,
                               max_cells=cells)
    assert document_keys(middle) == keys(loaded[(loaded["mag"] >= 5.5) & (loaded["mag"] <= 6.5)]) & expected
    assert 0 < len(middle) < len(found)


def test_a_star_document_says_what_its_id_is(loaded):
    documents = runtime.documents()
    star = loaded[loaded["id"] > 0][0]
    document = documents.get(stars.COLLECTION, str(star["id"]))
    assert document["id_kind"] == "gaia_dr3_source_id" and document["catalog"] == "gaia-dr3"
    assert document["ids"] == {"gaia_dr3": str(star["id"])} and document["epoch"] == 2016.0
    assert document["ra"] == star["ra"] and document["dec"] == star["dec"]
    assert document["mag"] == document["magnitudes"]["G"] == pytest.approx(star["mag"], abs=1e-4)
    assert document["pmra"] == pytest.approx(star["pmra"], abs=1e-4)
    assert document[sky.INDEX_FIELD] == sky.cells_of(star["ra"], star["dec"])
    polaris = documents.get(stars.COLLECTION, "HIP 11767")
    assert polaris["id_kind"] == "hipparcos_number" and polaris["ids"] == {"hip": "11767"}
    assert polaris["pmra"] is None and polaris["catalog"] == "hipparcos-2"


def test_a_load_resumes_where_it_stopped_and_is_not_made_twice(backend):
    documents = runtime.documents()
    subset = catalog.bundled_stars()[:600]
    source = stars.gaia_source(subset, "resume-test", "the 600 brightest")
    seen = []
    first = stars.load(documents, source, stop_after=500, progress=lambda done, total: seen.append((done, total)))
    assert (first.written, first.resumed_from) == (500, 0) and seen == [(0, 600), (500, 600)]
    assert documents.count(stars.COLLECTION) == 500
    assert stars.load_state(documents, source)["loaded"] == 500 and not stars.load_state(documents, source)["complete"]
    second = stars.load(documents, source)
    assert (second.written, second.resumed_from, second.already_loaded) == (100, 500, False)
    assert documents.count(stars.COLLECTION) == 600 and stars.load_state(documents, source)["complete"]
    assert stars.load(documents, source).already_loaded
    again = stars.load(documents, source, again=True)
    assert again.written == 600 and documents.count(stars.COLLECTION) == 600


TIC_CSV = """\
# TIC v8.2 export from MAST
ID,version,HIP,TYC,UCAC,TWOMASS,GAIA,ra,dec,pmRA,pmDEC,Tmag,Vmag,Bmag,Jmag,GAIAmag
261136679,20190415,28104,9385-01258-1,,06120081-8030302,4623036865373793408,93.0135,-80.5039,-8.41,-2.86,8.18,8.82,9.56,7.71,8.64
38846515,20190415,,,,,5290820092848012672,104.1237,-61.5532,,,10.53,11.3,,,
"""


def test_a_tic_export_loads_with_tic_ids(backend, tmp_path):
    path = tmp_path / "tic.csv"
    path.write_text(TIC_CSV)
    documents = runtime.documents()
    result = stars.load(documents, stars.tic_source(path))
    assert result.written == 2 and result.source.startswith("tic-")
    pi_mensae = documents.get(stars.COLLECTION, "261136679")
    assert pi_mensae["ids"] == {"tic": "261136679", "hip": "28104", "tyc": "9385-01258-1",
                                "twomass": "06120081-8030302", "gaia_dr2": "4623036865373793408"}
    assert pi_mensae["magnitudes"] == {"T": 8.18, "V": 8.82, "B": 9.56, "J": 7.71, "G": 8.64}
    assert (pi_mensae["catalog"], pi_mensae["id_kind"], pi_mensae["epoch"]) == ("tic", "tic_id", 2000.0)
    assert (pi_mensae["mag"], pi_mensae["pmra"], pi_mensae["pmdec"]) == (8.18, -8.41, -2.86)
    assert pi_mensae[sky.INDEX_FIELD] == sky.cells_of(93.0135, -80.5039)
    other = documents.get(stars.COLLECTION, "38846515")
    assert other["pmra"] is None and other["magnitudes"] == {"T": 10.53, "V": 11.3}
    found = stars.in_footprint(documents, 93.0, -80.5, 2.0, 2.0)
    assert [doc.id for doc in found] == ["261136679"]
    assert found[0].data == {key: pi_mensae[key] for key in stars.FOOTPRINT_FIELDS}
    assert stars.in_footprint(documents, 93.0, -80.5, 2.0, 2.0, fields=None)[0].data == pi_mensae


def test_a_catalog_reload_keeps_what_processing_wrote_on_the_stars(backend, tmp_path):
    """catalog load replaces star documents whole; their lightcurve summaries come back."""
    from datetime import datetime, timezone

    from panoptes_network.pipeline import process

    path = tmp_path / "tic.csv"
    path.write_text(TIC_CSV)
    documents = runtime.documents()
    stars.load(documents, stars.tic_source(path))
    first, second = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc)
    for run, when, rms in (("RUN1", first, 0.004), ("RUN2", second, 0.006)):
        documents.set(process.LIGHTCURVES, f"{run}_261136679", {"picid": "261136679", "time": when,
                                                                "best_rms": rms, "star_counted": True})
    documents.set(process.LIGHTCURVES, "RUN3_261136679", {"picid": "261136679", "time": second,
                                                          "best_rms": 0.001})  # not counted yet
    documents.set(stars.COLLECTION, "261136679", {"num_lightcurves": 2, "best_rms": 0.004,
                                                  "last_processed": second}, merge=True)
    stars.load(documents, stars.tic_source(path), again=True)
    star = documents.get(stars.COLLECTION, "261136679")
    assert (star["num_lightcurves"], star["best_rms"], star["last_processed"]) == (2, 0.004, second)
    assert star["catalog"] == "tic"  # the catalog's own fields are the reloaded ones
    assert "num_lightcurves" not in documents.get(stars.COLLECTION, "38846515")


@pytest.mark.parametrize("text, reason", [
    ("TIC,ra,dec\n1,2,3\n", "no column ID"),
    ("ID,ra,dec,Tmag\n12,10.0,95.0,8\n", "line 2: TIC 12 has no position"),
    ("ID,ra,dec,Tmag\n12,10.0,5.0,bright\n", "line 2, Tmag: 'bright' is not a number"),
    ("ID,ra,dec\n12,10.0,5.0\n12,10.0,5.0\n", "line 3: TIC 12 appears twice"),
    ("ID,ra,dec\n", "no stars in it"),
])
def test_a_bad_tic_export_is_refused_before_anything_is_written(tmp_path, text, reason):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(stars.CatalogError, match=reason):
        stars.tic_source(path)


def test_catalog_load_command_loads_a_tic_file_once_and_reports_a_bad_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PANOPTES_BACKEND", "local")
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(tmp_path / "data"))  # restored after: --data-dir sets it
    path = tmp_path / "tic.csv"
    path.write_text(TIC_CSV)
    data = ["--data-dir", str(tmp_path / "data")]
    runtime.reset()
    try:
        assert cli.main(["catalog", "load", "--tic", str(path), *data]) == 0
        assert "2 stars written into stars" in capsys.readouterr().out
        assert cli.main(["catalog", "load", "--tic", str(path), *data]) == 0
        assert "already loaded (2 stars)" in capsys.readouterr().out
        assert runtime.documents().count(stars.COLLECTION) == 2
        (tmp_path / "bad.csv").write_text("name,ra,dec\nVega,279.2,38.8\n")
        assert cli.main(["catalog", "load", "--tic", str(tmp_path / "bad.csv"), *data]) == 2
        assert "not a TIC export" in capsys.readouterr().err
    finally:
        runtime.reset()


def test_up_loads_the_bundled_catalog_on_its_first_start_only(tmp_path, monkeypatch):
    """What `up` does before serving, with a small catalog standing in for the bundled one."""
    from panoptes_network.config import settings

    monkeypatch.setenv("PANOPTES_BACKEND", "local")
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(tmp_path / "data"))
    small = stars.gaia_source(catalog.bundled_stars()[:700], "bundled-stand-in", "a stand-in")
    loads = []
    monkeypatch.setattr(stars, "bundled_source", lambda: small)
    real_load = stars.load
    monkeypatch.setattr(stars, "load", lambda *args, **kwargs: loads.append(real_load(*args, **kwargs)) or loads[-1])
    runtime.reset()
    try:
        cli._load_catalog_once(settings())
        cli._load_catalog_once(settings())
        assert [result.written for result in loads] == [700, 0] and loads[1].already_loaded
        assert runtime.documents().count(stars.COLLECTION) == 700
    finally:
        runtime.reset()


def test_up_loads_the_catalog_in_the_background_once(tmp_path, monkeypatch, capsys):
    """`up` serves while the load runs in a thread; the load marker still makes it once."""
    from panoptes_network.config import settings

    monkeypatch.setenv("PANOPTES_BACKEND", "local")
    monkeypatch.setenv("PANOPTES_DATA_DIR", str(tmp_path / "data"))
    small = stars.gaia_source(catalog.bundled_stars()[:700], "bundled-stand-in", "a stand-in")
    monkeypatch.setattr(stars, "bundled_source", lambda: small)
    runtime.reset()
    try:
        thread = cli._load_catalog_once(settings(), in_background=True)
        thread.join(timeout=120)
        assert not thread.is_alive() and "700 stars loaded into stars" in capsys.readouterr().out
        assert stars.load_state(runtime.documents(), small)["complete"]
        assert cli._load_catalog_once(settings(), in_background=True) is None  # loaded: no thread, no load
        assert runtime.documents().count(stars.COLLECTION) == 700
    finally:
        runtime.reset()


def test_the_bulk_json_load_writes_what_the_document_by_document_load_writes(tmp_path):
    """The local store's fast path (JSON text assembled by the loader, one transaction)
    against the generic one (a dict per star through set_many), for a sample of stars that
    has Hipparcos-only stars, Gaia stars with and without a HIP number, every kind of sky."""
    import json
    from dataclasses import replace

    from panoptes_network.adapters.sqlite_documents import SQLiteDocuments

    everything = catalog.bundled_stars()
    sample = everything[(np.arange(len(everything)) % 1009 == 0) | (everything["hip"] != 0)]
    with_hip = sample[sample["id"] != 0][:3].copy()  # the package gives no Gaia star a HIP number; a TIC-like one might
    with_hip["id"] += 1
    with_hip["hip"] = [7, 70, 700]
    sample = np.concatenate([sample, with_hip])
    assert (sample["id"] == 0).any() and ((sample["id"] != 0) & (sample["hip"] != 0)).any()
    generic = [document for batch in stars._gaia_batches(sample, 0) for document in batch]
    fast = stars._gaia_json_rows(sample)
    assert fast == [(doc_id, json.dumps(data, separators=(",", ":"))) for doc_id, data in generic]

    source = stars.gaia_source(sample, "equivalence", "a sample")
    bulk, one_by_one = SQLiteDocuments(tmp_path / "bulk.sqlite"), SQLiteDocuments(tmp_path / "generic.sqlite")
    assert bulk.replaces_json_in_bulk
    stars.load(bulk, source)
    stars.load(one_by_one, replace(source, json_rows=None))
    for doc_id, data in generic[::7]:
        assert bulk.get(stars.COLLECTION, doc_id) == one_by_one.get(stars.COLLECTION, doc_id) == data
    rows = [sorted(store.db.connection().execute('SELECT id, data FROM "docs_stars"').fetchall(), key=tuple)
            for store in (bulk, one_by_one)]
    assert [tuple(row) for row in rows[0]] == [tuple(row) for row in rows[1]] and len(rows[0]) == len(sample)


def test_a_bulk_reload_keeps_the_indexes_queries_made(tmp_path):
    """replace_json drops a table's indexes for the insert and makes them again after."""
    from panoptes_network.adapters.sqlite_documents import SQLiteDocuments

    store = SQLiteDocuments(tmp_path / "documents.sqlite")
    source = stars.gaia_source(near_fields(), "reload", "near the fields")
    stars.load(store, source)
    ra, dec, rotation = FIELDS[0]
    before = document_keys(stars.in_footprint(store, ra, dec, WIDTH, HEIGHT, rotation))

    def indexes():
        return {row["name"] for row in store.db.connection().execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}

    made = indexes()
    assert made and before
    assert stars.load(store, source, again=True).written == len(near_fields())
    assert indexes() == made
    assert document_keys(stars.in_footprint(store, ra, dec, WIDTH, HEIGHT, rotation)) == before
