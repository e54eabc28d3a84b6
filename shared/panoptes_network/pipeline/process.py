"""process-observation: an observation's solved frames -> a run, its lightcurves, its stars.

The message is ``{"sequence_id": ..., "params": {...optional}}`` (``params``: the fields of
:class:`~panoptes_network.photometry.PhotometryParams`; an unknown or ill-typed one is a
dead letter with the reason). The job:

1. reads the observation's images; the solved ones (``plate_solved``) are the input;
2. names the run: ``<sequence_id>_<12 hex of sha256(pipeline version + canonical JSON
   params + sorted input image ids)>`` (SCIENCE_SCHEMA.md), so a redelivered message finds
   its run and does nothing again, while new params or new frames make a new run and older
   runs stay;
3. surveys its frames (:func:`survey_frames`: a first pass for their hot pixels, joined by
   its camera's other observations' maps, and their median FWHM, which every annulus
   follows), then
   measures every frame in a process pool on every core (:func:`measure_frame`, the hot
   pixels' levels taken off first): the
   ``.fits.fz`` from the raw bucket, its WCS from the processed bucket (``wcs_path``, as
   plate-solve wrote it) or from its own header (solved on the unit), and the catalog
   stars in its footprint from the bundled catalog in memory. The bundled catalog, not
   the ``stars`` collection: it is what that collection is loaded from by default (same
   ids, :func:`picid_of`), a footprint is a millisecond's search in memory in each worker
   instead of thousands of document reads per frame, and no worker needs the database;
4. builds the lightcurves (:func:`build_lightcurves`) and writes, in this order,
   ``lightcurves/{run_id}_{picid}`` (arrays to the processed bucket when the document would
   pass :data:`MAX_DOCUMENT_BYTES`), ``stars/{picid}`` and last ``processed_observations/
   {run_id}`` with status ``complete``, then ``observations/{sequence_id}``.

A crash anywhere leaves the run ``running``; the redelivery does it again and writes the
same documents (deterministic ids, the same values). ``stars/{picid}.num_lightcurves``
counts a lightcurve once: the transaction that adds it marks the lightcurve
``star_counted``, so a second pass skips it. ``best_rms`` is a minimum and
``last_processed`` a maximum, which a repetition cannot change.

Too few frames (none solved, or fewer than ``params.min_frames`` usable) records the run
``not_enough_frames`` with the reason and acknowledges. An unreadable frame or WCS is a
dead letter (the run is marked ``failed`` with the reason first).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from typing import Any, Iterable

import numpy as np

from panoptes_network import crashpoints, runtime
from panoptes_network.config import Settings
from panoptes_network.deadletter import PermanentError
from panoptes_network.messages import BadMessage, PubSubMessage
from panoptes_network.ports.bucket import ObjectNotFound
from panoptes_network.ports.documents import Transaction, to_jsonable

SERVICE = "process-observation"
RUNS = "processed_observations"
LIGHTCURVES = "lightcurves"
STARS = "stars"
RUNNING, COMPLETE, NOT_ENOUGH_FRAMES, FAILED = "running", "complete", "not_enough_frames", "failed"
FINISHED = (COMPLETE, NOT_ENOUGH_FRAMES)
OBSERVATION_STATE = {RUNNING: "processing", COMPLETE: "processed", NOT_ENOUGH_FRAMES: "not_enough_frames",
                     FAILED: "failed"}
MAX_DOCUMENT_BYTES = 900 * 1024  # Firestore allows 1 MiB; keep room for field names and overhead
MAX_BATCH_BYTES = 8 * 1024 * 1024  # Firestore's commit request stops at 10 MiB
STARS_PER_TRANSACTION = 200  # two writes each, under Firestore's 500
ARRAYS_PREFIX = "lightcurves"
QUIET_PERIOD = timedelta(minutes=60)

log = logging.getLogger(__name__)


# --- the message and the run id -------------------------------------------------------------


def parse_message(message: PubSubMessage):
    """(sequence_id, PhotometryParams) from a message, or a dead letter saying what is wrong."""
    from panoptes_network.photometry import PhotometryParams

    payload = message.json()
    sequence_id = payload.get("sequence_id")
    if not isinstance(sequence_id, str) or not sequence_id:
        raise BadMessage("message data has no 'sequence_id' string")
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise PermanentError(f"params must be an object, not {type(params).__name__}")
    try:
        return sequence_id, PhotometryParams.from_dict(params)
    except (TypeError, ValueError) as error:
        raise PermanentError(f"bad params: {error}") from None


def run_id(sequence_id: str, params, image_ids: Iterable[str], pipeline_version: str | None = None) -> str:
    from panoptes_network.photometry import PIPELINE_VERSION

    canonical = json.dumps(params.to_dict(), sort_keys=True, separators=(",", ":"))
    text = (pipeline_version or PIPELINE_VERSION) + canonical + json.dumps(sorted(image_ids), separators=(",", ":"))
    return f"{sequence_id}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def lightcurve_id(run: str, picid: str) -> str:
    return f"{run}_{picid}".replace("/", "_")  # a document id may not hold '/'; "HIP 123" is fine


# --- the job --------------------------------------------------------------------------------


def process_message(message: PubSubMessage, settings: Settings) -> dict:
    sequence_id, params = parse_message(message)
    return process_observation(sequence_id, params, settings)


def process_observation(sequence_id: str, params, settings: Settings) -> dict:
    from panoptes_network.photometry import NOT_ENOUGH_FRAMES as SHORT, PIPELINE_VERSION, build_lightcurves

    documents = runtime.documents(settings)
    observation = documents.get("observations", sequence_id)
    if observation is None:
        raise PermanentError(f"no observation {sequence_id!r}")
    images = sorted((doc for doc in documents.query("images", [("sequence_id", "==", sequence_id)])),
                    key=lambda doc: doc.id)
    solved = [doc for doc in images if doc.data.get("plate_solved")]
    run = run_id(sequence_id, params, [doc.id for doc in solved])
    last_image_time = max((doc.data["time"] for doc in images if doc.data.get("time")), default=None)
    outcome = {"sequence_id": sequence_id, "run_id": run}
    existing = documents.get(RUNS, run)
    if existing and existing.get("status") in FINISHED:
        _finish_observation(documents, sequence_id, run, existing, last_image_time)
        return {**outcome, "outcome": "already processed", "status": existing["status"]}

    now = datetime.now(timezone.utc)
    base = {
        "run_id": run, "sequence_id": sequence_id, "unit_id": observation.get("unit_id"),
        "camera_id": observation.get("camera_id"), "field_name": observation.get("field_name"),
        "pipeline_version": PIPELINE_VERSION, "params": params.to_dict(),
        "time": (existing or {}).get("time") or now, "input_frames": [doc.id for doc in solved],
    }
    if len(solved) < max(params.min_frames, 1):
        reason = ("no solved frames" if not solved else
                  f"{len(solved)} solved frames, at least {params.min_frames} needed")
        return _not_enough(documents, base, reason, [], [], last_image_time, outcome)

    _write_run(documents, {**base, "status": RUNNING, "reason": None}, last_image_time)
    try:
        survey = survey_frames(solved, params, settings, sequence_id, observation.get("camera_id"))
        base["hot_pixels"] = survey.summary
        measurements = measure_frames(solved, params, settings, survey)
    except PermanentError as error:
        _write_run(documents, {**base, "status": FAILED, "reason": str(error)}, last_image_time)
        raise
    result = build_lightcurves(measurements, params)
    if result.status == SHORT:
        return _not_enough(documents, base, result.reason, result.frames_used, result.frames_rejected,
                           last_image_time, outcome, result)

    written, moved = write_lightcurves(documents, settings, base, result)
    crashpoints.reached("process-observation:lightcurves-written")
    update_stars(documents, run, result, base["time"])
    crashpoints.reached("process-observation:stars-updated")
    document = {**base, **run_fields(result), "status": COMPLETE, "reason": None}
    _write_run(documents, document, last_image_time)
    return {**outcome, "outcome": COMPLETE, "frames_used": len(result.frames_used),
            "frames_rejected": len(result.frames_rejected), "lightcurves": written, "arrays_in_bucket": moved}


def _not_enough(documents, base, reason, used, rejected, last_image_time, outcome, result=None) -> dict:
    document = {**base, "status": NOT_ENOUGH_FRAMES, "reason": reason,
                **(run_fields(result) if result is not None else
                   {"frames_used": list(used), "frames_rejected": [], "num_frames_used": len(used), "num_stars": 0,
                    "quality": {}, "summary": {}, "rms_vs_mag": None})}
    _write_run(documents, document, last_image_time)
    return {**outcome, "outcome": NOT_ENOUGH_FRAMES, "reason": reason}


def run_fields(result) -> dict[str, Any]:
    return result.run_figures()


def _write_run(documents, document: dict, last_image_time) -> None:
    """The run document and its observation's state, in one transaction. The observation's
    ``latest_run_id`` moves to this run unless a later run (by time) is already there."""
    run = document["run_id"]

    def write(transaction: Transaction) -> None:
        observation = transaction.get("observations", document["sequence_id"]) or {}
        latest = observation.get("latest_run_id")
        latest_run = transaction.get(RUNS, latest) if latest and latest != run else None
        transaction.set(RUNS, run, document, merge=False)
        if latest_run and latest_run.get("time") and latest_run["time"] > document["time"]:
            return  # an older run finishing late: the observation keeps the newer one
        transaction.set("observations", document["sequence_id"], {
            "processing_state": OBSERVATION_STATE[document["status"]], "latest_run_id": run,
            "processed_last_image_time": last_image_time if document["status"] != RUNNING else
            observation.get("processed_last_image_time"),
        }, merge=True)

    documents.run_transaction(write)


def _finish_observation(documents, sequence_id: str, run: str, existing: dict, last_image_time) -> None:
    """A redelivery of a finished run: make sure the observation says so (the crash may
    have come between the two writes; they share a transaction, so this is only a check)."""
    observation = documents.get("observations", sequence_id) or {}
    if observation.get("latest_run_id") is None:
        _write_run(documents, existing, last_image_time)


# --- measuring frames -------------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def workers() -> int:
    return max(1, int(os.environ.get("PROCESS_OBSERVATION_WORKERS", "0") or 0) or os.cpu_count() or 1)


def _executor() -> ProcessPoolExecutor:
    """One pool per process, kept between messages (its workers load the catalog once).
    ``spawn``: the handler runs in a threaded server, which must not be forked."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=workers(), mp_context=get_context("spawn"),
                                        initializer=_exit_with_parent, initargs=(os.getpid(),))
        return _pool


def _exit_with_parent(parent: int) -> None:
    """In each worker: end when the process that made the pool is gone (killed, crashed).
    An orphaned worker would otherwise wait for work for ever, holding its parent's pipes."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _discard_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def measure_frames(images, params, settings: Settings, survey: "Survey | None" = None) -> list:
    """A FrameMeasurement per image, in the images' order, each with its hot pixels taken off
    and its annulus at the observation's FWHM (``survey``: :func:`survey_frames`'s, made here
    from these frames alone if not given). Reads overlap the work; the decoded frames are not held."""
    survey = survey or survey_frames(images, params, settings)
    options = params.to_dict()

    def read(doc) -> tuple:
        return (doc.id, _read_raw(doc, settings), _read_wcs(doc, settings), options, survey.hot_pixels[doc.id],
                survey.fwhm_px)

    return list(_corrupt_is_permanent(_in_workers(measure_bytes, read, images)))


def _read_wcs(doc, settings: Settings) -> bytes | None:
    """The WCS plate-solve wrote for the image, or None (the frame's own header has it)."""
    if not doc.data.get("wcs_path"):
        return None
    try:
        return runtime.bucket(settings.processed_bucket, settings).read(doc.data["wcs_path"])
    except ObjectNotFound:
        raise PermanentError(f"{doc.id}: its WCS gs://{settings.processed_bucket}/{doc.data['wcs_path']} "
                             "does not exist") from None


@dataclass
class Survey:
    """What the first pass over an observation's frames found."""

    hot_pixels: dict  # image id -> the hotpixels.HotPixelMap taken off its frame
    fwhm_px: float | None  # the median of the frames' FWHM, which every annulus follows (None: none measured)
    summary: dict[str, dict]  # "ROWSxCOLUMNS" -> what the run document says of that shape's hot-pixel map


def survey_frames(images, params, settings: Settings, sequence_id: str | None = None,
                  camera_id: str | None = None) -> Survey:
    """The first pass over an observation's frames, each in a worker (:func:`survey_bytes`):
    their FWHM, and each image's hot-pixel map (:mod:`photometry.hotpixels`), in two parts:

    - the observation's own: each frame's isolated single-pixel spikes (a list of indices
      each, and their excess over their neighbours, counted as it comes back), and the
      pixels that are spikes on a tenth of the frames of its shape, each with its level
      (:class:`hotpixels.SpikeCounts`);
    - its camera's: with a ``camera_id``, the own map is kept in the processed bucket
      (:func:`hot_pixel_map_path`) and joined by the pixels the camera's other observations
      nearest in time mapped (:func:`hotpixels.camera_map`): a hot pixel a star covers all
      night is found in the fields where it is on empty sky.

    The own map and the FWHM are pure functions of the frames, so a redelivery stores the same."""
    from panoptes_network.photometry import observation_fwhm
    from panoptes_network.photometry.hotpixels import ObservationMap, SpikeCounts, camera_map

    options = params.to_dict()
    counts, shapes, widths = SpikeCounts(), [], []
    for shape, flat, excesses, fwhm in _corrupt_is_permanent(_in_workers(
            survey_bytes, lambda doc: (doc.id, _read_raw(doc, settings), _read_wcs(doc, settings), options), images)):
        counts.add(shape, flat, excesses)
        shapes.append(tuple(shape))
        widths.append(fwhm)
    maps, summary = {}, {}
    for shape in sorted(set(shapes)):
        own = counts.hot_pixel_map(shape)
        others = []
        if camera_id and sequence_id:
            bucket = runtime.bucket(settings.processed_bucket, settings)
            bucket.write(hot_pixel_map_path(camera_id, shape, sequence_id),
                         ObservationMap(sequence_id, shape, counts.frames(shape), own).to_bytes(),
                         content_type="application/octet-stream")
            others = _camera_history(bucket, camera_id, shape, sequence_id)
        maps[shape] = camera_map(own, [other.map for other in others])
        summary[f"{shape[0]}x{shape[1]}"] = {
            "own": int(len(own)), "mapped": int(len(maps[shape])),
            "other_observations": [other.sequence_id for other in others]}
    fwhm = observation_fwhm(widths)
    return Survey({doc.id: maps[shape] for doc, shape in zip(images, shapes)}, fwhm, summary)


HOT_PIXELS_PREFIX = "hot-pixels"


def hot_pixel_map_path(camera_id: str, shape: tuple[int, int], sequence_id: str) -> str:
    return f"{_hot_pixel_folder(camera_id, shape)}{sequence_id}.npz"


def _hot_pixel_folder(camera_id: str, shape: tuple[int, int]) -> str:
    return f"{HOT_PIXELS_PREFIX}/{camera_id}/{shape[0]}x{shape[1]}/"


def _camera_history(bucket, camera_id: str, shape: tuple[int, int], sequence_id: str) -> list:
    """The camera's other observations' maps of this shape, the
    :data:`~photometry.hotpixels.HISTORY_OBSERVATIONS` nearest in time (by their sequence
    ids' times). One that cannot be read is left out (it is not this run's input), logged."""
    from panoptes_network.photometry.hotpixels import HISTORY_OBSERVATIONS, ObservationMap

    folder = _hot_pixel_folder(camera_id, shape)
    names = [info.name[len(folder):-len(".npz")] for info in bucket.list(folder) if info.name.endswith(".npz")]
    names = [name for name in names if name and name != sequence_id]
    when = _sequence_time(sequence_id)
    names.sort(key=lambda name: (abs((_sequence_time(name) - when).total_seconds())
                                 if when and _sequence_time(name) else float("inf"), name))
    history = []
    for name in names[:HISTORY_OBSERVATIONS]:
        try:
            history.append(ObservationMap.from_bytes(bucket.read(folder + name + ".npz")))
        except (ObjectNotFound, ValueError) as error:
            log.warning("hot-pixel map %s%s.npz left out: %s", folder, name, error)
    return history


def _sequence_time(sequence_id: str) -> datetime | None:
    from panoptes_network.ids import TIME_FORMAT

    try:
        return datetime.strptime(sequence_id.rsplit("_", 1)[-1], TIME_FORMAT)
    except ValueError:
        return None


def _read_raw(doc, settings: Settings) -> bytes:
    try:
        return runtime.bucket(settings.raw_bucket, settings).read(doc.data["bucket_path"])
    except ObjectNotFound:
        raise PermanentError(f"{doc.id}: gs://{settings.raw_bucket}/{doc.data['bucket_path']} does not exist") from None


def _in_workers(function, read, images):
    """``function(*read(image))`` for each image, in the images' order, yielded as they come
    (a result is not held once it is handed on): in the process pool, the reads on threads
    overlapping the work."""
    with ThreadPoolExecutor(max_workers=2 if workers() == 1 else 4) as readers:
        inputs = readers.map(read, images)
        if workers() == 1 or multiprocessing.current_process().daemon:
            # One core, or inside the local stack's delivery workers (daemonic processes may
            # not start a pool; there the workers themselves already fill the cores).
            for arguments in inputs:
                yield function(*arguments)
            return
        pool = _executor()
        futures = []
        try:
            futures = [pool.submit(function, *arguments) for arguments in inputs]
            for index in range(len(futures)):
                result = futures[index].result()
                futures[index] = None
                yield result
        except BrokenProcessPool:
            _discard_pool()  # a worker died (memory?): a fresh pool for the redelivery
            raise
        finally:  # the caller stopped early (a corrupt frame): the frames not started are not measured
            for future in futures:
                if future is not None:
                    future.cancel()


def _corrupt_is_permanent(results):
    """The values of ("ok", value) results as they come; a ("corrupt", reason) is a PermanentError."""
    for kind, value in results:
        if kind == "corrupt":
            raise PermanentError(value)
        yield value


def survey_bytes(image_id: str, data: bytes, wcs_bytes: bytes | None, params: dict):
    """The first pass, in a worker: ("ok", (shape, the frame's single-pixel spikes as flat
    indices, their excess over their neighbours in ADU, its FWHM)) or ("corrupt", reason).
    The FWHM is measured before the hot pixels are known (the median over the frames, which
    the annulus follows, hardly feels them)."""
    from panoptes_network.photometry import PhotometryParams, frame_fwhm
    from panoptes_network.photometry.hotpixels import frame_spikes

    decoded = _decode(image_id, data, wcs_bytes)
    if decoded[0] == "corrupt":
        return decoded
    header, pixels, wcs, stars = decoded[1]
    flat, excesses = frame_spikes(pixels)
    try:
        fwhm = frame_fwhm(pixels, header, wcs, stars, PhotometryParams.from_dict(params))
    except ValueError as error:  # a header without EXPTIME, an image of the wrong shape
        return "corrupt", f"{image_id}: {error}"
    return "ok", (pixels.shape, flat.astype(np.int32), excesses, fwhm)  # a full frame's indices fit int32


def measure_bytes(image_id: str, data: bytes, wcs_bytes: bytes | None, params: dict, hot_pixels=None,
                  sky_fwhm_px: float | None = None):
    """In a worker: ("ok", FrameMeasurement) or ("corrupt", reason). ``hot_pixels``: the
    observation's :class:`hotpixels.HotPixelMap`, taken off before the photometry;
    ``sky_fwhm_px``: the observation's FWHM, which the annulus follows."""
    from panoptes_network.photometry import PhotometryParams, measure_frame

    decoded = _decode(image_id, data, wcs_bytes)
    if decoded[0] == "corrupt":
        return decoded
    header, pixels, wcs, stars = decoded[1]
    try:
        measurement = measure_frame(pixels, header, wcs, stars, PhotometryParams.from_dict(params), image_id=image_id,
                                    hot_pixels=hot_pixels, sky_fwhm_px=sky_fwhm_px)
    except ValueError as error:  # a header without EXPTIME, an image of the wrong shape
        return "corrupt", f"{image_id}: {error}"
    return "ok", measurement


def _decode(image_id: str, data: bytes, wcs_bytes: bytes | None):
    """("ok", (header, pixels, WCS, the catalog stars in its footprint)) or ("corrupt", reason)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from panoptes_network import catalog
    from panoptes_network.fits import read_image

    try:
        image = read_image(data)
        if image is None:
            return "corrupt", f"{image_id}: no two-dimensional image in the file"
        header, pixels = image
        wcs_header = fits.Header.fromstring(wcs_bytes[:_header_length(wcs_bytes)]) if wcs_bytes else header
        wcs = WCS(wcs_header, relax=True)
        if not wcs.has_celestial:
            return "corrupt", f"{image_id}: recorded as solved, but no celestial WCS found"
    except Exception as error:  # astropy raises many kinds for a damaged file
        return "corrupt", f"{image_id}: not a readable FITS image or WCS: {error}"
    return "ok", (header, pixels, wcs, catalog.stars_in_footprint(wcs=wcs, shape=pixels.shape))


def _header_length(data: bytes) -> int:
    """The bytes of the primary header (up to its END card's block)."""
    for block in range(0, len(data), 2880):
        chunk = data[block:block + 2880]
        for card in range(0, len(chunk), 80):
            if chunk[card:card + 8] == b"END     ":
                return block + 2880
    return len(data)


# --- writing ----------------------------------------------------------------------------------


def lightcurve_document(base: dict, curve) -> tuple[dict, dict]:
    """(the lightcurve document, its arrays) for one star of a run."""
    from panoptes_network.photometry.lightcurves import ARRAY_FIELDS

    star = curve.to_dict()
    document = {"sequence_id": base["sequence_id"], "processed_observation_id": base["run_id"],
                "unit_id": base["unit_id"], "time": base["time"], **star, "arrays": None}
    return document, {key: star[key] for key in ARRAY_FIELDS}


def write_lightcurves(documents, settings: Settings, base: dict, result) -> tuple[int, int]:
    """Every star's lightcurve, in batches; arrays too big for a document go to the
    processed bucket first. ``merge``: a rewrite keeps the ``star_counted`` mark."""
    processed = runtime.bucket(settings.processed_bucket, settings)
    batch, size, written, moved = [], 0, 0, 0

    def flush():
        nonlocal batch, size
        if batch:
            documents.set_many(LIGHTCURVES, batch, merge=True)
        batch, size = [], 0

    for curve in result.lightcurves():
        document, arrays = lightcurve_document(base, curve)
        length = len(json.dumps(document, default=str))
        if length > MAX_DOCUMENT_BYTES:
            path = f"{ARRAYS_PREFIX}/{base['run_id']}/{str(curve.picid).replace(' ', '_')}.json"
            processed.write(path, json.dumps(arrays).encode(), content_type="application/json")
            for key in arrays:
                document.pop(key)
            document["arrays"] = {"bucket": settings.processed_bucket, "path": path}
            length, moved = len(json.dumps(document, default=str)), moved + 1
        if len(batch) >= 400 or size + length > MAX_BATCH_BYTES:
            flush()
        batch.append((lightcurve_id(base["run_id"], curve.picid), document))
        size += length
        written += 1
    flush()
    return written, moved


def update_stars(documents, run: str, result, run_time: datetime) -> None:
    """``stars/{picid}``: count each lightcurve once (its ``star_counted`` mark, set in the
    same transaction), keep the best RMS and the latest processing time."""

    curves = [(str(picid), result.lightcurve(index).best_rms) for index, picid in enumerate(result.picid)]
    for start in range(0, len(curves), STARS_PER_TRANSACTION):
        chunk = curves[start:start + STARS_PER_TRANSACTION]

        def write(transaction: Transaction, chunk=chunk) -> None:
            keys = [(LIGHTCURVES, lightcurve_id(run, picid)) for picid, _ in chunk] + \
                   [(STARS, picid) for picid, _ in chunk]
            found = transaction.get_many(keys)
            marks, stars = found[:len(chunk)], found[len(chunk):]
            for (picid, rms), mark, star in zip(chunk, marks, stars):
                if (mark or {}).get("star_counted"):
                    continue
                star = star or {}
                update: dict[str, Any] = {"num_lightcurves": int(star.get("num_lightcurves") or 0) + 1}
                previous = star.get("last_processed")
                update["last_processed"] = max(previous, run_time) if previous else run_time
                rms = to_jsonable(rms)
                best = star.get("best_rms")
                if rms is not None:
                    update["best_rms"] = min(best, rms) if best is not None else rms
                transaction.set(STARS, picid, update, merge=True)
                transaction.set(LIGHTCURVES, lightcurve_id(run, picid), {"star_counted": True}, merge=True)

        documents.run_transaction(write)


def restore_star_summaries(documents) -> int:
    """Put back on ``stars/{picid}`` what :func:`update_stars` keeps there, worked out again from
    the lightcurves it counted: a catalog load replaces star documents whole (``catalog load
    --again``, a TIC export), which would otherwise forget them. Returns the stars restored."""
    summaries: dict[str, dict[str, Any]] = {}
    for doc in documents.query(LIGHTCURVES, select=("picid", "best_rms", "time", "star_counted")):
        curve = doc.data
        if not curve.get("star_counted"):
            continue
        summary = summaries.setdefault(str(curve["picid"]), {"num_lightcurves": 0})
        summary["num_lightcurves"] += 1
        if curve.get("time") is not None:
            summary["last_processed"] = max(summary.get("last_processed", curve["time"]), curve["time"])
        if curve.get("best_rms") is not None:
            summary["best_rms"] = min(summary.get("best_rms", curve["best_rms"]), curve["best_rms"])
    rows = sorted(summaries.items())
    for start in range(0, len(rows), 500):
        documents.set_many(STARS, rows[start:start + 500], merge=True)
    return len(rows)


# --- which observations to process -------------------------------------------------------------


def pending(documents, now: datetime | None = None, quiet: timedelta = QUIET_PERIOD) -> list[str]:
    """Observations ready for a run: their last image older than ``quiet``, no frame waiting
    to be solved, and frames newer than their latest run (or no run yet)."""
    now = now or datetime.now(timezone.utc)
    ready = []
    for doc in documents.query("observations", [("last_image_time", "<", now - quiet)]):
        observation = doc.data
        done_through = observation.get("processed_last_image_time")
        if done_through is not None and done_through >= observation["last_image_time"]:
            continue
        images = documents.query("images", [("sequence_id", "==", doc.id)])
        if any(not image.data.get("plate_solved") and image.data.get("status") != "unsolved" for image in images):
            continue  # frames still waiting for plate-solve
        ready.append(doc.id)
    return sorted(ready)


def every_observation(documents) -> list[str]:
    return sorted(doc.id for doc in documents.query("observations"))


def publish(settings: Settings, sequence_ids: Iterable[str], params: dict | None = None) -> list[str]:
    """One message per observation on the process-observation topic."""
    topics = runtime.topics(settings)
    sent = []
    for sequence_id in sequence_ids:
        payload: dict[str, Any] = {"sequence_id": sequence_id}
        if params:
            payload["params"] = params
        topics.publish(settings.process_observation_topic, payload)
        sent.append(sequence_id)
    return sent
