"""get-fits-header: the header of a FITS file in a bucket, read with range requests.

Parameters: ``bucket_path`` (required), ``bucket_name`` (an allowed bucket; default the
raw bucket), ``hdu`` (a number; default the image's HDU: the primary, or the
compressed image of a ``.fits.fz``), ``format`` (``json``, the default, or ``cards``),
``solved`` (``true``: the header merged with the WCS the plate-solve service stored for
the frame in the processed bucket; 404 if it has none).

Buckets a caller may read: ``FITS_HEADER_BUCKETS`` (comma-separated), by default the
raw and RGB buckets (``RAW_BUCKET``, ``RGB_BUCKET``).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from panoptes_network import fits, log, runtime
from panoptes_network.config import Settings, settings as current_settings
from panoptes_network.http import HttpError, bool_param, int_param, text_param
from panoptes_network.ids import InvalidPathError, MAX_PATH_LENGTH, check_object_name
from panoptes_network.ports.bucket import ObjectNotFound

SERVICE = "get-fits-header"
FORMATS = ("json", "cards")
MAX_HDU = 999
EXAMPLE_PATH = "PAN001/14d3bd/20160909T081152/20160909T081434.fits.fz"
URL_PREFIXES = ("gs://", "https://storage.googleapis.com/", "http://storage.googleapis.com/")


def allowed_buckets(settings: Settings, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if env is None else env
    configured = tuple(name.strip() for name in env.get("FITS_HEADER_BUCKETS", "").split(",") if name.strip())
    return configured or (settings.raw_bucket, settings.rgb_bucket)


def _bucket_path(params: Mapping[str, Any]) -> str:
    path = text_param(params, "bucket_path", max_length=4 * MAX_PATH_LENGTH)
    if path.startswith(URL_PREFIXES):
        raise HttpError(400, f"bucket_path {path[:80]!r} is a URL; give the object's path inside the bucket "
                             f"(like {EXAMPLE_PATH}) and the bucket as bucket_name")
    try:
        return check_object_name(path)
    except InvalidPathError as error:
        raise HttpError(400, f"{error} (a bucket path looks like {EXAMPLE_PATH})") from None


def respond(params: Mapping[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or current_settings()
    bucket_path = _bucket_path(params)
    allowed = allowed_buckets(settings)
    bucket_name = text_param(params, "bucket_name", required=False, max_length=222) or settings.raw_bucket
    if bucket_name not in allowed:
        raise HttpError(403, f"bucket {bucket_name!r} is not one get-fits-header reads; "
                             f"use one of: {', '.join(allowed)}")
    hdu = int_param(params, "hdu", minimum=0, maximum=MAX_HDU)
    output = (text_param(params, "format", required=False, max_length=20) or "json").lower()
    if output not in FORMATS:
        raise HttpError(400, f"format must be one of {', '.join(FORMATS)}, not {output!r}")

    bucket = runtime.bucket(bucket_name, settings)
    try:
        read = fits.read_header(lambda start, end: bucket.read_range(bucket_path, start, end), hdu)
    except ObjectNotFound:
        raise HttpError(404, f"gs://{bucket_name}/{bucket_path} does not exist; "
                             "check bucket_path (and bucket_name)") from None
    except fits.NoSuchHDU as error:
        raise HttpError(400, f"{error}; ask for an hdu from 0 to {error.count - 1}, "
                             "or leave hdu out for the image") from None
    except fits.NotFitsError as error:
        raise HttpError(422, f"gs://{bucket_name}/{bucket_path} is not a readable FITS file: {error}. "
                             "get-fits-header reads .fits and .fits.fz files") from None
    header = read.header
    solved = bool_param(params, "solved")
    if solved:
        header = with_solution(header, bucket_path, settings)
    log.info(f"{SERVICE}: gs://{bucket_name}/{bucket_path} HDU {read.hdu_index}", service=SERVICE,
             bucket_path=bucket_path, reads=read.reads, bytes_read=read.bytes_read)
    payload: dict[str, Any] = {
        "bucket_name": bucket_name,
        "bucket_path": bucket_path,
        "hdu": read.hdu_index,
        "compressed": read.compressed,
    }
    if solved:
        payload["solved"] = True
    if output == "cards":
        payload["cards"] = fits.header_cards(header)
    else:
        payload["header"] = fits.header_as_json(header)
    return payload


def with_solution(header, bucket_path: str, settings: Settings):
    """The frame's header with the plate-solve service's WCS cards put in (or over) it."""
    from panoptes_network.pipeline.platesolve import wcs_path

    stored = wcs_path(bucket_path)
    processed = runtime.bucket(settings.processed_bucket, settings)
    try:
        solution = fits.read_header(lambda start, end: processed.read_range(stored, start, end), 0).header
    except ObjectNotFound:
        raise HttpError(404, f"{bucket_path} has no plate solution (yet): gs://{settings.processed_bucket}/{stored} "
                             "does not exist; leave out solved=true for the header as uploaded") from None
    merged = header.copy()
    for card in solution.cards:
        if card.keyword not in STRUCTURAL_KEYWORDS and card.keyword:
            merged[card.keyword] = (card.value, card.comment)
    return merged


STRUCTURAL_KEYWORDS = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "END", "COMMENT", "HISTORY"}
