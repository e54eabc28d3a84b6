"""plate-solve: a frame without a WCS -> its TAN-SIP solution, stored beside it.

record-image publishes ``{"bucket_path"}`` on the plate-solve topic for every frame it
records without a WCS. This job reads the frame, runs the solve stages
(:mod:`panoptes_network.solve`) and writes, in this order:

1. the WCS as a FITS header in the processed bucket, beside the frame's path
   (``PATH.fits.fz`` -> ``PATH.wcs.fits``; the raw original is never rewritten);
2. ``images/{id}``: ``plate_solved``, ``ra_image``/``dec_image`` (the centre), status
   ``solved`` and a ``solve`` map (engine, matched stars, rms, pixel scale, rotation,
   seconds); and ``observations/{sequence_id}``: the first solved centre becomes its
   ``ra``/``dec``, with the sky index that position calls for (sky.py).

A frame with no solution (clouds, a blank frame, too few stars, no index files) gets
status ``unsolved`` and the reason, and the message is acknowledged: solving it again
would give the same answer. A file that is no image is dead-lettered. A redelivered
message finds the image solved and its WCS stored, and does nothing again.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from astropy.io import fits as astropy_fits

from panoptes_network import runtime, sky
from panoptes_network.config import Settings
from panoptes_network.deadletter import PermanentError
from panoptes_network.ids import BucketPath
from panoptes_network.pipeline import job_path
from panoptes_network.ports.bucket import ObjectNotFound
from panoptes_network.ports.documents import Transaction
from panoptes_network.solve import SOLVED, UNSOLVED, CorruptFrame, Frame, solve_bytes

SOLVABLE_TYPES = (".fits.fz", ".fz", ".fits")
WCS_SUFFIX = ".wcs.fits"
FITS_CONTENT_TYPE = "application/fits"


def wcs_path(bucket_path: str) -> str:
    """Where a frame's WCS header is kept in the processed bucket: ``PATH.wcs.fits``."""
    for suffix in SOLVABLE_TYPES:
        if bucket_path.endswith(suffix):
            return bucket_path[: -len(suffix)] + WCS_SUFFIX
    return bucket_path + WCS_SUFFIX


def cache_dir(settings: Settings) -> Path | None:
    """Where the tetra3rs database is kept between processes: ``PLATE_SOLVE_CACHE_DIR``,
    else the local backend's data directory; unset on Cloud Run, where the image ships it."""
    configured = os.environ.get("PLATE_SOLVE_CACHE_DIR")
    if configured:
        return Path(configured)
    return settings.data_dir / "cache" if settings.backend == "local" else None


def wcs_file(frame: Frame) -> bytes:
    header = frame.wcs_header()
    header["PLTSOLVD"] = (True, "solved by the PANOPTES plate-solve service")
    header["SOLVENG"] = (frame.engine_solution.engine, "engine of the first solution")
    header["SOLVNSTR"] = (frame.matched, "Gaia stars the WCS is fitted to")
    header["SOLVRMS"] = (round(frame.rms_arcsec, 3), "[arcsec] rms of their residuals")
    buffer = io.BytesIO()
    astropy_fits.PrimaryHDU(header=header).writeto(buffer)
    return buffer.getvalue()


def solve_object(bucket_path: str, settings: Settings) -> dict:
    path = job_path(bucket_path, SOLVABLE_TYPES, "plate-solve")
    outcome = {"bucket_path": bucket_path, "image_id": path.image_id, "sequence_id": path.sequence_id}
    documents = runtime.documents(settings)
    processed = runtime.bucket(settings.processed_bucket, settings)
    target = wcs_path(bucket_path)
    raw = runtime.bucket(settings.raw_bucket, settings)
    try:
        generation = raw.info(bucket_path).generation
        if _already_tried(documents.get("images", path.image_id), generation, processed, target):
            return {**outcome, "outcome": "already tried"}
        data = raw.read(bucket_path, if_generation_match=generation)
    except ObjectNotFound:
        raise PermanentError(f"gs://{settings.raw_bucket}/{bucket_path} does not exist") from None
    try:
        frame = solve_bytes(data, bucket_path, cache_dir=cache_dir(settings))
    except CorruptFrame as error:
        raise PermanentError(f"{bucket_path}: {error}") from None

    if frame.status == SOLVED:
        processed.write(target, wcs_file(frame), content_type=FITS_CONTENT_TYPE)
    documents.run_transaction(lambda transaction: write_solution(transaction, path, frame, target, generation))
    return {**outcome, "outcome": frame.status, "wcs_path": target if frame.status == SOLVED else None,
            **({"reason": frame.reason} if frame.status == UNSOLVED else frame.summary())}


def _already_tried(image: dict | None, generation: int, processed, target: str) -> bool:
    """This very file (its generation) was solved, or found unsolvable, before: a redelivery."""
    solve = (image or {}).get("solve") or {}
    if solve.get("generation") != generation:
        return False  # never tried, or a new upload under the same name
    return image.get("status") == UNSOLVED or processed.exists(target)


def write_solution(transaction: Transaction, path: BucketPath, frame: Frame, target: str, generation: int) -> None:
    summary = {**frame.summary(), "generation": generation}
    if frame.status != SOLVED:
        transaction.set("images", path.image_id, {"status": UNSOLVED, "plate_solved": False, "solve": summary},
                        merge=True)
        return
    ra, dec = frame.centre()
    observation = transaction.get("observations", path.sequence_id) or {}
    transaction.set("images", path.image_id, {
        "status": SOLVED, "plate_solved": True, "ra_image": ra, "dec_image": dec,
        "solve": summary, "wcs_path": target,
    }, merge=True)
    if observation.get("ra") is None or observation.get("dec") is None:
        # The first solved centre becomes the observation's position, and its sky index.
        update = {"ra": ra, "dec": dec}
        update.update(sky.index_fields({**observation, **update}))
        transaction.set("observations", path.sequence_id, update, merge=True)
