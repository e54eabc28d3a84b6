"""The explorer's JSON API, a Flask blueprint mounted at ``/api`` by data-explorer/main.py.

    GET /api/observations                      search (see explorer.search.parse), one page
    GET /api/observations?format=csv|json      every result (up to 10,000) as a download
    GET /api/observations/<sequence_id>        one observation
    GET /api/observations/<sequence_id>/images its frames, oldest first
    GET /api/units, /api/units/<unit_id>       the units (with their observation counts)
    GET /api/stats[?year=YYYY]                 totals, weekly numbers per unit, latest observations
    GET /api/resolve?target=NAME               where a name is (lookup-field)
    GET /api/images/<image_id>/header          the frame's FITS header (get-fits-header)
    GET /api/images/<image_id>/preview.png     a PNG preview, made once and cached
    GET /api/images/<image_id>/file            the FITS file itself
    GET /api/stars                             star search (explorer.stars.parse_stars), ?format=csv|json
    GET /api/stars/<picid>                     a star: catalog data, observations covering it, its runs
    GET /api/stars/<picid>/lightcurves         its lightcurves (?format=csv, fits[&channel=g] for lightkurve,
                                               or plot: what the star page draws)
    GET /api/stars/<picid>/periodogram         BoxLeastSquares over them stitched, its peak fitted as a transit (?channel, min_period, max_period)
    GET /api/stars/<picid>/stamp.png?image_id= its postage stamp on one frame
    GET /api/processed_observations/<run_id>   a processing run

Every answer is JSON with ``success`` (except the PNG and downloads); a parameter that
cannot be used is a 400 whose ``msg`` names it, and ``parameter`` holds its name.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any, Callable

import flask

from panoptes_network import runtime, sky
from panoptes_network.config import Settings, settings as current_settings
from panoptes_network.explorer import previews, remote, stars, stats
from panoptes_network.explorer.search import (
    ParameterError,
    check_image_id,
    check_sequence_id,
    observation_row,
    parse,
    search,
    to_csv,
)
from panoptes_network.ids import ID_PATTERN, UNIT_ID_PATTERN
from panoptes_network.ports.bucket import ObjectNotFound
from panoptes_network.ports.documents import to_jsonable

api = flask.Blueprint("api", __name__)
EXPORT_FORMATS = ("csv", "json")


class NotFound(LookupError):
    """A document the URL names does not exist."""


def _settings() -> Settings:
    return current_settings()


def _documents():
    return runtime.documents(_settings())


def _ok(payload: dict[str, Any], status: int = 200):
    return flask.jsonify({"success": True, **to_jsonable(payload)}), status


@api.errorhandler(ParameterError)
def _bad_parameter(error: ParameterError):
    return flask.jsonify({"success": False, "msg": str(error), "parameter": error.parameter}), 400


@api.errorhandler(NotFound)
def _not_found(error: NotFound):
    return flask.jsonify({"success": False, "msg": str(error)}), 404


@api.errorhandler(remote.RemoteError)
def _remote_failed(error: remote.RemoteError):
    return flask.jsonify({"success": False, "msg": str(error)}), error.status


@api.errorhandler(previews.PreviewError)
def _no_preview(error: previews.PreviewError):
    return flask.jsonify({"success": False, "msg": str(error)}), 422


@api.errorhandler(previews.PreviewBusy)
def _previews_busy(error: previews.PreviewBusy):
    return flask.jsonify({"success": False, "msg": str(error)}), 503, {"Retry-After": str(error.retry_after)}


# --- lookups shared with the pages -------------------------------------------------------------


def cache_key(settings: Settings) -> tuple:
    return (settings.backend, str(settings.data_dir), settings.project, os.environ.get("FIRESTORE_EMULATOR_HOST"))


def get_observation(sequence_id: str) -> dict[str, Any]:
    check_sequence_id(sequence_id)
    data = _documents().get("observations", sequence_id)
    if data is None:
        raise NotFound(f"observation {sequence_id} does not exist")
    return observation_row(sequence_id, data)


def image_row(image_id: str, data: dict[str, Any]) -> dict[str, Any]:
    base = flask.url_for("api.image_file", image_id=image_id)[: -len("/file")]
    return {**data, "image_id": image_id, "preview_url": base + "/preview.png", "header_url": base + "/header",
            "file_url": base + "/file"}


def get_images(sequence_id: str) -> list[dict[str, Any]]:
    check_sequence_id(sequence_id)
    found = _documents().query("images", [("sequence_id", "==", sequence_id)])
    rows = [image_row(doc.id, doc.data) for doc in found]
    far_future = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(rows, key=lambda row: (row.get("time") or far_future, row["image_id"]))


FRAME_SERIES = ("airmass", "moonsep", "moonfrac", "camtemp", "exptime")


def frame_series(images: list[dict[str, Any]]) -> dict[str, list]:
    """Per-frame values against time, for the observation page's plot."""
    timed = [image for image in images if image.get("time")]
    series = {"time": [to_jsonable(image["time"]) for image in timed]}
    series.update({name: [image.get(name) for image in timed] for name in FRAME_SERIES})
    return series


def observation_series(observations: list[dict[str, Any]]) -> dict[str, list]:
    """Observations against time, for a unit's plot."""
    timed = [row for row in observations if row.get("time")]
    return {"time": [to_jsonable(row["time"]) for row in timed], "images": [row["num_images"] for row in timed],
            "minutes": [row["total_minutes"] for row in timed], "field": [row.get("field_name") for row in timed],
            "sequence_id": [row["sequence_id"] for row in timed]}


def get_image(image_id: str) -> dict[str, Any]:
    check_image_id(image_id)
    data = _documents().get("images", image_id)
    if data is None or not data.get("bucket_path"):
        raise NotFound(f"image {image_id} does not exist")
    return data


def unit_list() -> list[dict[str, Any]]:
    """The units as stored (the search page's choices)."""
    return [{**doc.data, "unit_id": doc.id} for doc in _documents().query("units")]


def unit_rows() -> list[dict[str, Any]]:
    """The units with how many observations each has: a count query per unit."""
    documents = _documents()
    return [{**unit, "observations": documents.count("observations", [("unit_id", "==", unit["unit_id"])])}
            for unit in unit_list()]


def get_unit(unit_id: str) -> dict[str, Any]:
    if not UNIT_ID_PATTERN.fullmatch(unit_id or ""):
        raise ParameterError("unit_id", f"unit_id {unit_id!r} is not a unit id such as PAN001")
    data = _documents().get("units", unit_id)
    if data is None:
        raise NotFound(f"unit {unit_id} does not exist")
    return {**data, "unit_id": unit_id}


def unit_observations(unit_id: str, limit: int = 1000) -> list[dict[str, Any]]:
    found = _documents().query("observations", [("unit_id", "==", unit_id)], [("time", "desc")], limit=limit)
    return [observation_row(doc.id, doc.data) for doc in found]


def overview(year: int | None) -> dict[str, Any]:
    settings = _settings()
    return stats.overview(runtime.documents(settings), year, cache_key=cache_key(settings))


def parse_year(args) -> int | None:
    text = (args.get("year") or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 1990 <= int(text) <= 2200:
        raise ParameterError("year", f"year must be a year such as 2024, not {text!r}")
    return int(text)


def run_search(args, everything: bool = False):
    return search(_documents(), parse(args, remote.resolve), everything=everything)


# --- routes ---------------------------------------------------------------------------------------


def _export_format() -> str:
    export = (flask.request.args.get("format") or "").strip().lower()
    if export and export not in EXPORT_FORMATS:
        raise ParameterError("format", f"format must be csv or json (a download of every result), not {export!r}")
    return export


def _download(body, mimetype: str, name: str):
    return flask.Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _search_answer(result, rows_name: str, export: str, csv_text: Callable[[], str], filename: str):
    """A search's answer: one page as JSON, or with ``export`` every result as a download."""
    query = result.query
    if export == "csv":
        return _download(csv_text(), "text/csv", f"{filename}.csv")
    if export == "json":
        return _download(flask.json.dumps(to_jsonable({"query": query.as_params(), "total": result.total,
                                                       rows_name: result.rows})), "application/json", f"{filename}.json")
    return _ok({"query": query.as_params(), "cone": query.centre(), "total": result.total, "page": query.page,
                "per_page": query.per_page, "pages": result.pages, rows_name: result.rows})


@api.get("/observations")
def observations():
    export = _export_format()
    result = run_search(flask.request.args, everything=bool(export))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return _search_answer(result, "observations", export, lambda: to_csv(result.rows), f"panoptes-observations-{stamp}")


@api.get("/observations/<sequence_id>")
def observation(sequence_id: str):
    return _ok({"observation": get_observation(sequence_id)})


@api.get("/observations/<sequence_id>/images")
def observation_images(sequence_id: str):
    get_observation(sequence_id)
    return _ok({"sequence_id": sequence_id, "images": get_images(sequence_id)})


@api.get("/units")
def units():
    return _ok({"units": unit_rows()})


@api.get("/units/<unit_id>")
def unit(unit_id: str):
    found = get_unit(unit_id)
    return _ok({"unit": found, "observations": unit_observations(unit_id)})


@api.get("/stats")
def stats_route():
    return _ok(overview(parse_year(flask.request.args)))


@api.get("/resolve")
def resolve_route():
    target = (flask.request.args.get("target") or "").strip()
    if not target:
        raise ParameterError("target", "target is required: an object name such as WASP-33, or coordinates")
    ra, dec, source = remote.resolve(target)
    return _ok({"target": target, "ra": ra, "dec": dec, "source": source})


@api.get("/images/<image_id>/header")
def image_header(image_id: str):
    image = get_image(image_id)
    answer = remote.frame_header(image["bucket_path"], _settings())
    return _ok({"image_id": image_id, "bucket_path": image["bucket_path"], "header": answer.get("header", {})})


@api.get("/images/<image_id>/preview.png")
def image_preview(image_id: str):
    image = get_image(image_id)
    try:
        made = previews.preview(image["bucket_path"], _settings())
    except ObjectNotFound:
        raise NotFound(f"the file of image {image_id} ({image['bucket_path']}) is not in the raw bucket") from None
    response = flask.Response(made.png, mimetype=previews.CONTENT_TYPE)
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Preview-Cache"] = "hit" if made.cached else "made"
    return response


@api.get("/images/<image_id>/file")
def image_file(image_id: str):
    image = get_image(image_id)
    settings = _settings()
    bucket_path = image["bucket_path"]
    public = os.environ.get("PUBLIC_BUCKET_URL", "").strip().rstrip("/")
    if public:
        return flask.redirect(f"{public}/{settings.raw_bucket}/{bucket_path}")
    try:
        data = runtime.bucket(settings.raw_bucket, settings).read(bucket_path)
    except ObjectNotFound:
        raise NotFound(f"{bucket_path} is not in the raw bucket") from None
    filename = bucket_path.replace("/", "_")
    return flask.Response(data, mimetype="application/fits",
                          headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# --- stars, lightcurves and processing runs ----------------------------------------------------


def _read_bucket(bucket: str, path: str) -> bytes:
    return runtime.bucket(bucket, _settings()).read(path)


def run_star_search(args, everything: bool = False):
    return stars.search_stars(_documents(), stars.parse_stars(args, remote.resolve), everything=everything)


def get_star(picid: str) -> dict[str, Any]:
    stars.check_picid(picid)
    data = _documents().get(stars.STARS, picid)
    if data is None:
        raise NotFound(f"star {picid} is not in the catalog")
    row = stars.star_row(picid, data)
    if not sky.valid(row.get("ra"), row.get("dec")):
        # Counted by process-observation but not (yet) in the loaded catalog: the position and
        # magnitude its photometry used, from one of its lightcurves.
        found = _documents().query(stars.LIGHTCURVES, [("picid", "==", picid)], limit=1)
        if found:
            row.update({key: found[0].data.get(key) for key in ("ra", "dec", "mag") if row.get(key) is None})
            row["position_source"] = "lightcurve"
    return row


def star_lightcurves(picid: str, fields: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    return stars.star_lightcurves(_documents(), picid, _read_bucket, fields)


def star_observations(star: dict[str, Any], curves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The observations whose field covers the star (within 10 degrees of its centre, about a
    PANOPTES field's half diagonal), and those its lightcurves came from."""
    rows = {}
    if sky.valid(star.get("ra"), star.get("dec")):  # a star measured before its catalog was loaded has none
        query = parse({"ra": star["ra"], "dec": star["dec"], "radius": 10, "sort": "time"})
        rows = {row["sequence_id"]: row for row in search(_documents(), query, everything=True).rows}
    measured = {curve.get("sequence_id") for curve in curves} - set(rows)
    for sequence_id in sorted(filter(None, measured)):
        data = _documents().get("observations", sequence_id)
        if data is not None:
            rows[sequence_id] = observation_row(sequence_id, data)
    for row in rows.values():
        row["measured"] = any(curve.get("sequence_id") == row["sequence_id"] for curve in curves)
    far_future = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(rows.values(), key=lambda row: row.get("time") or far_future, reverse=True)


def star_images(observations: list[dict[str, Any]], limit: int = 200) -> list[dict[str, Any]]:
    """Frames of the latest runs of the observations covering the star (about ten a run, spread
    over it) whose files are recorded, for the postage stamp's choice: a few reads, however
    many runs the star has."""
    documents = _documents()
    found = []
    run_ids = [row["latest_run_id"] for row in observations if row.get("measured", True) and row.get("latest_run_id")]
    for run_id in run_ids[:3]:
        run = documents.get(stars.RUNS, run_id) or {}
        used = run.get("frames_used") or []
        for image_id in used[:: max(1, len(used) // 10)]:
            image = documents.get("images", image_id) if ID_PATTERN.fullmatch(str(image_id)) else None
            if image and image.get("bucket_path"):
                found.append({"image_id": image_id, "sequence_id": run.get("sequence_id"), "run_id": run_id,
                              "time": image.get("time")})
    return found[:limit]


def get_run(run_id: str) -> dict[str, Any]:
    stars.check_run_id(run_id)
    data = _documents().get(stars.RUNS, run_id)
    if data is None:
        raise NotFound(f"processing run {run_id} does not exist")
    return stars.run_row(run_id, data)


def observation_runs(sequence_id: str) -> list[dict[str, Any]]:
    found = _documents().query(stars.RUNS, [("sequence_id", "==", sequence_id)])
    runs = [stars.run_row(doc.id, doc.data) for doc in found]
    far_past = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(runs, key=lambda run: run.get("time") or far_past, reverse=True)


@api.get("/stars")
def stars_route():
    export = _export_format()
    result = run_star_search(flask.request.args, everything=bool(export))
    return _search_answer(result, "stars", export, lambda: to_csv(result.rows, stars.STAR_COLUMNS), "panoptes-stars")


@api.get("/stars/<picid>")
def star_route(picid: str):
    star = get_star(picid)
    curves = star_lightcurves(picid, stars.ROW_FIELDS)
    return _ok({"star": star, "observations": star_observations(star, curves),
                "lightcurves": stars.lightcurve_rows(curves)})


@api.get("/stars/<picid>/lightcurves")
def star_lightcurves_route(picid: str):
    star = get_star(picid)
    export = (flask.request.args.get("format") or "json").strip().lower()
    if export not in ("json", "csv", "fits", "plot"):
        raise ParameterError("format", f"format must be json, csv, fits or plot, not {export!r}")
    channel, _, _ = stars.periodogram_params({"channel": flask.request.args.get("channel")})
    name = f"panoptes-picid-{picid.replace(' ', '_')}-lightcurves"
    if export == "plot":  # what the star page draws and lists, and only that: one channel, or all three
        shown = (channel,) if flask.request.args.get("channel") else stars.CHANNELS
        curves = star_lightcurves(picid, stars.plot_fields(shown))
        # The series are typed arrays in base64 already: encoded as they are, not walked by to_jsonable.
        body = {"success": True, "picid": picid, "lightcurves": to_jsonable(stars.lightcurve_rows(curves)),
                "series": stars.plot_series(curves, shown)}
        return flask.Response(json.dumps(body, separators=(",", ":")), mimetype="application/json")
    curves = star_lightcurves(picid)
    if export == "csv":
        return _download(stars.to_csv(curves), "text/csv", name + ".csv")
    if export == "fits":
        return _download(stars.to_fits(picid, star, curves, channel), "application/fits", f"{name}-{channel}.fits")
    for curve in curves:
        curve.pop("arrays", None)
    return _ok({"picid": picid, "lightcurves": curves})


@api.get("/stars/<picid>/periodogram")
def star_periodogram(picid: str):
    channel, low, high = stars.periodogram_params(flask.request.args)
    get_star(picid)
    return _ok(stars.periodogram(picid, star_lightcurves(picid, stars.channel_fields(channel)), channel, low, high))


@api.get("/stars/<picid>/stamp.png")
def star_stamp(picid: str):
    star = get_star(picid)
    image_id = (flask.request.args.get("image_id") or "").strip()
    if not image_id:
        raise ParameterError("image_id", "image_id is required: the frame to cut the stamp from")
    image = get_image(image_id)
    try:
        png = previews.postage_stamp(image["bucket_path"], star["ra"], star["dec"], _settings())
    except ObjectNotFound:
        raise NotFound(f"the file of image {image_id} is not in the raw bucket") from None
    return flask.Response(png, mimetype=previews.CONTENT_TYPE, headers={"Cache-Control": "public, max-age=3600"})


@api.get("/processed_observations/<run_id>")
def processed_observation(run_id: str):
    return _ok({"run": get_run(run_id)})
