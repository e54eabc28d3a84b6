"""FITS headers read with range requests, and lossless compression as fpack does it.

Reading: FITS is a sequence of 2880-byte blocks; a header is 80-byte cards up to an
``END`` card, padded to a block, followed by its data, also padded. :func:`read_header`
fetches the first 8 blocks in one read (most headers fit, so one round trip), then
reads as much again as it holds until the wanted header's ``END`` is in hand: a
header of up to 16 blocks costs at most 2 reads, a longer one a read per doubling, and
what is read past the ``END`` is never more than the header itself (or the first 8
blocks). Data sections between HDUs are skipped by arithmetic, never read; after such a
jump the reads start again at 8 blocks. Cards are parsed by astropy.

Rendering: :func:`header_as_json` gives a header as typed JSON values (COMMENT and
HISTORY as lists, long strings joined from CONTINUE cards, HIERARCH keywords kept);
:func:`header_cards` gives its 80-character cards.

An fpack-compressed file (``.fits.fz``) is an empty primary HDU and a binary table
holding the tiles; its header carries the image's own keywords renamed (``ZBITPIX``,
``ZNAXIS1``, ...) beside the table's. :func:`image_header` restores the image header as
funpack (cfitsio's ``imcomp_copy_comp2img``) does: renamed keywords back in place,
table keywords dropped, everything else in its original order.

Compressing: :func:`compress` writes RICE_1 tiles of one row each, fpack's defaults,
and :func:`verify_compressed` decompresses the result and compares every pixel and
every header keyword with the original before anyone may delete it.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

BLOCK = 2880
CARD = 80
FIRST_READ_BLOCKS = 8
END_CARD = b"END" + b" " * 77
MAX_HEADER_BLOCKS = 10_000  # ~28 MB of header: beyond that it is not a real header

RangeReader = Callable[[int, int], bytes]  # (start, end) -> bytes [start, end)


class NotFitsError(ValueError):
    """The bytes are not a FITS file (or not the part of one that was asked for)."""


class UnsupportedFitsError(ValueError):
    """Valid FITS that this pipeline cannot compress losslessly."""


class NoSuchHDU(NotFitsError):
    """The file is FITS but ends before the HDU that was asked for."""

    def __init__(self, wanted: int, count: int):
        super().__init__(f"the file has {count} HDU{'s' if count != 1 else ''} (0 to {count - 1}); there is no HDU {wanted}")
        self.wanted, self.count = wanted, count


@dataclass
class HeaderRead:
    header: fits.Header
    hdu_index: int
    compressed: bool
    reads: int
    bytes_read: int
    offset: int  # where the header starts in the file


class _Window:
    """A growing window on the file, fetched with as few range reads as possible.

    Each read asks for as much again as the window holds (at least ``first_read``), so
    the window doubles: few round trips for a long header, and never more read past
    what was needed than was needed before it.
    """

    def __init__(self, read_range: RangeReader, first_read: int):
        self.read_range = read_range
        self.first_read = first_read
        self.offset = 0
        self.data = b""
        self.reads = 0
        self.bytes_read = 0
        self.eof_at: int | None = None

    def get(self, start: int, end: int) -> bytes:
        """Bytes [start, end), or fewer at the end of the file."""
        if self.eof_at is not None:
            end = min(end, self.eof_at)
        if start < self.offset or start > self.offset + len(self.data):
            self.offset, self.data = start, b""  # a jump over a data section
        while self.offset + len(self.data) < end:
            have = self.offset + len(self.data)
            size = max(self.first_read, len(self.data), end - have)
            chunk = self.read_range(have, have + size)
            self.reads += 1
            self.bytes_read += len(chunk)
            self.data += chunk
            if len(chunk) < size:
                self.eof_at = have + len(chunk)
                end = min(end, self.eof_at)
        return self.data[start - self.offset : end - self.offset]


def _header_at(window: _Window, start: int, hdu_number: int) -> tuple[fits.Header, int]:
    """Parse the header of HDU ``hdu_number`` starting at ``start``; return it and where its data begins."""
    primary = hdu_number == 0
    first = window.get(start, start + BLOCK)
    if len(first) < BLOCK:
        if start == 0:
            raise NotFitsError(f"too short to be FITS ({len(first)} bytes; a FITS file is at least {BLOCK})")
        if not first:
            raise NoSuchHDU(hdu_number, hdu_number)
        raise NotFitsError(f"truncated FITS: HDU {hdu_number} at byte {start} is cut short")
    expected = b"SIMPLE  =" if primary else b"XTENSION="
    if not first.startswith(expected):
        what = "does not start with SIMPLE = T" if primary else f"has no XTENSION card at byte {start}"
        raise NotFitsError(f"not a FITS file: it {what}")
    block = start
    for _ in range(MAX_HEADER_BLOCKS):
        chunk = window.get(block, block + BLOCK)
        if len(chunk) < BLOCK:
            raise NotFitsError("truncated FITS: the file ends before the header's END card")
        for position in range(0, BLOCK, CARD):
            if chunk[position : position + CARD] == END_CARD or (
                chunk[position : position + 3] == b"END" and chunk[position + 3 : position + CARD].strip() == b""
            ):
                text = window.get(start, block + position + CARD).decode("ascii", errors="replace")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", VerifyWarning)
                        header = fits.Header.fromstring(text)
                except Exception as error:  # astropy raises several types for bad cards
                    raise NotFitsError(f"unreadable FITS header: {error}") from None
                return header, block + BLOCK
        block += BLOCK
    raise NotFitsError(f"no END card in the first {MAX_HEADER_BLOCKS} header blocks")


def data_size(header: fits.Header) -> int:
    """Bytes of the data section after ``header``, padded to whole blocks (FITS 4.0 §4.4.1)."""
    try:
        naxis = int(header.get("NAXIS", 0))
        bitpix = int(header["BITPIX"])
        axes = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
    except (KeyError, ValueError, TypeError) as error:
        raise NotFitsError(f"header lacks a valid BITPIX/NAXIS: {error}") from None
    if naxis == 0:
        return 0
    if naxis < 0 or any(axis < 0 for axis in axes) or bitpix not in (8, 16, 32, 64, -32, -64):
        raise NotFitsError(f"header has an invalid BITPIX={bitpix} or NAXIS ({naxis} axes: {axes})")
    groups = bool(header.get("GROUPS")) and axes and axes[0] == 0
    elements = math.prod(axes[1:] if groups else axes)
    try:
        gcount, pcount = int(header.get("GCOUNT", 1)), int(header.get("PCOUNT", 0))
    except (ValueError, TypeError) as error:
        raise NotFitsError(f"header has an invalid GCOUNT or PCOUNT: {error}") from None
    if gcount < 0 or pcount < 0:
        raise NotFitsError(f"header has a negative GCOUNT ({gcount}) or PCOUNT ({pcount})")
    size = abs(bitpix) // 8 * gcount * (pcount + elements)
    return -(-size // BLOCK) * BLOCK


def is_compressed_image(header: fits.Header) -> bool:
    return str(header.get("XTENSION", "")).strip() == "BINTABLE" and header.get("ZIMAGE", False) is True


def read_header(
    read_range: RangeReader,
    hdu: int | None = None,
    *,
    restore_compressed: bool = True,
    first_read: int = FIRST_READ_BLOCKS * BLOCK,
) -> HeaderRead:
    """The header of HDU ``hdu``; by default the image's (the primary, or the compressed image).

    A compressed image's header is returned as funpack would restore it unless
    ``restore_compressed`` is False.
    """
    if hdu is not None and hdu < 0:
        raise ValueError("hdu must be 0 or more")
    window = _Window(read_range, first_read)
    start, index = 0, 0
    header, data_start = _header_at(window, 0, 0)
    try:
        primary_naxis = int(header.get("NAXIS", 0))
    except (TypeError, ValueError):
        raise NotFitsError(f"the primary header's NAXIS is not a number: {header.get('NAXIS')!r}") from None
    want = hdu if hdu is not None else (0 if primary_naxis > 0 else None)
    while want is None or index < want:
        next_start = data_start + data_size(header)
        if want is None:
            # The primary has no data: the image, if any, is in the first extension.
            if window.get(next_start, next_start + BLOCK) == b"":
                want = 0
                break
            want = 1
        start, index = next_start, index + 1
        try:
            header, data_start = _header_at(window, start, index)
        except NoSuchHDU as error:
            raise NoSuchHDU(want, error.count) from None
    compressed = is_compressed_image(header)
    if compressed and restore_compressed:
        header = image_header(header)
    return HeaderRead(header, index, compressed, window.reads, window.bytes_read, start)


def check_structure(data: bytes) -> int:
    """Walk every HDU's header and data extent; raise :class:`NotFitsError` if truncated.

    Returns the number of HDUs. Reads nothing but headers, so it is cheap even for a
    full frame.
    """
    window = _Window(lambda start, end: data[start:end], len(data))
    header, data_start = _header_at(window, 0, 0)
    count = 1
    while True:
        end = data_start + data_size(header)
        if end > len(data):
            raise NotFitsError(f"truncated FITS: HDU {count - 1} needs {end} bytes but the file has {len(data)}")
        if end + BLOCK > len(data):
            return count
        header, data_start = _header_at(window, end, count)
        count += 1


def read_header_bytes(data: bytes, hdu: int | None = None, **options) -> HeaderRead:
    return read_header(lambda start, end: data[start:end], hdu, **options)


# cfitsio imcomp_copy_comp2img: keywords renamed back, and the table's own dropped.
_RENAMED = {
    "ZSIMPLE": "SIMPLE",
    "ZTENSION": "XTENSION",
    "ZBITPIX": "BITPIX",
    "ZNAXIS": "NAXIS",
    "ZEXTEND": "EXTEND",
    "ZBLOCKED": "BLOCKED",
    "ZPCOUNT": "PCOUNT",
    "ZGCOUNT": "GCOUNT",
    "ZHECKSUM": "CHECKSUM",
    "ZDATASUM": "DATASUM",
}
_DROPPED = {
    "CHECKSUM", "DATASUM", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "TFIELDS",
    "ZIMAGE", "ZCMPTYPE", "ZBLANK", "ZMASKCMP", "THEAP",
}
_DROPPED_INDEXED = ("NAXIS", "TTYPE", "TFORM", "TUNIT", "TNULL", "TSCAL", "TZERO", "TDIM", "ZTILE", "ZNAME", "ZVAL")


def _restored_keyword(keyword: str) -> str | None:
    """The image keyword for a compressed-table keyword, or None to drop it."""
    if keyword in _RENAMED:
        return _RENAMED[keyword]
    if keyword.startswith("ZNAXIS") and keyword[6:].isdigit():
        return "NAXIS" + keyword[6:]
    if keyword in _DROPPED:
        return None
    for prefix in _DROPPED_INDEXED:
        if keyword.startswith(prefix) and keyword[len(prefix):].isdigit():
            return None
    return keyword


def image_header(compressed: fits.Header) -> fits.Header:
    """The image header inside a tile-compressed binary table header, as funpack restores it."""
    restored = fits.Header()
    for card in compressed.cards:
        keyword = card.keyword
        if keyword == "EXTNAME" and str(card.value).strip() == "COMPRESSED_IMAGE":
            continue
        if keyword in ("COMMENT", "HISTORY", ""):
            restored.append(card, bottom=True)
            continue
        new_keyword = _restored_keyword(keyword)
        if new_keyword is None:
            continue
        if new_keyword == keyword:
            restored.append(card, bottom=True)
        else:
            restored.append(fits.Card(new_keyword, card.value, card.comment), bottom=True)
    return restored


# --- rendering ---------------------------------------------------------------------------

LIST_KEYWORDS = ("COMMENT", "HISTORY")
JsonValue = bool | int | float | str | None


def _json_value(value) -> JsonValue:
    """A card's value as JSON: bool, int, float and str as they are; no value is None."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, complex):
        return str(value)  # JSON has no complex numbers; "(1+2j)" keeps both parts
    return None  # astropy's Undefined: a keyword without a value


def header_as_json(header: fits.Header) -> dict[str, JsonValue | list[str]]:
    """The header as a JSON object of typed values, in card order.

    COMMENT and HISTORY are lists of their texts; a long string continued over
    CONTINUE cards is one string (astropy joins them); HIERARCH cards keep their full
    keyword (``ESO DET CHIP`` for ``HIERARCH ESO DET CHIP``), as astropy names them.
    A keyword repeated against the standard keeps its first value, as ``header[key]``
    does; blank-keyword cards are left out. :func:`header_cards` loses nothing.
    """
    result: dict[str, JsonValue | list[str]] = {}
    for card in header.cards:
        keyword = card.keyword
        if keyword in LIST_KEYWORDS:
            result.setdefault(keyword, []).append(str(card.value))
        elif keyword and keyword not in result:
            result[keyword] = _json_value(card.value)
    return result


def header_cards(header: fits.Header) -> list[str]:
    """The header's 80-character cards, CONTINUE cards included, without END."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        text = header.tostring(sep="", endcard=False, padding=False)
    return [text[start : start + CARD] for start in range(0, len(text), CARD)]


# --- compression -------------------------------------------------------------------------


@dataclass
class Compressed:
    data: bytes
    images: int  # image HDUs compressed


def _open(data: bytes) -> fits.HDUList:
    try:
        return fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError, IndexError) as error:
        raise NotFitsError(f"not a readable FITS file: {error}") from None


def _check_losslessly_compressible(index: int, hdu: fits.ImageHDU | fits.PrimaryHDU) -> None:
    bitpix = hdu.header["BITPIX"]
    if bitpix < 0:
        raise UnsupportedFitsError(
            f"HDU {index} holds floating-point pixels; RICE_1 would quantise them (lossy), so it is not compressed"
        )
    bscale, bzero = hdu.header.get("BSCALE", 1), hdu.header.get("BZERO", 0)
    if bscale != 1 or bzero not in (0, 2 ** (bitpix - 1)):
        raise UnsupportedFitsError(
            f"HDU {index} has BSCALE={bscale} BZERO={bzero}; only unscaled or unsigned integer images are compressed"
        )


def compress(data: bytes) -> Compressed:
    """fpack's defaults: every image HDU RICE_1-compressed in one-row tiles, others copied."""
    check_structure(data)
    with _open(data) as hdus:
        if hdus[0].header.get("NAXIS", 0) == 0 and len(hdus) == 1:
            raise UnsupportedFitsError("the file holds no image to compress")
        output = [fits.PrimaryHDU()]
        images = 0
        for index, hdu in enumerate(hdus):
            if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)) and hdu.header.get("NAXIS", 0) > 0:
                _check_losslessly_compressible(index, hdu)
                header = hdu.header.copy()
                output.append(fits.CompImageHDU(data=hdu.data, header=header, compression_type="RICE_1"))
                images += 1
            elif index > 0:
                output.append(hdu.copy())
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VerifyWarning)
            fits.HDUList(output).writeto(buffer)
    return Compressed(buffer.getvalue(), images)


_VOLATILE = {"CHECKSUM", "DATASUM", "EXTEND", "SIMPLE", "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME"}


def _keywords(header: fits.Header) -> list[tuple[str, object]]:
    return [(card.keyword, card.value) for card in header.cards if card.keyword not in _VOLATILE]


def verify_compressed(original: bytes, compressed: bytes) -> None:
    """Raise unless ``compressed`` decompresses to exactly the pixels and keywords of ``original``."""
    with _open(original) as before, _open(compressed) as after:
        originals = [h for h in before if isinstance(h, (fits.PrimaryHDU, fits.ImageHDU)) and h.header.get("NAXIS", 0) > 0]
        restored = [h for h in after if isinstance(h, fits.CompImageHDU)]
        if len(originals) != len(restored):
            raise ValueError(f"{len(originals)} images in the original but {len(restored)} compressed")
        for number, (old, new) in enumerate(zip(originals, restored)):
            old_data, new_data = old.data, new.data
            if old_data.shape != new_data.shape or old_data.dtype.kind != new_data.dtype.kind:
                raise ValueError(f"image {number}: shape or type changed ({old_data.shape} {old_data.dtype} -> "
                                 f"{new_data.shape} {new_data.dtype})")
            if not np.array_equal(old_data, new_data):
                raise ValueError(f"image {number}: pixels differ after decompression")
            lost = set(_keywords(old.header)) ^ set(_keywords(new.header))
            if lost:
                raise ValueError(f"image {number}: header keywords differ after decompression: {sorted(lost)[:5]}")
