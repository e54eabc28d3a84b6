"""Observation search: parameters in, one page of observations out.

A cone search (``ra``/``dec`` or a resolved ``target``, ``radius`` in degrees) asks the
store only for the observations in the HEALPix cells covering the cone (see
:mod:`panoptes_network.sky`) and inside the date range, then keeps those within the
radius by exact separation and applies the rest (units, minimum images) in memory; the
candidates are about the cone's area worth of documents however large the collection.
Without a cone the store filters on dates and units and, for the default ordering
(newest first), pages too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from panoptes_network import sky
from panoptes_network.ids import ID_PATTERN, UNIT_ID_PATTERN
from panoptes_network.ports.documents import DocumentStore, to_jsonable

COLLECTION = "observations"
DEFAULT_RADIUS = 5.0
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
MAX_EXPORT = 10_000
MAX_UNITS_IN_QUERY = 30  # Firestore's limit on one ``in``

# The parameters that choose what a search finds (a radius needs a centre; the rest only
# sort and page the results).
FILTERS = ("target", "ra", "dec", "start", "end", "unit", "units", "min_images")
# Sortable columns: name in the API -> how to read it from a result row.
SORT_KEYS = ("time", "unit_id", "sequence_id", "field_name", "ra", "dec", "num_images", "exptime",
             "total_minutes", "separation", "processing_state")


class ParameterError(ValueError):
    """A search parameter that cannot be used; the message names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class Cone:
    ra: float
    dec: float
    radius: float


@dataclass(frozen=True)
class PagedQuery:
    """What the explorer's searches share: a cone (from coordinates, or a resolved name), an
    ordering and a page. A search adds its own filters (:meth:`filter_params`)."""

    cone: Cone | None = None
    target: str | None = None  # the name or text the cone came from, if any
    resolved_by: str | None = None
    sort: str = "time"
    descending: bool = True
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    def filter_params(self) -> dict[str, Any]:
        return {}

    def as_params(self) -> dict[str, Any]:
        """The query as URL parameters, so a search can be bookmarked and repeated."""
        params: dict[str, Any] = {}
        if self.target:
            params["target"] = self.target
        elif self.cone:
            params.update(ra=_short(self.cone.ra), dec=_short(self.cone.dec))
        if self.cone:
            params["radius"] = _short(self.cone.radius)
        params.update(self.filter_params())
        params.update(sort=self.sort, order="desc" if self.descending else "asc")
        if self.per_page != DEFAULT_PER_PAGE:
            params["per_page"] = self.per_page
        return params

    def centre(self) -> dict[str, Any] | None:
        """The cone searched, as the API answers it (None without one)."""
        if self.cone is None:
            return None
        return {"ra": self.cone.ra, "dec": self.cone.dec, "radius": self.cone.radius,
                "target": self.target, "resolved_by": self.resolved_by}


@dataclass(frozen=True)
class SearchQuery(PagedQuery):
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    units: tuple[str, ...] = ()
    min_images: int = 0

    def filter_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.start:
            params["start"] = self.start.date().isoformat()
        if self.end:
            params["end"] = (self.end - timedelta(days=1)).date().isoformat()
        if self.units:
            params["unit"] = list(self.units)
        if self.min_images:
            params["min_images"] = self.min_images
        return params


def _short(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


# --- parameters -----------------------------------------------------------------------------


def _text(args: Mapping[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _float(args, name: str, low: float, high: float, what: str) -> float | None:
    text = _text(args, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(name, f"{name} must be a number ({what}), not {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ParameterError(name, f"{name} must be between {low:g} and {high:g} ({what})")
    return value


def _int(args, name: str, default: int, low: int, high: int) -> int:
    text = _text(args, name)
    if text is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ParameterError(name, f"{name} must be a whole number, not {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise ParameterError(name, f"{name} must be between {low} and {high}")
    return value


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)


def _day(args, name: str) -> date | None:
    text = _text(args, name)
    if text is None:
        return None
    try:
        day = date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
    except ValueError:
        raise ParameterError(name, f"{name} must be a date as YYYY-MM-DD, not {text!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:  # also keeps end + 1 day within what datetime holds
        raise ParameterError(name, f"{name} must be a date between {FIRST_DAY} and {LAST_DAY}, not {day}")
    return day


def _list(args, name: str) -> list[str]:
    if hasattr(args, "getlist"):
        values = args.getlist(name)
    else:
        value = args.get(name)
        values = value if isinstance(value, (list, tuple)) else ([] if value is None else [value])
    items: list[str] = []
    for value in values:
        items.extend(part.strip() for part in str(value).split(",") if part.strip())
    return items


def parse_cone(args: Mapping[str, Any], resolve: Callable[[str], tuple[float, float, str]] | None,
               max_radius: float, radius_at_coordinates: float,
               radius_at_name: float) -> tuple[Cone | None, str | None, str | None]:
    """The cone a search asks for, ``(cone, target, resolved_by)``: from ``ra`` and ``dec``, or from
    a ``target`` name resolved by ``resolve``; ``radius`` (degrees, at most ``max_radius``) or
    the default for each kind of centre. No centre, no cone."""
    ra = _float(args, "ra", 0, 360, "right ascension in degrees")
    dec = _float(args, "dec", -90, 90, "declination in degrees")
    radius = _float(args, "radius", 0, max_radius, "degrees")
    target = _text(args, "target")
    if (ra is None) != (dec is None):
        missing = "dec" if dec is None else "ra"
        raise ParameterError(missing, f"{missing} is needed too: give both ra and dec, or a target")
    cone, resolved_by = None, None
    if ra is not None:
        cone, target = Cone(ra % 360.0, dec, radius_at_coordinates if radius is None else radius), None
    elif target is not None:
        if len(target) > 200:
            raise ParameterError("target", "target is too long (200 characters at most)")
        if resolve is None:
            raise ParameterError("target", "target names cannot be resolved here; give ra and dec")
        target_ra, target_dec, resolved_by = resolve(target)
        cone = Cone(float(target_ra) % 360.0, float(target_dec), radius_at_name if radius is None else radius)
    if cone is not None and cone.radius <= 0:
        raise ParameterError("radius", f"radius must be between 0 and {max_radius:g} (degrees) and more than 0")
    return cone, target, resolved_by


def parse(args: Mapping[str, Any], resolve: Callable[[str], tuple[float, float, str]] | None = None) -> SearchQuery:
    """A :class:`SearchQuery` from request parameters; :class:`ParameterError` names what is wrong.

    ``target`` is an object name or coordinates typed as text, resolved by ``resolve`` (the
    lookup service) to ``(ra, dec, source)``; ``ra`` and ``dec`` (degrees) give the centre directly.
    """
    cone, target, resolved_by = parse_cone(args, resolve, 180, DEFAULT_RADIUS, DEFAULT_RADIUS)
    start_day, end_day = _day(args, "start"), _day(args, "end")
    if start_day and end_day and end_day < start_day:
        raise ParameterError("end", f"end ({end_day}) is before start ({start_day})")
    units = tuple(dict.fromkeys(unit.upper() for unit in _list(args, "unit") + _list(args, "units")))
    for unit in units:
        if not UNIT_ID_PATTERN.fullmatch(unit):
            raise ParameterError("unit", f"unit {unit!r} is not a unit id such as PAN001")
    sort = _text(args, "sort") or "time"
    if sort not in SORT_KEYS:
        raise ParameterError("sort", f"sort must be one of {', '.join(SORT_KEYS)}, not {sort!r}")
    if sort == "separation" and cone is None:
        raise ParameterError("sort", "sort=separation needs a cone search (ra/dec or target)")
    order = (_text(args, "order") or ("desc" if sort == "time" else "asc")).lower()
    if order not in ("asc", "desc"):
        raise ParameterError("order", f"order must be asc or desc, not {order!r}")
    return SearchQuery(
        cone=cone,
        target=target,
        resolved_by=resolved_by,
        start=datetime.combine(start_day, time(), timezone.utc) if start_day else None,
        end=datetime.combine(end_day + timedelta(days=1), time(), timezone.utc) if end_day else None,
        units=units,
        min_images=_int(args, "min_images", 0, 0, 1_000_000),
        sort=sort,
        descending=order == "desc",
        page=_int(args, "page", 1, 1, 1_000_000),
        per_page=_int(args, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
    )


def _checked_id(kind: str, value: str, example: str) -> str:
    if not ID_PATTERN.fullmatch(value or ""):
        raise ParameterError(kind, f"{kind} {value!r} is not of the form {example}")
    return value


def check_sequence_id(sequence_id: str) -> str:
    return _checked_id("sequence_id", sequence_id, "PAN001_14d3bd_20180216T110623")


def check_image_id(image_id: str) -> str:
    return _checked_id("image_id", image_id, "PAN001_14d3bd_20180216T112430")


# --- rows -------------------------------------------------------------------------------------


def observation_row(sequence_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """An observation as the explorer shows it: its stored fields plus its position and totals."""
    position = sky.position_of(data)
    total_exptime = data.get("total_exptime") or 0.0
    row = {key: value for key, value in data.items() if key != sky.INDEX_FIELD}
    row.update(
        sequence_id=sequence_id,
        ra=position.ra if position else None,
        dec=position.dec if position else None,
        position_source=position.source if position else None,
        num_images=data.get("num_images") or 0,
        total_exptime=total_exptime,
        total_minutes=round(total_exptime / 60.0, 2),
    )
    return row


@dataclass
class PagedResult:
    """One page of a search's results (or every one, for a download), and how many there are."""

    query: PagedQuery
    total: int
    rows: list[dict[str, Any]]

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.query.per_page))


@dataclass
class SearchResult(PagedResult):
    candidates_read: int  # documents the store returned: what the index saves


def _time_filters(query: SearchQuery) -> list[tuple[str, str, Any]]:
    filters = []
    if query.start:
        filters.append(("time", ">=", query.start))
    if query.end:
        filters.append(("time", "<", query.end))
    return filters


def _sort_key(name: str):
    def key(row: Mapping[str, Any]):
        value = row.get(name)
        # Missing values sort last in ascending order, as a spreadsheet would.
        return (value is None, value if value is not None else 0)

    return key


def _keep(query: SearchQuery, row: Mapping[str, Any]) -> bool:
    if query.units and row.get("unit_id") not in query.units:
        return False
    if query.min_images and row["num_images"] < query.min_images:
        return False
    if query.start and not (row.get("time") and row["time"] >= query.start):
        return False
    if query.end and not (row.get("time") and row["time"] < query.end):
        return False
    return True


def _page(rows: list[dict], query: SearchQuery, everything: bool) -> list[dict]:
    if everything:
        return rows
    start = (query.page - 1) * query.per_page
    return rows[start:start + query.per_page]


def search(documents: DocumentStore, query: SearchQuery, everything: bool = False) -> SearchResult:
    """One page of the observations matching ``query`` (all of them, up to MAX_EXPORT, with ``everything``)."""
    if query.cone is not None:
        return _cone_search(documents, query, everything)
    where = _time_filters(query)
    if query.units and len(query.units) <= MAX_UNITS_IN_QUERY:
        where.append(("unit_id", "in", list(query.units)))
    if query.sort == "time" and not query.min_images and len(query.units) <= MAX_UNITS_IN_QUERY:
        # The store orders and pages: nothing beyond one page is read.
        direction = "desc" if query.descending else "asc"
        total = documents.count(COLLECTION, where)
        limit = MAX_EXPORT if everything else query.per_page
        offset = 0 if everything else (query.page - 1) * query.per_page
        found = documents.query(COLLECTION, where, [("time", direction)], limit=limit, offset=offset)
        rows = [observation_row(doc.id, doc.data) for doc in found]
        return SearchResult(query, total, rows, len(found))
    found = documents.query(COLLECTION, where)
    rows = [row for row in (observation_row(doc.id, doc.data) for doc in found) if _keep(query, row)]
    rows.sort(key=_sort_key(query.sort), reverse=query.descending)
    return SearchResult(query, len(rows), _page(rows, query, everything)[:MAX_EXPORT], len(found))


def _cone_search(documents: DocumentStore, query: SearchQuery, everything: bool) -> SearchResult:
    cone = query.cone
    cover = sky.cone_cover(cone.ra, cone.dec, cone.radius)
    found = documents.query(COLLECTION, [cover.filter(), *_time_filters(query)])
    rows = []
    for doc in found:
        row = observation_row(doc.id, doc.data)
        if row["ra"] is None or not _keep(query, row):
            continue
        row["separation"] = float(sky.separation(cone.ra, cone.dec, row["ra"], row["dec"]))
        if row["separation"] <= cone.radius:
            rows.append(row)
    rows.sort(key=_sort_key(query.sort), reverse=query.descending)
    return SearchResult(query, len(rows), _page(rows, query, everything)[:MAX_EXPORT], len(found))


def naive_search(documents: DocumentStore, query: SearchQuery) -> list[dict[str, Any]]:
    """Every observation read and every separation computed: the anchor the index is measured against."""
    rows = []
    for doc in documents.query(COLLECTION):
        row = observation_row(doc.id, doc.data)
        if not _keep(query, row):
            continue
        if query.cone is not None:
            if row["ra"] is None:
                continue
            row["separation"] = float(sky.separation(query.cone.ra, query.cone.dec, row["ra"], row["dec"]))
            if row["separation"] > query.cone.radius:
                continue
        rows.append(row)
    rows.sort(key=_sort_key(query.sort), reverse=query.descending)
    return rows


# --- output ------------------------------------------------------------------------------------

EXPORT_COLUMNS = ("sequence_id", "unit_id", "camera_id", "field_name", "ra", "dec", "position_source", "time",
                  "first_image_time", "last_image_time", "num_images", "exptime", "total_exptime",
                  "total_minutes", "separation", "software_version", "status", "processing_state")


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] = EXPORT_COLUMNS) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(column) is None else to_jsonable(row.get(column)) for column in columns])
    return out.getvalue()

