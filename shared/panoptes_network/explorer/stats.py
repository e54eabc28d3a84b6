"""The overview's numbers: network totals, weekly numbers per unit, the latest observations.

Totals and weekly numbers come from one pass over the observations (each carries its
``num_images`` and ``total_exptime``), kept in memory until the counts of observations
or images change or :data:`CACHE_SECONDS` pass. At the network's scale (thousands of
observations a year) one pass takes milliseconds locally and one read per observation
on Firestore, once per cache period and instance; see the service README for the
counters that would replace it at much larger scale.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

from panoptes_network.explorer.search import COLLECTION, observation_row
from panoptes_network.ports.documents import DocumentStore

METRICS = {"images": "Images", "observations": "Observations", "exposure_hours": "Exposure hours"}
CACHE_SECONDS = 60.0
RECENT = 10

_cache: dict[Any, tuple[float, dict]] = {}
_lock = threading.Lock()


def week_start(moment: datetime) -> date:
    day = moment.astimezone(timezone.utc).date()
    return day - timedelta(days=day.weekday())


def _summaries(documents: DocumentStore) -> list[dict[str, Any]]:
    return [
        {"unit_id": row.get("unit_id"), "time": row.get("time"), "images": row["num_images"],
         "exposure_hours": row["total_exptime"] / 3600.0}
        for row in (observation_row(doc.id, doc.data) for doc in documents.query(COLLECTION))
    ]


def _summaries_cached(documents: DocumentStore, cache_key: Any) -> list[dict[str, Any]]:
    key = (cache_key, documents.count(COLLECTION), documents.count("images"))
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < CACHE_SECONDS:
            return hit[1]["summaries"]
    summaries = _summaries(documents)
    with _lock:
        _cache.clear()  # one entry per process is all the overview needs
        _cache[key] = (now, {"summaries": summaries})
    return summaries


def overview(documents: DocumentStore, year: int | None = None, cache_key: Any = None) -> dict[str, Any]:
    summaries = _summaries_cached(documents, cache_key) if cache_key is not None else _summaries(documents)
    timed = [s for s in summaries if isinstance(s["time"], datetime)]
    years = sorted({s["time"].year for s in timed})
    if year is None:
        year = years[-1] if years else datetime.now(timezone.utc).year
    units = sorted({s["unit_id"] for s in summaries if s["unit_id"]})

    first_week = week_start(datetime(year, 1, 1, tzinfo=timezone.utc))
    last_week = week_start(datetime(year, 12, 31, tzinfo=timezone.utc))
    weeks = [first_week + timedelta(weeks=n) for n in range((last_week - first_week).days // 7 + 1)]
    index = {week: n for n, week in enumerate(weeks)}
    weekly: dict[str, dict[str, list[float]]] = defaultdict(lambda: {m: [0] * len(weeks) for m in METRICS})
    for s in timed:
        if s["time"].year != year or not s["unit_id"]:
            continue
        n = index[week_start(s["time"])]
        series = weekly[s["unit_id"]]
        series["images"][n] += s["images"]
        series["observations"][n] += 1
        series["exposure_hours"][n] += s["exposure_hours"]
    for series in weekly.values():
        series["exposure_hours"] = [round(value, 3) for value in series["exposure_hours"]]

    recent = documents.query(COLLECTION, order_by=[("time", "desc")], limit=RECENT)
    return {
        "totals": {
            "exposure_hours": round(sum(s["exposure_hours"] for s in summaries), 2),
            "images": sum(s["images"] for s in summaries),
            "observations": len(summaries),
            "units": len(units),
        },
        "years": years,
        "year": year,
        "metrics": METRICS,
        "weekly": {"weeks": [week.isoformat() for week in weeks], "units": dict(sorted(weekly.items()))},
        "recent": [observation_row(doc.id, doc.data) for doc in recent],
    }
