"""make-rgb-fits: a raw camera frame (``.cr2``, ``.cr3``, ``.dng``) -> three FITS colour planes.

``PATH/IMAGE_TIME.cr2`` in the raw bucket becomes ``PATH/IMAGE_TIME_r.fits``,
``..._g.fits`` and ``..._b.fits`` in the RGB bucket. LibRaw (through rawpy) reads
all three containers; the file's extension only says it is meant to be raw.

- The post-processing options are the network's defaults (:data:`DEFAULT_OPTIONS`)
  merged with the message's ``rawpy_options``; an unknown name or an invalid value is a
  :class:`PermanentError` naming it, checked before anything is read.
- A file that is empty, not raw, truncated or corrupt is a :class:`PermanentError`;
  the raw original is only read, never moved or deleted.
- Each plane is written whole by the bucket port (never visible half-written). Its
  bytes depend only on the raw bytes and the options, so a redelivery finds the same
  size and CRC32C already stored and writes nothing; a stale result is replaced.

The header of each plane carries the ids from the path, the plane, the options used,
and the raw file's metadata: what LibRaw decodes (exposure, ISO, white balance, black
and white levels) and, through exifread, what only the EXIF/TIFF tags say (make,
model, serial number, the capture time's UTC offset).

Where the time goes (bench/make_rgb_fits.py): LibRaw's decode is most of it. Around
it, the raw is handed to LibRaw as a file (the local store links its own), the EXIF
and headers are made while LibRaw works, and the three planes are encoded
(:func:`fits.primary_image`) and stored side by side, checked with CRC32C.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

import exifread
import numpy as np
import rawpy
import tifffile
from astropy.io import fits as astropy_fits

from panoptes_network import fits, log, runtime
from panoptes_network.config import Settings
from panoptes_network.deadletter import PermanentError
from panoptes_network.pipeline import job_path
from panoptes_network.ids import BucketPath
from panoptes_network.pipeline.routing import RAW_CAMERA_TYPES
from panoptes_network.ports.bucket import ObjectNotFound, crc32c_hex, file_md5_hex

PLANES = ("r", "g", "b")
CLOCK_AS_UTC = "camera clock as UTC"  # how a capture time without a zone is read
FITS_CONTENT_TYPE = "application/fits"
# Kept for the life of the process: starting threads per request costs more than the work
# they share out once other threads hold the GIL.
_WORKERS = ThreadPoolExecutor(max_workers=len(PLANES), thread_name_prefix="make-rgb-fits")

# What the network has always used: linear 16-bit planes at the sensor's colour
# resolution (each 2x2 Bayer block becomes one pixel, so no demosaic invents values).
DEFAULT_OPTIONS: dict[str, Any] = {
    "demosaic_algorithm": "AAHD",
    "no_auto_bright": True,
    "output_bps": 16,
    "half_size": True,
    "gamma": [1.0, 1.0],
}


# --- options ------------------------------------------------------------------------------


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PermanentError(f"rawpy option {name!r} must be true or false, not {value!r}")
    return value


def _int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PermanentError(f"rawpy option {name!r} must be an integer, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise PermanentError(f"rawpy option {name!r} must be between {low} and {high}, not {value}")
    return value


def _number(name: str, value: Any, low: float | None = None, high: float | None = None,
            above: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PermanentError(f"rawpy option {name!r} must be a finite number, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise PermanentError(f"rawpy option {name!r} must be between {low} and {high}, not {value}")
    if above is not None and value <= above:
        raise PermanentError(f"rawpy option {name!r} must be greater than {above}, not {value}")
    return float(value)


def _numbers(name: str, value: Any, count: int, above: float | None = None, low: float | None = None) -> list[float]:
    if not isinstance(value, list) or len(value) != count:
        raise PermanentError(f"rawpy option {name!r} must be a list of {count} numbers, not {value!r}")
    return [_number(name, item, low=low, above=above) for item in value]


def _choice(enum: type, name: str, value: Any, usable: Callable[[Any], bool] = lambda member: True) -> str:
    """An enum member given by name (case-insensitive); returns the canonical name."""
    names = [member.name for member in enum if usable(member)]
    if isinstance(value, str):
        for candidate in names:
            if candidate.lower() == value.lower():
                return candidate
    raise PermanentError(f"rawpy option {name!r} must be one of {', '.join(names)}, not {value!r}")


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else check(name, value)


def _highlight_mode(name: str, value: Any) -> str | int:
    if isinstance(value, int) and not isinstance(value, bool):
        return _int(name, value, 0, 9)  # 3-9: LibRaw's reconstruction levels
    return _choice(rawpy.HighlightMode, name, value)


def _supported(algorithm: rawpy.DemosaicAlgorithm) -> bool:
    return bool(algorithm.isSupported)


# The options of rawpy.Params a message may set, each with its check. The checks return
# the JSON form recorded in the headers; to_rawpy() turns that into rawpy's arguments.
# bad_pixels_path is left out on purpose: it names a file on the service's own disk.
OPTION_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "demosaic_algorithm": lambda n, v: _choice(rawpy.DemosaicAlgorithm, n, v, _supported),
    "half_size": _bool,
    "four_color_rgb": _bool,
    "dcb_iterations": lambda n, v: _int(n, v, 0, 100),
    "dcb_enhance": _bool,
    "fbdd_noise_reduction": lambda n, v: _choice(rawpy.FBDDNoiseReductionMode, n, v),
    "noise_thr": _optional(lambda n, v: _number(n, v, low=0)),
    "median_filter_passes": lambda n, v: _int(n, v, 0, 100),
    "use_camera_wb": _bool,
    "use_auto_wb": _bool,
    "user_wb": _optional(lambda n, v: _numbers(n, v, 4, low=0)),
    "output_color": lambda n, v: _choice(rawpy.ColorSpace, n, v),
    "output_bps": lambda n, v: v if v in (8, 16) and not isinstance(v, bool) else _reject(n, v, "8 or 16"),
    "user_flip": _optional(lambda n, v: v if v in (0, 3, 5, 6) and not isinstance(v, bool)
                           else _reject(n, v, "0, 3, 5 or 6 (none, 180, 90 counter-clockwise, 90 clockwise)")),
    "user_black": _optional(lambda n, v: _int(n, v, 0, 65535)),
    "user_cblack": _optional(lambda n, v: [_int(n, item, -65535, 65535) for item in _list_of(n, v, 4)]),
    "user_sat": _optional(lambda n, v: _int(n, v, 1, 65535)),
    "no_auto_bright": _bool,
    "auto_bright_thr": _optional(lambda n, v: _number(n, v, 0, 1)),
    "adjust_maximum_thr": lambda n, v: _number(n, v, 0, 1),
    "bright": lambda n, v: _number(n, v, above=0),
    "highlight_mode": _highlight_mode,
    "exp_shift": _optional(lambda n, v: _number(n, v, 0.25, 8)),
    "exp_preserve_highlights": lambda n, v: _number(n, v, 0, 1),
    "no_auto_scale": _bool,
    "gamma": _optional(lambda n, v: _numbers(n, v, 2, above=0)),
    "chromatic_aberration": _optional(lambda n, v: _numbers(n, v, 2, above=0)),
}


def _reject(name: str, value: Any, expected: str):
    raise PermanentError(f"rawpy option {name!r} must be {expected}, not {value!r}")


def _list_of(name: str, value: Any, count: int) -> list:
    if not isinstance(value, list) or len(value) != count:
        raise PermanentError(f"rawpy option {name!r} must be a list of {count} values, not {value!r}")
    return value


def validate_options(overrides: Any) -> dict[str, Any]:
    """The defaults merged with ``overrides`` (a JSON object, or None), every value checked.

    Returns the options in JSON form, in name order: what the headers record.
    """
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        raise PermanentError(f"rawpy_options must be a JSON object of option names to values, not {overrides!r}")
    unknown = sorted(name for name in overrides if name not in OPTION_CHECKS)
    if unknown:
        raise PermanentError(
            f"unknown rawpy option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(OPTION_CHECKS)}"
        )
    merged = {**DEFAULT_OPTIONS, **overrides}
    return {name: OPTION_CHECKS[name](name, merged[name]) for name in sorted(merged)}


def to_rawpy(options: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``RawPy.postprocess`` for validated options."""
    enums = {
        "demosaic_algorithm": rawpy.DemosaicAlgorithm,
        "fbdd_noise_reduction": rawpy.FBDDNoiseReductionMode,
        "output_color": rawpy.ColorSpace,
        "highlight_mode": rawpy.HighlightMode,
    }
    arguments: dict[str, Any] = {}
    for name, value in options.items():
        if name in enums and isinstance(value, str):
            value = enums[name][value]
        elif name in ("gamma", "chromatic_aberration") and value is not None:
            value = tuple(value)
        arguments[name] = value
    return arguments


# --- reading the raw file -------------------------------------------------------------------


@dataclass(frozen=True)
class RawMetadata:
    """What the raw file says about its exposure; None where it says nothing."""

    exptime: float | None = None  # seconds
    iso: int | None = None
    capture_time: datetime | None = None  # timezone-aware UTC
    capture_zone: str | None = None  # the file's UTC offset, or CLOCK_AS_UTC
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    bayer_pattern: str | None = None  # e.g. "RGGB", top-left 2x2 block, row by row
    camera_wb: dict[str, float] = field(default_factory=dict)  # as shot, per channel R G B G2
    daylight_wb: dict[str, float] = field(default_factory=dict)
    black_levels: dict[str, int] = field(default_factory=dict)
    white_level: int | None = None


RawSource = bytes | Path  # the raw file's bytes, or a file holding them


@contextlib.contextmanager
def _opened(source: RawSource) -> Iterator[BinaryIO]:
    if isinstance(source, bytes):
        yield io.BytesIO(source)
    else:
        with open(source, "rb") as handle:
            yield handle


def _size(source: RawSource) -> int:
    return len(source) if isinstance(source, bytes) else os.stat(source).st_size


def _image_data_end(handle: BinaryIO) -> int:
    """Where the last image strip or tile of a TIFF-based file ends, SubIFDs included."""
    end = 0
    with tifffile.TiffFile(handle) as tif:
        pages = list(tif.pages)
        while pages:
            page = pages.pop()
            if isinstance(page, tifffile.TiffPage):
                end = max([end, *(offset + count for offset, count in zip(page.dataoffsets, page.databytecounts))])
                pages.extend(page.pages or ())
    return end


def check_complete(source: RawSource, name: str) -> None:
    """Refuse an empty file, and a TIFF-based raw (CR2, DNG) whose image data runs past its end.

    LibRaw notices most truncations itself but reads a file cut inside its last strip
    without complaint, filling in what is missing; the container's own offsets tell.
    LibRaw stays the judge of everything else: a container tifffile cannot follow is
    left to it.
    """
    size = _size(source)
    if not size:
        raise PermanentError(f"{name} is empty (0 bytes); not a raw camera file")
    with _opened(source) as handle:
        if handle.read(4) not in (b"II*\x00", b"MM\x00*"):
            return  # CR3 (ISO base media) and others: LibRaw's own checks apply
        handle.seek(0)
        try:
            end = _image_data_end(handle)
        except Exception as error:  # tifffile's parser on untrusted bytes
            log.warning(f"make-rgb-fits: tifffile cannot follow {name} ({error!r}); LibRaw decides",
                        service="make-rgb-fits")
            return
    if end > size:
        raise PermanentError(f"{name} is truncated: its image data runs to byte {end}, the file has {size}")


# LibRaw errors that say the file itself is at fault; anything else (out of memory) is retried.
_BAD_FILE_ERRORS = (
    rawpy.LibRawFileUnsupportedError,
    rawpy.LibRawIOError,
    rawpy.LibRawDataError,
    rawpy.LibRawRequestForNonexistentImageError,
    rawpy.LibRawBadCropError,
    rawpy.LibRawTooBigError,
)


def _per_channel(color_desc: str, values: Any) -> dict[str, Any]:
    """LibRaw's per-colour arrays are in ``color_desc`` order (``RGBG``): name them R G B G2."""
    named: dict[str, Any] = {}
    if values is None:
        return named
    for letter, value in zip(color_desc, values):
        key = letter if letter not in named else letter + "2"
        named[key] = value
    return named


def _single(value: float) -> float:
    """A float32 from LibRaw with the digits it has: 1.6, not 1.600000023841858."""
    return float(f"{value:.7g}")


def decode(source: RawSource, options: Mapping[str, Any], name: str,
           while_decoding: Callable[[RawMetadata], None] | None = None) -> tuple[np.ndarray, RawMetadata]:
    """The post-processed ``(height, width, 3)`` array and the raw file's metadata.

    LibRaw reads a file by name faster than the same bytes from memory. It holds no GIL
    while it post-processes: the EXIF is read and ``while_decoding(metadata)``, if given,
    is run meanwhile, in a worker thread.
    """
    check_complete(source, name)
    try:
        with rawpy.imread(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as raw:
            # Read before postprocess, which rewrites some of these (half_size: the pattern).
            color_desc = raw.color_desc.decode("ascii", "replace")
            pattern = raw.raw_pattern
            other = raw.other
            metadata = RawMetadata(
                exptime=_single(other.shutter_speed) if other.shutter_speed > 0 else None,
                iso=int(round(other.iso_speed)) if other.iso_speed > 0 else None,
                # LibRaw's timestamp is the camera clock read as local time and rawpy turns it back
                # into that naive clock reading; the EXIF reading below replaces it where present.
                capture_time=other.timestamp.replace(tzinfo=timezone.utc) if other.timestamp.year > 1970 else None,
                capture_zone=CLOCK_AS_UTC if other.timestamp.year > 1970 else None,
                bayer_pattern="".join(color_desc[index] for index in pattern.ravel()) if pattern is not None else None,
                camera_wb={k: _single(v) for k, v in _per_channel(color_desc, raw.camera_whitebalance).items() if v},
                daylight_wb={k: _single(v) for k, v in _per_channel(color_desc, raw.daylight_whitebalance).items()
                             if v},
                black_levels={k: int(v) for k, v in _per_channel(color_desc, raw.black_level_per_channel).items()},
                white_level=int(raw.white_level) if raw.white_level else None,
            )

            def alongside(metadata: RawMetadata) -> RawMetadata:
                metadata = _with_exif(metadata, source, name)
                if while_decoding is not None:
                    while_decoding(metadata)
                return metadata

            beside = _WORKERS.submit(alongside, metadata)
            try:
                rgb = raw.postprocess(**to_rawpy(options))
            finally:
                wait([beside])
            metadata = beside.result()
    except _BAD_FILE_ERRORS as error:
        detail = error.args[0] if error.args else ""
        reason = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        raise PermanentError(f"{name} is not a raw camera file LibRaw can read: {reason} "
                             f"({type(error).__name__}; empty, truncated, corrupt or not raw)") from None
    if rgb.ndim != 3 or rgb.shape[2] != len(PLANES):
        raise PermanentError(f"{name}: LibRaw gave an image of shape {rgb.shape}, not three colour planes")
    return rgb, metadata


def _exif_time(text: str | None, offset: str | None) -> tuple[datetime | None, str | None]:
    if not text:
        return None, None
    try:
        moment = datetime.strptime(text.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None, None
    if offset:
        try:
            sign = -1 if offset.strip().startswith("-") else 1
            hours, minutes = offset.strip().lstrip("+-").split(":")
            zone = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
            return moment.replace(tzinfo=zone).astimezone(timezone.utc), f"offset {offset.strip()}"
        except ValueError:
            pass
    # No offset recorded: PANOPTES units keep their cameras' clocks on UTC.
    return moment.replace(tzinfo=timezone.utc), CLOCK_AS_UTC


def _with_exif(metadata: RawMetadata, source: RawSource, name: str) -> RawMetadata:
    """Fill in what only the EXIF/TIFF tags give (exifread reads CR2 and DNG, not CR3)."""
    try:
        with _opened(source) as handle:
            tags = exifread.process_file(handle, details=True, extract_thumbnail=False)
    except Exception as error:  # a third-party parser on untrusted bytes: the pixels are still good
        log.warning(f"make-rgb-fits: EXIF of {name} unreadable: {error!r}", service="make-rgb-fits")
        return metadata
    by_id: dict[tuple[str, int], Any] = {}
    for key, tag in tags.items():
        if hasattr(tag, "tag"):
            by_id.setdefault((key.split(" ", 1)[0], tag.tag), tag)

    def text(*where: tuple[str, int]) -> str | None:
        for ifd, tag_id in where:
            tag = by_id.get((ifd, tag_id))
            if tag is not None:
                value = str(tag.printable).strip().rstrip("\x00").strip()
                if value:
                    return value
        return None

    def number(*where: tuple[str, int]) -> float | None:
        for ifd, tag_id in where:
            tag = by_id.get((ifd, tag_id))
            if tag is not None and tag.values:
                value = tag.values[0] if isinstance(tag.values, list) else tag.values
                try:
                    value = float(value.num) / float(value.den) if hasattr(value, "den") else float(value)
                except (TypeError, ValueError, ZeroDivisionError):
                    continue
                if math.isfinite(value) and value > 0:
                    return value
        return None

    exif_time, zone = _exif_time(text(("EXIF", 0x9003), ("Image", 0x9003), ("Image", 0x0132)),
                                 text(("EXIF", 0x9011), ("Image", 0x9011)))
    iso = number(("EXIF", 0x8827), ("Image", 0x8827))
    return RawMetadata(
        # The EXIF rational is exact where LibRaw keeps a float32 (1/50 s: 0.0199999995).
        exptime=number(("EXIF", 0x829A), ("Image", 0x829A)) or metadata.exptime,
        iso=metadata.iso or (int(round(iso)) if iso else None),
        capture_time=exif_time or metadata.capture_time,
        capture_zone=zone if exif_time else metadata.capture_zone,
        make=text(("Image", 0x010F)),
        model=text(("Image", 0x0110)),
        # EXIF BodySerialNumber, DNG CameraSerialNumber, Canon's maker note SerialNumber.
        serial=text(("EXIF", 0xA431), ("Image", 0xC62F), ("MakerNote", 0x000C)),
        bayer_pattern=metadata.bayer_pattern,
        camera_wb=metadata.camera_wb,
        daylight_wb=metadata.daylight_wb,
        black_levels=metadata.black_levels,
        white_level=metadata.white_level,
    )


# --- the planes -------------------------------------------------------------------------------


def plane_path(path: BucketPath, plane: str) -> str:
    """``PAN001/14d3bd/20180216T110623/20180216T112430.cr2`` -> ``..._r.fits``."""
    return path.with_extension(f"_{plane}.fits")


def _set(header: astropy_fits.Header, keyword: str, value: Any, comment: str) -> None:
    if value is not None:
        header[keyword] = (value, comment)


def plane_header(path: BucketPath, plane: str, options: Mapping[str, Any], metadata: RawMetadata,
                 source: str, source_md5: str) -> astropy_fits.Header:
    """The header of one colour plane (the data keywords are added by astropy)."""
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, not {plane!r}")
    header = astropy_fits.Header()
    _set(header, "ORIGIN", "Project PANOPTES", "")
    _set(header, "OBSERVER", path.unit_id, "PANOPTES unit id")
    _set(header, "INSTRUME", path.camera_id, "camera id")
    _set(header, "SEQID", path.sequence_id, "sequence (observation) id")
    _set(header, "IMAGEID", path.image_id, "image id")
    _set(header, "COLOR", plane, "colour plane of the raw frame: r, g or b")
    _set(header, "BAYERPAT", metadata.bayer_pattern, "colour filter array of the raw frame")
    _set(header, "RAWFILE", source, "raw file these planes were made from")
    _set(header, "RAWMD5", source_md5, "MD5 of the raw file")
    _set(header, "EXPTIME", metadata.exptime, "[s] exposure time, from the raw file")
    _set(header, "ISO", metadata.iso, "ISO speed, from the raw file")
    if metadata.capture_time is not None:
        _set(header, "DATE-OBS", metadata.capture_time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
             f"[UTC] capture time ({metadata.capture_zone})")
        _set(header, "TIMESYS", "UTC", "")
    _set(header, "CAMMAKE", metadata.make, "camera make, from the raw file")
    _set(header, "CAMMODEL", metadata.model, "camera model, from the raw file")
    _set(header, "CAMSN", metadata.serial, "camera serial number, from the raw file")
    for channel, value in metadata.camera_wb.items():
        _set(header, f"CAMWB_{channel}", value, f"as-shot white balance multiplier {channel}")
    for channel, value in metadata.daylight_wb.items():
        _set(header, f"DAYWB_{channel}", value, f"daylight white balance multiplier {channel}")
    for channel, value in metadata.black_levels.items():
        _set(header, f"BLACK_{channel}", value, f"[adu] raw black level {channel}")
    _set(header, "WHITELVL", metadata.white_level, "[adu] raw white (saturation) level")
    _set(header, "RAWPYVER", rawpy.__version__, "rawpy version")
    _set(header, "LIBRAWV", ".".join(map(str, rawpy.libraw_version)), "LibRaw version")
    for name, value in options.items():
        if isinstance(value, list):
            value = json.dumps(value)
        _set(header, f"HIERARCH RAWPY {name.upper()}", value, "rawpy option")
    header.add_comment("Pixel values: rawpy postprocess output (black subtracted, scaled to the output range).")
    return header


# --- the job ------------------------------------------------------------------------------------


def make_rgb_fits(bucket_path: str, rawpy_options: Any, settings: Settings) -> dict:
    path = job_path(bucket_path, RAW_CAMERA_TYPES, "make-rgb-fits")
    options = validate_options(rawpy_options)

    raw_bucket = runtime.bucket(settings.raw_bucket, settings)
    source = f"gs://{settings.raw_bucket}/{bucket_path}"
    try:
        original = raw_bucket.info(bucket_path)
        with raw_bucket.local_file(bucket_path, if_generation_match=original.generation) as raw_file:
            # The store's checksum of this very generation; only a composite object has none.
            source_md5 = original.md5_hex or file_md5_hex(raw_file)
            headers: list[fits.PrimaryHeader] = []
            dtype = np.uint8 if options["output_bps"] == 8 else np.uint16

            def make_headers(metadata: RawMetadata) -> None:
                headers.extend(fits.PrimaryHeader(plane_header(path, plane, options, metadata, source, source_md5), dtype)
                               for plane in PLANES)

            rgb, metadata = decode(raw_file, options, source, while_decoding=make_headers)
    except ObjectNotFound:
        raise PermanentError(f"{source} does not exist") from None

    if rgb.dtype != dtype:
        raise RuntimeError(f"LibRaw gave {rgb.dtype} pixels for output_bps {options['output_bps']}")
    rendered = [header.rendered(rgb.shape[:2]) for header in headers]
    rgb_bucket = runtime.bucket(settings.rgb_bucket, settings)

    def store(index: int) -> tuple[str, str, int]:
        plane = PLANES[index]
        content = fits.primary_image(rgb[:, :, index], rendered[index])
        target = plane_path(path, plane)
        try:
            stored = rgb_bucket.info(target)
            if stored.size == len(content) and stored.crc32c_hex == crc32c_hex(content):
                return target, "unchanged", len(content)
        except ObjectNotFound:
            pass
        # CRC32C, not MD5: a tenth of the work, and the store checks the bytes with it on
        # the way (Cloud Storage still works out the MD5 itself; the local store on demand).
        rgb_bucket.write(target, content, content_type=FITS_CONTENT_TYPE, checksum="crc32c",
                         metadata={"source": source, "source_md5": source_md5, "color": plane})
        return target, "written", len(content)

    # The planes are encoded, hashed and stored side by side: those hold no GIL.
    results = list(_WORKERS.map(store, range(len(PLANES))))
    written = [target for target, action, _ in results if action == "written"]
    return {
        "outcome": "planes written" if written else "planes already there",
        "bucket_path": bucket_path,
        "image_id": path.image_id,
        "sequence_id": path.sequence_id,
        "planes": [f"gs://{settings.rgb_bucket}/{target}" for target, _, _ in results],
        "written": len(written),
        "shape": list(rgb.shape[:2]),
        "rawpy_options": options,
    }
