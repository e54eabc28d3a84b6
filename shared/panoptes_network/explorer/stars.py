"""Stars and their lightcurves, as the explorer shows them (documents of SCIENCE_SCHEMA.md).

- Star search: a cone (``ra``/``dec`` or a resolved ``target``, ``radius`` in degrees) asks
  the store only for the stars in the HEALPix cells covering it (the index observations
  use, :mod:`panoptes_network.sky`); without a cone, the stars that have lightcurves.
  ``mag_min``/``mag_max`` bound the catalog magnitude.
- A star's lightcurves: ``lightcurves`` documents by picid, their arrays inline or, when
  the document names ``arrays: {bucket, path}``, read from that JSON object; only the
  fields a page shows where it says which (the plot: times and one flux per channel).
- The period search: astropy's BoxLeastSquares over all the star's lightcurves stitched,
  a bounded grid over the series binned, then its peaks refined over every point, then the
  best one fitted as a periodic transit (depth, duration, T0 and period with their
  errors: :func:`transit_fit`); cached per star and input.
- The FITS lightcurve in the layout lightkurve reads (STYLE.md).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from panoptes_network import sky
from panoptes_network.explorer.search import (
    DEFAULT_PER_PAGE,
    MAX_EXPORT,
    MAX_PER_PAGE,
    PagedQuery,
    PagedResult,
    ParameterError,
    parse_cone,
    _float,
    _int,
    _page,
    _short,
    _sort_key,
    _text,
)
from panoptes_network.ports.documents import DocumentStore

STARS = "stars"
LIGHTCURVES = "lightcurves"
RUNS = "processed_observations"
CHANNELS = ("r", "g", "b")
DEFAULT_CHANNEL = "g"
NAME_RADIUS = 0.05  # degrees round a resolved name: the star itself, not its neighbourhood
RADIUS_AT_COORDINATES = 1.0  # degrees round coordinates given
MAX_RADIUS = 30.0
STAR_SORT_KEYS = ("picid", "ra", "dec", "mag", "num_lightcurves", "best_rms", "separation", "last_processed")
PICID_PATTERN = re.compile(r"[0-9]{1,20}|HIP [0-9]{1,7}")
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_]{1,120}")
BJD_REFERENCE = 2457000  # TIME in the FITS lightcurve is BJD_TDB - this (as TESS)
BAD_FLAGS = 1 | 8 | 16  # saturated, bad WCS, frame rejected: left out of the stitched series


@dataclass(frozen=True)
class StarQuery(PagedQuery):
    sort: str = "best_rms"
    descending: bool = False
    mag_min: float | None = None
    mag_max: float | None = None

    def filter_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.mag_min is not None:
            params["mag_min"] = _short(self.mag_min)
        if self.mag_max is not None:
            params["mag_max"] = _short(self.mag_max)
        return params


STAR_FILTERS = ("target", "ra", "dec", "mag_min", "mag_max")


def parse_stars(args: Mapping[str, Any], resolve: Callable[[str], tuple[float, float, str]] | None = None) -> StarQuery:
    """A :class:`StarQuery` from request parameters; :class:`ParameterError` names what is wrong."""
    cone, target, resolved_by = parse_cone(args, resolve, MAX_RADIUS, RADIUS_AT_COORDINATES, NAME_RADIUS)
    mag_min = _float(args, "mag_min", -30, 40, "magnitude")
    mag_max = _float(args, "mag_max", -30, 40, "magnitude")
    if mag_min is not None and mag_max is not None and mag_max < mag_min:
        raise ParameterError("mag_max", f"mag_max ({mag_max:g}) is below mag_min ({mag_min:g})")
    sort = _text(args, "sort") or ("separation" if cone else "best_rms")
    if sort not in STAR_SORT_KEYS:
        raise ParameterError("sort", f"sort must be one of {', '.join(STAR_SORT_KEYS)}, not {sort!r}")
    if sort == "separation" and cone is None:
        raise ParameterError("sort", "sort=separation needs a cone search (ra/dec or target)")
    order = (_text(args, "order") or ("desc" if sort in ("num_lightcurves", "last_processed") else "asc")).lower()
    if order not in ("asc", "desc"):
        raise ParameterError("order", f"order must be asc or desc, not {order!r}")
    return StarQuery(cone=cone, target=target, resolved_by=resolved_by, mag_min=mag_min, mag_max=mag_max,
                     sort=sort, descending=order == "desc", page=_int(args, "page", 1, 1, 1_000_000),
                     per_page=_int(args, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE))


def check_picid(picid: str) -> str:
    if not PICID_PATTERN.fullmatch(picid or ""):
        raise ParameterError("picid", f"picid {picid!r} is not a star id such as 129979528 (or HIP 11397)")
    return picid


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(run_id or ""):
        raise ParameterError("run_id", f"run_id {run_id!r} is not of the form <sequence_id>_<12 hex digits>")
    return run_id


def star_row(picid: str, data: Mapping[str, Any]) -> dict[str, Any]:
    row = {key: value for key, value in data.items() if key != sky.INDEX_FIELD}
    row.update(picid=picid, num_lightcurves=data.get("num_lightcurves") or 0, best_rms=data.get("best_rms"))
    return row


def _mag_ok(query: StarQuery, row: Mapping[str, Any]) -> bool:
    mag = row.get("mag")
    if query.mag_min is not None and (mag is None or mag < query.mag_min):
        return False
    if query.mag_max is not None and (mag is None or mag > query.mag_max):
        return False
    return True


def search_stars(documents: DocumentStore, query: StarQuery, everything: bool = False) -> PagedResult:
    """One page of stars (every one, up to MAX_EXPORT, with ``everything``)."""
    rows = []
    if query.cone is not None:
        cone = query.cone
        for doc in documents.query(STARS, [sky.cone_cover(cone.ra, cone.dec, cone.radius).filter()]):
            row = star_row(doc.id, doc.data)
            if row.get("ra") is None or not _mag_ok(query, row):
                continue
            row["separation"] = float(sky.separation(cone.ra, cone.dec, row["ra"], row["dec"]))
            if row["separation"] <= cone.radius:
                rows.append(row)
    else:  # the catalog is large: without a cone, the stars that have been measured
        rows = [row for row in (star_row(doc.id, doc.data)
                                for doc in documents.query(STARS, [("num_lightcurves", ">=", 1)]))
                if _mag_ok(query, row)]
    rows.sort(key=_sort_key(query.sort), reverse=query.descending)
    return PagedResult(query, len(rows), _page(rows, query, everything)[:MAX_EXPORT])


STAR_COLUMNS = ("picid", "ra", "dec", "mag", "catalog", "num_lightcurves", "best_rms", "last_processed", "separation")


# --- lightcurves ------------------------------------------------------------------------------


# What a table of lightcurves lists (besides lightcurve_id and num_points).
ROW_FIELDS = ("sequence_id", "processed_observation_id", "unit_id", "time", "mag", "summary", "best_rms")
ARRAY_FIELDS = ("time_bjd_tdb", "time_utc", "channels")


def plot_fields(channels: Sequence[str] = CHANNELS) -> tuple[str, ...]:
    """The fields the star page's plot of ``channels`` needs: for all three, a third of a
    lightcurve document's numbers; for the one it shows first, a ninth."""
    return ROW_FIELDS + ("time_bjd_tdb",) + tuple(f"channels.{c}.{name}" for c in channels for name in ("flux", "flags"))


def channel_fields(channel: str) -> tuple[str, ...]:
    """The fields the stitched series of one channel (the period search) needs."""
    return ("time_bjd_tdb",) + tuple(f"channels.{channel}.{name}" for name in ("flux", "flux_err", "flags"))


def lightcurve_arrays(data: Mapping[str, Any], read_bucket: Callable[[str, str], bytes]) -> dict[str, Any]:
    """A lightcurve document with its arrays, read from their bucket object when moved there."""
    found = dict(data)
    arrays = data.get("arrays")
    if arrays and arrays.get("bucket") and arrays.get("path"):
        stored = json.loads(read_bucket(arrays["bucket"], arrays["path"]))
        found.update(time_bjd_tdb=stored["time_bjd_tdb"], time_utc=stored.get("time_utc", []),
                     channels=stored["channels"])
    return found


def star_lightcurves(documents: DocumentStore, picid: str, read_bucket: Callable[[str, str], bytes],
                     fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every lightcurve of the star, with its arrays, oldest first.

    With ``fields`` (dotted paths), only those are read from each document (and where its
    arrays were moved to a bucket, that object whole): a hundred lightcurves weigh six
    megabytes of JSON, and a page that plots one channel's flux needs a fraction of it."""
    select = None if fields is None else list(dict.fromkeys((*fields, "time_bjd_tdb", "arrays")))
    found = documents.query(LIGHTCURVES, [("picid", "==", picid)], select=select)
    curves = [{**lightcurve_arrays(doc.data, read_bucket), "lightcurve_id": doc.id} for doc in found]
    curves.sort(key=lambda curve: ((curve.get("time_bjd_tdb") or [math.inf])[0], curve["lightcurve_id"]))
    return curves


def lightcurve_rows(curves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lightcurves without their arrays: what a table lists."""
    return [{"lightcurve_id": curve["lightcurve_id"], **{key: curve.get(key) for key in ROW_FIELDS},
             "num_points": len(curve.get("time_bjd_tdb") or [])} for curve in curves]


def stitched(curves: list[dict[str, Any]], channel: str = DEFAULT_CHANNEL) -> dict[str, np.ndarray]:
    """All the lightcurves of one channel end to end, flagged points left out, in time order;
    ``segment`` is each point's lightcurve (its position in ``curves``): a night of one
    unit, with its own normalisation."""
    times, fluxes, errors, flags, segments = [], [], [], [], []
    for number, curve in enumerate(curves):
        values = (curve.get("channels") or {}).get(channel)
        if not values:
            continue
        times.append(np.asarray(curve["time_bjd_tdb"], dtype=float))
        fluxes.append(np.asarray(values["flux"], dtype=float))
        errors.append(np.asarray(values.get("flux_err") or np.full(len(values["flux"]), np.nan), dtype=float))
        flags.append(np.asarray(values.get("flags") or np.zeros(len(values["flux"])), dtype=int))
        segments.append(np.full(len(times[-1]), number))
    if not times:
        empty = np.array([])
        return {"time": empty, "flux": empty, "flux_err": empty, "flags": empty.astype(int),
                "segment": empty.astype(int)}
    time, flux, error, flag, segment = (np.concatenate(part) for part in (times, fluxes, errors, flags, segments))
    keep = np.isfinite(time) & np.isfinite(flux) & ((flag & BAD_FLAGS) == 0)
    order = np.argsort(time[keep], kind="stable")
    return {"time": time[keep][order], "flux": flux[keep][order], "flux_err": error[keep][order],
            "flags": flag[keep][order], "segment": segment[keep][order]}


def typed_array(values: np.ndarray, dtype: str) -> dict[str, str]:
    """A little-endian typed array in base64, in the form plotly.js reads (``{dtype, bdata}``):
    no number is written out as text or parsed back, at either end."""
    return {"dtype": dtype, "bdata": base64.b64encode(np.ascontiguousarray(values, dtype="<" + dtype).tobytes()).decode()}


def _fitted(values: np.ndarray, size: int, fill) -> np.ndarray:
    if len(values) >= size:
        return values[:size]
    return np.concatenate([values, np.full(size - len(values), fill, dtype=values.dtype)])


def plot_series(curves: list[dict[str, Any]], shown: Sequence[str] = CHANNELS) -> list[dict[str, Any]]:
    """What the star page draws: per lightcurve, its times (BJD_TDB - 2457000, float64: the
    subtraction is exact) and for each channel ``shown`` its normalised flux (float32, finer
    than a part per million near 1), NaN where a point is flagged (BAD_FLAGS) or missing."""
    series = []
    for curve in curves:
        time = np.asarray(curve.get("time_bjd_tdb") or [], dtype=float)
        channels = {}
        for channel, values in (curve.get("channels") or {}).items():
            if channel not in shown:
                continue
            # A point per time: a value missing at the end is NaN (a missing flag, none).
            flux = _fitted(np.asarray(values.get("flux") or [], dtype=float), len(time), np.nan)
            flags = _fitted(np.asarray(values.get("flags") or [], dtype=np.int64), len(time), 0)
            channels[channel] = typed_array(np.where((flags & BAD_FLAGS) == 0, flux, np.nan), "f4")
        series.append({"lightcurve_id": curve["lightcurve_id"], "sequence_id": curve.get("sequence_id"),
                       "run_id": curve.get("processed_observation_id"),
                       "time": typed_array(time - BJD_REFERENCE, "f8"), "channels": channels})
    return series


def to_csv(curves: list[dict[str, Any]]) -> str:
    """One row per point and channel, every lightcurve of the star."""
    out = io.StringIO()
    out.write("lightcurve_id,sequence_id,run_id,channel,time_bjd_tdb,time_utc,flux,flux_err,raw_flux,flags\n")
    for curve in curves:
        utc = curve.get("time_utc") or []
        for channel, values in sorted((curve.get("channels") or {}).items()):
            for index, when in enumerate(curve.get("time_bjd_tdb") or []):
                cells = [curve["lightcurve_id"], curve.get("sequence_id") or "", curve.get("processed_observation_id") or "",
                         channel, repr(float(when)), utc[index] if index < len(utc) else ""]
                for name in ("flux", "flux_err", "raw_flux", "flags"):
                    column = values.get(name) or []
                    cells.append("" if index >= len(column) or column[index] is None else repr(column[index]))
                out.write(",".join(str(cell) for cell in cells) + "\n")
    return out.getvalue()


def to_fits(picid: str, star: Mapping[str, Any], curves: list[dict[str, Any]], channel: str = DEFAULT_CHANNEL) -> bytes:
    """The star's lightcurves of one channel, stitched, in the layout lightkurve reads (STYLE.md)."""
    from astropy.io import fits as astropy_fits

    series = stitched(curves, channel)
    primary = astropy_fits.PrimaryHDU()
    header = primary.header
    header["TELESCOP"] = ("PANOPTES", "PANOPTES Network")
    header["OBJECT"] = (f"PICID {picid}", "the star's PANOPTES Input Catalog id")
    if picid.isdigit():
        header["TICID"] = (int(picid), "PICID, the same number as a TIC id")
    header["PICID"] = (picid, "PANOPTES Input Catalog id")
    header["RA_OBJ"] = (float(star.get("ra") or 0.0), "[deg] right ascension")
    header["DEC_OBJ"] = (float(star.get("dec") or 0.0), "[deg] declination")
    header["ORIGIN"] = ("PANOPTES Network", "institution")
    header["FILTER"] = (channel, "Bayer channel of the camera")
    header["NLCURVES"] = (len(curves), "lightcurves stitched")
    columns = astropy_fits.ColDefs([
        astropy_fits.Column("TIME", "D", unit="BJD - 2457000, days", array=series["time"] - BJD_REFERENCE),
        astropy_fits.Column("FLUX", "E", unit="", array=series["flux"]),
        astropy_fits.Column("FLUX_ERR", "E", unit="", array=series["flux_err"]),
        astropy_fits.Column("QUALITY", "J", array=series["flags"].astype(np.int32)),
    ])
    table = astropy_fits.BinTableHDU.from_columns(columns, name="LIGHTCURVE")
    for key, value in (("TIMESYS", "TDB"), ("TIMEREF", "SOLARSYSTEM"), ("BJDREFI", BJD_REFERENCE),
                       ("BJDREFF", 0.0), ("TIMEUNIT", "d"), ("TELESCOP", "PANOPTES")):
        table.header[key] = value
    out = io.BytesIO()
    astropy_fits.HDUList([primary, table]).writeto(out)
    return out.getvalue()


# --- the period search ---------------------------------------------------------------------------

MIN_PERIOD_DAYS = 0.5
MAX_PERIOD_DAYS = 30.0
MAX_PERIODS = 8_000  # the grid's size bound
DURATIONS_DAYS = (0.05, 0.08, 0.12, 0.18)
# The search runs in two passes, so that its cost hardly grows with the number of points:
# the whole grid over the series binned in BIN_DAYS (a fifth of the shortest duration, at
# most; the periodogram shown), then, finely, around the REFINED_PEAKS strongest peaks over
# every point (the best period, epoch, duration and depth).
BIN_DAYS = 10 / 1440
COARSE_OVERSAMPLE = 5  # phase bins per shortest duration in the coarse pass (astropy's default: 10)
REFINED_PEAKS = 5
REFINED_PER_PEAK = 41
_cache: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_SIZE = 64


def periodogram_params(args: Mapping[str, Any]) -> tuple[str, float | None, float | None]:
    channel = (_text(args, "channel") or DEFAULT_CHANNEL).lower()
    if channel not in CHANNELS:
        raise ParameterError("channel", f"channel must be one of r, g, b, not {channel!r}")
    low = _float(args, "min_period", MIN_PERIOD_DAYS, MAX_PERIOD_DAYS, "days")
    high = _float(args, "max_period", MIN_PERIOD_DAYS, MAX_PERIOD_DAYS, "days")
    if low is not None and high is not None and high <= low:
        raise ParameterError("max_period", f"max_period ({high:g}) must be more than min_period ({low:g})")
    return channel, low, high


def periodogram(picid: str, curves: list[dict[str, Any]], channel: str = DEFAULT_CHANNEL,
                min_period: float | None = None, max_period: float | None = None) -> dict[str, Any]:
    """BoxLeastSquares over the stitched lightcurves: the power per period and the best transit.

    Cached on the star, the channel, the period range and the lightcurves read (their ids
    and point counts), so a new run's lightcurve makes a new search.
    """
    key = (picid, channel, min_period, max_period,
           tuple((curve["lightcurve_id"], len(curve.get("time_bjd_tdb") or [])) for curve in curves))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return {**_cache[key], "cached": True}
    result = _box_least_squares(stitched(curves, channel), min_period, max_period)
    result.update(picid=picid, channel=channel)
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return {**result, "cached": False}


def binned(series: dict[str, np.ndarray], width: float) -> dict[str, np.ndarray]:
    """The series averaged in bins of ``width`` days (weighted by 1/flux_err² where every
    error is known): mean time, mean flux and the mean's error, per bin that holds a point."""
    time, flux, error = series["time"], series["flux"], series["flux_err"]
    if not len(time):
        return {"time": time, "flux": flux, "flux_err": error}
    _, which = np.unique(np.floor((time - time[0]) / width).astype(np.int64), return_inverse=True)
    if np.all(np.isfinite(error) & (error > 0)):
        weight = 1 / error**2
        total = np.bincount(which, weight)
        return {"time": np.bincount(which, time * weight) / total, "flux": np.bincount(which, flux * weight) / total,
                "flux_err": 1 / np.sqrt(total)}
    count = np.bincount(which)
    return {"time": np.bincount(which, time) / count, "flux": np.bincount(which, flux) / count,
            "flux_err": np.full(len(count), np.nan)}


def _model(series: dict[str, np.ndarray]):
    from astropy.timeseries import BoxLeastSquares

    error = series["flux_err"]
    known = bool(np.all(np.isfinite(error) & (error > 0)))
    return BoxLeastSquares(series["time"], series["flux"], dy=error if known else None)


def _box_least_squares(series: dict[str, np.ndarray], min_period: float | None,
                       max_period: float | None) -> dict[str, Any]:
    time = series["time"]
    if len(time) < 10:
        return {"num_points": int(len(time)), "period": [], "power": [], "best": None,
                "msg": "fewer than 10 good points: no period search"}
    baseline = max(float(time[-1] - time[0]), 1e-3)
    low = min_period or MIN_PERIOD_DAYS
    high = max(max_period or min(MAX_PERIOD_DAYS, max(baseline / 2, low * 2)), low * 1.01)
    durations = [d for d in DURATIONS_DAYS if d < low / 2] or [low / 4]
    # A grid even in log frequency: a step of df/f moves a transit by df/f * baseline days at
    # the far end of the series; half the shortest duration is fine enough, bounded.
    fine_step = min(durations) / baseline / 2
    count = int(min(MAX_PERIODS, max(200, np.log(high / low) / fine_step)))
    period = np.geomspace(low, high, count)
    coarse = _model(binned(series, min(BIN_DAYS, min(durations) / 5))).power(
        period, durations, objective="snr", oversample=COARSE_OVERSAMPLE)
    # Around the strongest peaks (local maxima): one step of the grid either side, in
    # REFINED_PER_PEAK periods, over every point with astropy's own phase resolution.
    power = np.nan_to_num(coarse.power)
    peaks = np.flatnonzero(np.r_[True, power[1:] >= power[:-1]] & np.r_[power[:-1] >= power[1:], True])
    grid_step = np.log(period[1] / period[0])
    offsets = np.linspace(-grid_step, grid_step, REFINED_PER_PEAK)
    near = np.unique(np.concatenate([period[index] * np.exp(offsets)
                                     for index in peaks[np.argsort(power[peaks], kind="stable")[::-1][:REFINED_PEAKS]]]))
    near = near[(near >= low) & (near <= high)]
    refined = _model(series).power(near, durations, objective="snr")
    best = int(np.nanargmax(refined.power))
    peak = {"period": float(refined.period[best]), "t0_bjd_tdb": float(refined.transit_time[best]),
            "duration_days": float(refined.duration[best]), "depth": float(refined.depth[best]),
            "power": float(refined.power[best])}
    return {
        "num_points": int(len(time)), "baseline_days": baseline, "num_refined": int(len(near)),
        "period": np.round(period, 7).tolist(), "power": np.round(power, 4).tolist(),
        "best": peak, **transit_fit(series, peak),
    }


def transit_fit(series: dict[str, np.ndarray], peak: Mapping[str, float]) -> dict[str, Any]:
    """The BoxLeastSquares peak refined into a transit (:func:`photometry.transits.fit_periodic_transit`):
    a trapezoid with one depth, duration, T0 (BJD_TDB) and period over every transit, each
    lightcurve its own level, constant or linear in time as AIC chooses
    (:func:`photometry.transits.choose_periodic_baseline`); ``{"fit": {...}}``, or
    ``{"fit": None, "fit_msg": why}``."""
    from panoptes_network.photometry.transits import NoTransitCovered, choose_periodic_baseline, fit_periodic_transit

    def fit_with(trend: bool):
        return fit_periodic_transit(series["time"], series["flux"], series["flux_err"], peak["period"],
                                    peak["t0_bjd_tdb"], peak["duration_days"], segments=series.get("segment"),
                                    trend=trend)

    try:
        fit = choose_periodic_baseline(fit_with(False), fit_with(True))
    except NoTransitCovered as reason:
        return {"fit": None, "fit_msg": str(reason)}
    if not (np.isfinite(fit.depth_err) and fit.depth > 0):
        return {"fit": None, "fit_msg": "the fit found no dip at the search's period"}
    return {"fit": {"depth": fit.depth, "depth_err": fit.depth_err, "t0_bjd_tdb": fit.t0, "t0_err_days": fit.t0_err,
                    "duration_days": fit.duration, "duration_err_days": fit.duration_err, "period": fit.period,
                    "period_err": fit.period_err, "transits_covered": fit.transits_covered,
                    "lightcurves": fit.segments, "num_points": fit.points, "level_trend": fit.trend,
                    "reduced_chi2": fit.reduced_chi2,
                    "red_noise": fit.red_noise, "error_scale": fit.error_scale, "snr": fit.snr}}


def run_row(run_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {**data, "run_id": run_id}


