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
for every image HDU of any FITS file, and copies every other HDU byte for byte; what it
cannot compress losslessly it refuses with the reason (:class:`UnsupportedFitsError`).
:func:`verify_compressed` decompresses the result and compares every stored pixel and
every header card (as FITS defines their equality) with the original before anyone may
delete it. The fast codec, astropy's private RICE_1 functions, is used only while it
exists and writes what the public ``CompImageHDU`` writes (:func:`fast_codec`).
"""

from __future__ import annotations

import functools
import importlib
import io
import math
import os
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError, VerifyWarning
from astropy.utils.exceptions import AstropyUserWarning

from panoptes_network import log

BLOCK = 2880
CARD = 80
FIRST_READ_BLOCKS = 8
END_CARD = b"END" + b" " * 77
MAX_HEADER_BLOCKS = 10_000  # ~28 MB of header: beyond that it is not a real header
NOT_HEADER_TEXT = re.compile(rb"[^\x20-\x7e]")  # FITS 4.0 §4.1.1: header cards are ASCII 0x20-0x7E

RangeReader = Callable[[int, int], bytes]  # (start, end) -> bytes [start, end)


class NotFitsError(ValueError):
    """The bytes are not a FITS file (or not the part of one that was asked for)."""


class UnsupportedFitsError(ValueError):
    """Valid FITS that this pipeline cannot compress losslessly."""


class NoSuchHDU(NotFitsError):
    """The file is FITS but ends before the HDU that was asked for."""

    def __init__(self, wanted: int, count: int):
        hdus = f"{count} HDU{'s' if count != 1 else ''}"
        super().__init__(f"the file has {hdus} (0 to {count - 1}); there is no HDU {wanted}")
        self.wanted, self.count = wanted, count


@dataclass
class HeaderRead:
    header: fits.Header
    hdu_index: int
    compressed: bool
    reads: int
    bytes_read: int
    offset: int  # where the header starts in the file
    primary: fits.Header | None = None  # the primary header, when the header read is another HDU's


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
                raw = window.get(start, block + position + CARD)
                unprintable = NOT_HEADER_TEXT.search(raw)
                if unprintable:
                    offset = unprintable.start()
                    where = f"card {offset // CARD + 1} of HDU {hdu_number}'s header"
                    raise NotFitsError(f"byte {start + offset} ({where}) is {raw[offset]:#04x}; "
                                       "a FITS header is printable ASCII only")
                text = raw.decode("ascii")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", VerifyWarning)
                        header = fits.Header.fromstring(text)
                except Exception as error:  # astropy raises several types for bad cards
                    raise NotFitsError(f"unreadable FITS header: {error}") from None
                return header, block + BLOCK
        block += BLOCK
    raise NotFitsError(f"no END card in the first {MAX_HEADER_BLOCKS} header blocks")


def _structural(header: fits.Header, keyword: str, default=None):
    """A keyword the file's layout depends on; :class:`NotFitsError` if its card is unparsable."""
    try:
        return header.get(keyword, default)
    except VerifyError as error:
        raise NotFitsError(f"the {keyword} card cannot be read: {error}") from None


def data_size(header: fits.Header) -> int:
    """Bytes of the data section after ``header``, padded to whole blocks (FITS 4.0 §4.4.1)."""
    try:
        naxis = int(_structural(header, "NAXIS", 0))
        bitpix = int(_structural(header, "BITPIX"))
        axes = [int(_structural(header, f"NAXIS{i}")) for i in range(1, naxis + 1)]
    except NotFitsError:
        raise
    except (KeyError, ValueError, TypeError) as error:
        raise NotFitsError(f"header lacks a valid BITPIX/NAXIS: {error}") from None
    if naxis == 0:
        return 0
    if naxis < 0 or any(axis < 0 for axis in axes) or bitpix not in (8, 16, 32, 64, -32, -64):
        raise NotFitsError(f"header has an invalid BITPIX={bitpix} or NAXIS ({naxis} axes: {axes})")
    groups = bool(_structural(header, "GROUPS")) and axes and axes[0] == 0
    elements = math.prod(axes[1:] if groups else axes)
    try:
        gcount, pcount = int(_structural(header, "GCOUNT", 1)), int(_structural(header, "PCOUNT", 0))
    except NotFitsError:
        raise
    except (ValueError, TypeError) as error:
        raise NotFitsError(f"header has an invalid GCOUNT or PCOUNT: {error}") from None
    if gcount < 0 or pcount < 0:
        raise NotFitsError(f"header has a negative GCOUNT ({gcount}) or PCOUNT ({pcount})")
    size = abs(bitpix) // 8 * gcount * (pcount + elements)
    return -(-size // BLOCK) * BLOCK


def is_compressed_image(header: fits.Header) -> bool:
    table = str(_structural(header, "XTENSION", "")).strip() == "BINTABLE"
    return table and _structural(header, "ZIMAGE", False) is True


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
    primary = header
    naxis_value = _structural(header, "NAXIS", 0)
    try:
        primary_naxis = int(naxis_value)
    except (TypeError, ValueError):
        raise NotFitsError(f"the primary header's NAXIS is not a number: {naxis_value!r}") from None
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
    return HeaderRead(header, index, compressed, window.reads, window.bytes_read, start, primary if index else None)


_STRUCTURE = re.compile(r"(SIMPLE|EXTEND|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|GROUPS|CHECKSUM|DATASUM|COMMENT|HISTORY)?")


def with_primary_keywords(read: HeaderRead) -> fits.Header:
    """The header read, followed by the primary's keywords it lacks (not its structure
    or commentary): many multi-extension files keep the observation's keywords in the
    primary (FITS's INHERIT convention). The image's own cards win."""
    if read.primary is None:
        return read.header
    own = set(read.header.keys())
    inherited = [card for card in read.primary.cards
                 if card.keyword not in own and not _STRUCTURE.fullmatch(card.keyword)]
    return fits.Header([*read.header.cards, *inherited]) if inherited else read.header


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
    cards = []  # built as a list: Header.append re-indexes every card, quadratic on a long header
    for card in compressed.cards:
        keyword = card.keyword
        if keyword == "EXTNAME" and str(_card_value(card)).strip() == "COMPRESSED_IMAGE":
            continue
        if keyword in ("COMMENT", "HISTORY", ""):
            cards.append(card)
            continue
        new_keyword = _restored_keyword(keyword)
        if new_keyword is None:
            continue
        if new_keyword == keyword:
            cards.append(card)
        else:
            try:
                cards.append(fits.Card(new_keyword, card.value, card.comment))
            except (VerifyError, ValueError) as error:
                raise NotFitsError(f"the compressed image's {keyword} card cannot be read: {error}") from None
    return fits.Header(cards)


# --- rendering ---------------------------------------------------------------------------

LIST_KEYWORDS = ("COMMENT", "HISTORY")
JsonValue = bool | int | float | str | None


def _card_value(card: fits.Card):
    """The card's value; the raw text of its value field if astropy cannot parse it."""
    try:
        return card.value
    except (VerifyError, ValueError):
        return card.image[10:].strip() if card.image[8:10] == "= " else card.image[8:].strip()


def header_value(header: fits.Header, keyword: str):
    """The first ``keyword`` card's value, the raw text of its value field if astropy
    cannot parse it, or None if there is no such card."""
    try:
        card = header.cards[keyword]
    except (KeyError, IndexError, VerifyError, ValueError):  # absent, or a keyword astropy will not look up
        return None
    return _card_value(card)


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
    does; blank-keyword cards are left out; a card astropy cannot parse gives the raw
    text of its value field as a string. :func:`header_cards` loses nothing.
    """
    result: dict[str, JsonValue | list[str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # non-standard cards: rendered as they are
        for card in header.cards:
            keyword = card.keyword
            if keyword in LIST_KEYWORDS:
                result.setdefault(keyword, []).append(str(_card_value(card)))
            elif keyword and keyword not in result:
                result[keyword] = _json_value(_card_value(card))
    return result


def header_cards(header: fits.Header) -> list[str]:
    """The header's 80-character cards, CONTINUE cards included, without END."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # VerifyWarning among them
        text = header.tostring(sep="", endcard=False, padding=False)
    return [text[start : start + CARD] for start in range(0, len(text), CARD)]


# --- compression -------------------------------------------------------------------------
#
# Every image HDU (the primary's included) is compressed as fpack compresses it: RICE_1,
# tiles of one row, the *stored* integers compressed as they are, so BLANK, BSCALE and
# BZERO (unsigned types among them) keep their meaning, and every card of the image's
# header carried into the table's, renamed where fpack renames it. Every other HDU
# (tables, heaps and zero-width columns included) is carried over byte for byte, never
# parsed by astropy. What cannot be compressed losslessly is refused with the reason:
# floating-point pixels (RICE_1 would quantise them), 64-bit integers (fpack refuses
# them too) and random groups.
#
# Tiles are written by one of two codecs. The fast one calls astropy's *private* RICE_1
# functions row by row on every core (module ``_PRIVATE_CODEC``). It is used only while
# it exists and writes exactly what the public CompImageHDU writes (:func:`fast_codec`
# checks once per process); otherwise everything goes through CompImageHDU, the public
# API, slower but the same bytes (bench/RESULTS.md gives both against fpack).


@dataclass
class Compressed:
    data: bytes
    images: int  # image HDUs compressed
    # The tiles as written, each already decoded and compared with its row when it was
    # made (the one-row RICE_1 path); verify_compressed then checks the file holds them.
    checked_tiles: list[bytes] | None = None
    codec: str = "public"  # "fast": astropy's private codec, row by row; "public": CompImageHDU


@dataclass(frozen=True)
class RiceCodec:
    compress: Callable[[bytes, int, int], bytes]  # (pixels, blocksize, bytepix) -> tile
    decompress: Callable[[bytes, int, int, int], bytes]  # (tile, blocksize, bytepix, pixels) -> pixels


@dataclass(frozen=True, eq=False)
class _HDU:
    index: int
    header: fits.Header
    start: int  # where its header starts
    data_start: int
    end: int  # past its data, padded to a block


RICE_BLOCKSIZE = 32
DEFAULT_EXTNAME = "COMPRESSED_IMAGE"  # the compressed table's name when the image has none
_PRIVATE_CODEC = "astropy.io.fits.hdu.compressed._compression"
_FAST_BITPIX = (16, 32)  # 16- and 32-bit stored integers, one row per tile: the POCS frames
_STORED_TYPES = {8: ">u1", 16: ">i2", 32: ">i4"}  # what RICE_1 compresses losslessly
_TO_COMPRESSED = {image: table for table, image in _RENAMED.items()}
_TILE_BATCHES_PER_THREAD = 8
_EMPTY_PRIMARY = fits.Header([("SIMPLE", True, "file does conform to FITS standard"),
                              ("BITPIX", 8, "number of bits per data pixel"),
                              ("NAXIS", 0, "number of data axes"),
                              ("EXTEND", True, "FITS dataset may contain extensions")]).tostring(padding=True).encode()


def _is_image_structure(table_keyword: str) -> bool:
    """A compressed table's card that stands for one of the image's own (ZBITPIX, ZNAXISn, ...)."""
    return table_keyword in _RENAMED or (table_keyword.startswith("ZNAXIS") and table_keyword[6:].isdigit())


def _layout(data: bytes) -> list[_HDU]:
    """Every HDU's header and where it lies; :class:`NotFitsError` if the file is truncated."""
    window = _Window(lambda start, end: data[start:end], len(data))
    start, found = 0, []
    while True:
        header, data_start = _header_at(window, start, len(found))
        end = data_start + data_size(header)
        if end > len(data):
            raise NotFitsError(f"truncated FITS: HDU {len(found)} needs {end} bytes but the file has {len(data)}")
        found.append(_HDU(len(found), header, start, data_start, end))
        if end + BLOCK > len(data):
            return found
        start = end


def _is_compressible_image(hdu: _HDU) -> bool:
    """True for an image HDU with pixels (compressed), False for any other HDU (carried
    over as it is); :class:`UnsupportedFitsError` for an image that cannot be compressed
    losslessly."""
    header, index = hdu.header, hdu.index
    if index == 0:
        if _structural(header, "GROUPS", False) is True and _structural(header, "NAXIS1", None) == 0:
            raise UnsupportedFitsError("HDU 0 holds random groups, not an image; it is not compressed")
    elif str(_structural(header, "XTENSION", "")).strip() != "IMAGE":
        return False
    if hdu.end == hdu.data_start:
        return False  # no pixels: NAXIS = 0 or an axis of length 0
    bitpix = int(_structural(header, "BITPIX"))
    if bitpix < 0:
        raise UnsupportedFitsError(
            f"HDU {index} holds floating-point pixels; RICE_1 would quantise them (lossy), so it is not compressed"
        )
    if bitpix not in _STORED_TYPES:
        raise UnsupportedFitsError(
            f"HDU {index} holds {bitpix}-bit integer pixels; RICE_1 (fpack's default) takes at most 32-bit "
            "integers, so it is not compressed"
        )
    pcount, gcount = _structural(header, "PCOUNT", 0), _structural(header, "GCOUNT", 1)
    if (pcount, gcount) != (0, 1):
        raise UnsupportedFitsError(f"HDU {index} is an image with PCOUNT={pcount} GCOUNT={gcount}, not a plain "
                                   "image; it is not compressed")
    return True


def _stored_pixels(data: bytes, hdu: _HDU) -> np.ndarray:
    """The image's stored integers (before BSCALE/BZERO), big-endian, without copying."""
    header = hdu.header
    shape = tuple(int(header[f"NAXIS{axis}"]) for axis in range(int(header["NAXIS"]), 0, -1))
    dtype = np.dtype(_STORED_TYPES[int(header["BITPIX"])])
    return np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=hdu.data_start).reshape(shape)


def _parallel(function, count: int) -> list:
    """``function(indices)`` over ``range(count)`` in batches on every core; results in order.

    astropy's tile codecs release the GIL, so threads are enough.
    """
    threads = max(1, min(os.cpu_count() or 1, 8))
    batches = [batch for batch in np.array_split(np.arange(count), threads * _TILE_BATCHES_PER_THREAD) if len(batch)]
    if threads == 1:
        return [item for batch in batches for item in function(batch)]
    with ThreadPoolExecutor(threads) as pool:
        return [item for part in pool.map(function, batches) for item in part]


def _compressed_header(table_cards: list[fits.Card], image: fits.Header) -> fits.Header:
    """fpack's binary-table header: the table's own cards, then the image's, renamed in
    place (SIMPLE -> ZSIMPLE, NAXISn -> ZNAXISn, ...). The image's EXTNAME, if it has one,
    names the table (as fpack does); otherwise the table is COMPRESSED_IMAGE."""
    cards = list(table_cards)  # a list: Header.append re-indexes every card, quadratic on a long header
    if "EXTNAME" not in image:
        cards.append(fits.Card("EXTNAME", DEFAULT_EXTNAME, ""))  # as fpack writes it
    for card in image.cards:
        keyword = card.keyword
        if keyword.startswith("NAXIS") and keyword[5:].isdigit():
            cards.append(fits.Card("Z" + keyword, card.value, card.comment))
        elif keyword in _TO_COMPRESSED:
            cards.append(fits.Card(_TO_COMPRESSED[keyword], card.value, card.comment))
        else:
            cards.append(card)
    return fits.Header(cards)


def _fast_table_cards(rows: int, columns: int, bytepix: int, longest: int, heap: int) -> list[fits.Card]:
    return [fits.Card(*card) for card in (
        ("XTENSION", "BINTABLE", "binary table extension"),
        ("BITPIX", 8, "8-bit bytes"),
        ("NAXIS", 2, "2-dimensional binary table"),
        ("NAXIS1", 8, "width of table in bytes"),
        ("NAXIS2", rows, "number of rows in table"),
        ("PCOUNT", heap, "size of special data area"),
        ("GCOUNT", 1, "one data group (required keyword)"),
        ("TFIELDS", 1, "number of fields in each row"),
        ("TTYPE1", "COMPRESSED_DATA", "label for field   1"),
        ("TFORM1", f"1PB({longest})", "data format of field: variable length array"),
        ("ZIMAGE", True, "extension contains compressed image"),
        ("ZTILE1", columns, "size of tiles to be compressed"),
        ("ZTILE2", 1, "size of tiles to be compressed"),
        ("ZCMPTYPE", "RICE_1", "compression algorithm"),
        ("ZNAME1", "BLOCKSIZE", "compression block size"),
        ("ZVAL1", RICE_BLOCKSIZE, "pixels per block"),
        ("ZNAME2", "BYTEPIX", "bytes per pixel (1, 2, 4, or 8)"),
        ("ZVAL2", bytepix, "bytes per pixel (1, 2, 4, or 8)"),
    )]


def _compress_rows(image: fits.Header, pixels: np.ndarray, codec: RiceCodec) -> tuple[bytes, list[bytes]]:
    """A 2-D image as fpack's compressed-table HDU, one RICE_1 tile per row by the fast
    codec on every core; returns the HDU's bytes and its tiles.

    Each tile is decoded and compared with its row as soon as it is made, in the same
    worker: the round trip costs no extra pass over the frame.
    """
    rows, columns = pixels.shape
    bytepix = pixels.dtype.itemsize
    native = pixels.dtype.newbyteorder("=")

    def compress_batch(indices):
        block = pixels[indices[0] : indices[-1] + 1].astype(native)  # one byte swap per batch
        tiles = [codec.compress(values.tobytes(), RICE_BLOCKSIZE, bytepix) for values in block]
        decoded = b"".join(codec.decompress(tile, RICE_BLOCKSIZE, bytepix, columns) for tile in tiles)
        if decoded != block.tobytes():
            raise ValueError(f"image 0: rows {indices[0]} to {indices[-1]} do not decode to their pixels")
        return tiles

    tiles = _parallel(compress_batch, rows)
    sizes = np.fromiter((len(tile) for tile in tiles), dtype=np.int64, count=rows)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    descriptors = np.empty((rows, 2), dtype=">i4")
    descriptors[:, 0], descriptors[:, 1] = sizes, offsets
    heap_size = int(sizes.sum())
    table = _compressed_header(_fast_table_cards(rows, columns, bytepix, int(sizes.max()), heap_size), image)
    table_bytes = descriptors.tobytes()
    data = b"".join((
        table.tostring(padding=True).encode("ascii"),
        table_bytes,
        *tiles,  # the heap, joined once straight into the file
        b"\0" * (-(len(table_bytes) + heap_size) % BLOCK),
    ))
    return data, tiles


def _compress_public(image: fits.Header, pixels: np.ndarray) -> bytes:
    """An image of any shape as fpack's compressed-table HDU, the tiles written by
    astropy's public CompImageHDU (one row each), the header as :func:`_compress_rows`
    writes it."""
    tiles = fits.CompImageHDU(data=pixels.astype(pixels.dtype.newbyteorder("=")), compression_type="RICE_1",
                              tile_shape=(1,) * (pixels.ndim - 1) + (pixels.shape[-1],))
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), tiles]).writeto(buffer)
    written = buffer.getvalue()
    table = _layout(written)[1]
    comments = {card.keyword: card.comment for card in _fast_table_cards(0, 0, 0, 0, 0)}  # fpack's words
    own_cards = [fits.Card(card.keyword, card.value, comments.get(card.keyword, card.comment))
                 for card in table.header.cards if not _is_image_structure(card.keyword) and card.keyword != "EXTNAME"]
    header = _compressed_header(own_cards, image)
    return header.tostring(padding=True).encode("ascii") + written[table.data_start : table.end]


def _codec_sample() -> np.ndarray:
    """Rows that exercise RICE_1's block kinds: constant, small differences, the full range."""
    count = 3 * 97
    ramp = np.arange(count, dtype=np.int64)
    values = np.where(ramp < 97, 1000, np.where(ramp < 194, ramp % 7, ramp * 7919 % 65536 - 32768))
    return values.astype(">i2").reshape(3, 97)


@functools.cache
def fast_codec() -> RiceCodec | None:
    """astropy's private RICE_1 functions, if they exist and still write, tile for tile,
    what the public CompImageHDU writes; None otherwise, and everything is compressed
    through CompImageHDU. Checked once per process, on first use."""
    try:
        module = importlib.import_module(_PRIVATE_CODEC)
        codec = RiceCodec(module.compress_rice_1_c, module.decompress_rice_1_c)
        sample = _codec_sample()
        header = fits.Header([("SIMPLE", True), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", sample.shape[1]),
                              ("NAXIS2", sample.shape[0])])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast, _ = _compress_rows(header, sample, codec)
            public = _compress_public(header, sample)
        if fast != public:
            raise ValueError("its tiles are not the ones CompImageHDU writes")
    except Exception as error:  # missing, renamed, a new signature, other bytes: any of them
        log.warning("fits: astropy's private RICE_1 codec is missing or changed; compressing through "
                    f"CompImageHDU (slower) instead: {type(error).__name__}: {error}", module=_PRIVATE_CODEC)
        return None
    return codec


def _is_fast_case(hdus: list[_HDU]) -> bool:
    header = hdus[0].header
    return len(hdus) == 1 and int(header.get("NAXIS", 0)) == 2 and int(header["BITPIX"]) in _FAST_BITPIX


def compress(data: bytes) -> Compressed:
    """fpack's defaults: every image HDU RICE_1-compressed in one-row tiles, others copied.

    The common case (one 2-D 16- or 32-bit image, as every POCS frame) is compressed tile
    by tile straight from the stored bytes on every core; any other image, or every
    image if astropy's private codec is missing or changed, goes through CompImageHDU.
    :class:`NotFitsError` or :class:`UnsupportedFitsError` say why a file is refused.
    """
    hdus = _layout(data)
    images = [hdu.index for hdu in hdus if _is_compressible_image(hdu)]
    if not images:
        raise UnsupportedFitsError("the file holds no image to compress")
    codec = fast_codec()
    if codec and _is_fast_case(hdus):
        table, tiles = _compress_rows(hdus[0].header, _stored_pixels(data, hdus[0]), codec)
        return Compressed(_EMPTY_PRIMARY + table, 1, tiles, "fast")
    pieces = [_EMPTY_PRIMARY] if 0 in images else []  # else the primary is carried as it is
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        for hdu in hdus:
            if hdu.index in images:
                try:
                    pieces.append(_compress_public(hdu.header, _stored_pixels(data, hdu)))
                except (ValueError, TypeError, VerifyError) as error:
                    raise UnsupportedFitsError(f"HDU {hdu.index}: astropy cannot compress it: {error}") from None
            else:
                pieces.append(data[hdu.start : hdu.end])
    return Compressed(b"".join(pieces), len(images))


# --- verification ------------------------------------------------------------------------

# Cards that say where an HDU sits or what its bytes sum to, not what the image is.
_NOT_COMPARED = {"CHECKSUM", "DATASUM", "SIMPLE", "XTENSION", "EXTEND", "PCOUNT", "GCOUNT"}


def _meaning(header: fits.Header) -> Counter:
    """The header's cards as FITS defines their equality: keyword and value, not bytes.

    String values and commentary text without trailing blanks (not significant in
    FITS); a blank-keyword card without text is layout, not content; an EXTNAME of
    COMPRESSED_IMAGE is the compressed table's name, not the image's.
    """
    cards: Counter = Counter()
    for card in header.cards:
        keyword, value = card.keyword, _card_value(card)
        if isinstance(value, str):
            value = value.rstrip()
        elif isinstance(value, float) and math.isnan(value):
            value = "NaN"
        layout = keyword in _NOT_COMPARED or (keyword == "" and not value)
        if layout or (keyword, value) == ("EXTNAME", DEFAULT_EXTNAME):
            continue
        cards[(keyword, value)] += 1
    return cards


def header_differences(before: fits.Header, after: fits.Header) -> list[tuple[str, object]]:
    """The cards of one header that the other lacks, as FITS compares them (see :func:`_meaning`)."""
    old, new = _meaning(before), _meaning(after)
    return sorted(((old - new) + (new - old)).elements(), key=str)


def _verify_rows(original: bytes, compressed: bytes, checked_tiles: list[bytes] | None) -> bool:
    """Find every tile through the compressed file's own header and descriptors, and
    decode it and compare it with the original row, or, for tiles already checked that
    way when they were made, compare the bytes. False if the file is not in the one-row
    RICE_1 layout or the fast codec is not there to decode it."""
    image_hdus = _layout(original)
    codec = fast_codec()
    if codec is None or not _is_fast_case(image_hdus):
        return False
    table = read_header_bytes(compressed, hdu=1, restore_compressed=False)
    header = table.header
    if header.get("ZCMPTYPE") != "RICE_1" or header.get("ZTILE2") != 1:
        return False
    pixels = _stored_pixels(original, image_hdus[0])
    rows, columns = pixels.shape
    if (header.get("ZNAXIS1"), header.get("ZNAXIS2"), header.get("ZTILE1")) != (columns, rows, columns):
        raise ValueError(f"compressed shape {header.get('ZNAXIS1')}x{header.get('ZNAXIS2')} is not {columns}x{rows}")
    table_start = table.offset + len(header.tostring(padding=True))
    descriptors = np.frombuffer(compressed, dtype=">i4", count=2 * rows, offset=table_start).reshape(rows, 2)
    heap_start = table_start + 8 * rows
    bytepix = pixels.dtype.itemsize
    native = pixels.dtype.newbyteorder("=")

    if checked_tiles is not None and len(checked_tiles) != rows:
        raise ValueError(f"{len(checked_tiles)} checked tiles for {rows} rows")

    def check_batch(indices):
        for row in indices:
            size, start = descriptors[row]
            tile = compressed[heap_start + start : heap_start + start + size]
            if checked_tiles is not None:
                if tile != checked_tiles[row]:
                    return [row]
                continue
            decoded = _decoded_row(codec, tile, RICE_BLOCKSIZE, bytepix, columns)
            if decoded is None or not np.array_equal(np.frombuffer(decoded, dtype=native), pixels[row]):
                return [row]
        return []

    bad = _parallel(check_batch, rows)
    if bad:
        raise ValueError(f"image 0: pixels differ after decompression (row {bad[0]})")
    lost = header_differences(image_hdus[0].header, image_header(header))
    if lost:
        raise ValueError(f"image 0: header keywords differ after decompression: {lost[:5]}")
    return True


def _verify_image(number: int, original: np.ndarray, header: fits.Header, compressed_hdu: bytes) -> None:
    """One compressed HDU against the original's stored integers (decompressed by
    astropy's public API, the HDU on its own) and header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        try:
            opened = fits.open(io.BytesIO(_EMPTY_PRIMARY + compressed_hdu), memmap=False,
                               do_not_scale_image_data=True)
            restored = opened[1]
            pixels = restored.data if isinstance(restored, fits.CompImageHDU) else None
        except Exception as error:  # astropy raises many types on a damaged table or tile
            raise ValueError(f"image {number}: astropy cannot decompress it: {type(error).__name__}: {error}") from None
        with opened:
            if pixels is None:
                raise ValueError(f"image {number} was not written as a compressed image")
            if pixels.shape != original.shape or (pixels.dtype.kind, pixels.dtype.itemsize) != (
                    original.dtype.kind, original.dtype.itemsize):
                raise ValueError(f"image {number}: shape or type changed ({original.shape} {original.dtype} -> "
                                 f"{pixels.shape} {pixels.dtype})")
            if not np.array_equal(pixels, original):
                raise ValueError(f"image {number}: pixels differ after decompression")
    # The header as funpack restores it (astropy's own restoring drops a BZERO of 0).
    lost = header_differences(header, image_header(_layout(_EMPTY_PRIMARY + compressed_hdu)[1].header))
    if lost:
        raise ValueError(f"image {number}: header keywords differ after decompression: {lost[:5]}")


def _decoded_row(codec: RiceCodec, tile: bytes, blocksize: int, bytepix: int, columns: int) -> bytes | None:
    """One row tile decoded by the fast codec, or None if it is damaged or the wrong length."""
    try:
        decoded = codec.decompress(tile, blocksize, bytepix, columns)
    except Exception:  # astropy's codec raises its own CfitsioException on a damaged tile
        return None
    return decoded if len(decoded) == columns * bytepix else None


def verify_compressed(original: bytes, compressed: bytes | Compressed) -> None:
    """Raise unless ``compressed`` holds exactly the original: every image's stored
    integers and header cards (as FITS compares them) decompressed again, every other
    HDU's bytes unchanged.

    Given the :class:`Compressed` that :func:`compress` returned, tiles it already
    round-tripped are checked by their bytes in the file rather than decoded again.
    """
    checked_tiles = compressed.checked_tiles if isinstance(compressed, Compressed) else None
    compressed = compressed.data if isinstance(compressed, Compressed) else compressed
    try:
        if _verify_rows(original, compressed, checked_tiles):
            return
        before, after = _layout(original), _layout(compressed)
    except NotFitsError as error:
        raise ValueError(f"the compressed file is not readable FITS: {error}") from None
    images = [hdu.index for hdu in before if _is_compressible_image(hdu)]
    shift = 1 if 0 in images else 0  # a primary image moves to HDU 1, behind an empty primary
    if len(after) != len(before) + shift:
        raise ValueError(f"{len(before)} HDUs in the original but {len(after)} compressed (expected "
                         f"{len(before) + shift})")
    for hdu in before:
        written = after[hdu.index + shift]
        if hdu.index in images:
            _verify_image(images.index(hdu.index), _stored_pixels(original, hdu), hdu.header,
                          compressed[written.start : written.end])
        elif compressed[written.start : written.end] != original[hdu.start : hdu.end]:
            raise ValueError(f"HDU {hdu.index} changed when carried over")


# --- reading an image ---------------------------------------------------------------------


def read_image(data: bytes) -> tuple[fits.Header, np.ndarray] | None:
    """The first two-dimensional image of a FITS file: its header and its pixels as
    astropy's ``hdu.data`` gives them (BSCALE/BZERO applied); None if the file holds no
    such image. astropy raises what it raises for a damaged file.

    A ``.fits.fz`` in fpack's default layout (what :func:`compress` writes: RICE_1, one
    row a tile) is decoded here with the fast codec, tiles on every core; astropy decodes
    it tile by tile through Python, several times slower (40 ms for the demo's 560-row
    cut-out, most of plate-solve's reading). Anything else, or anything the fast path
    doubts, is read by astropy: the fast path never judges a file.
    """
    fast = _read_row_tiles(data)
    if fast is not None:
        return fast
    with fits.open(io.BytesIO(data), memmap=False) as hdus:
        for hdu in hdus:
            if hdu.is_image and hdu.header.get("NAXIS") == 2:
                return hdu.header.copy(), np.asarray(hdu.data)
    return None


_ONE_ROW_TFORM = re.compile(r"1PB(\(\d+\))?")


def _read_row_tiles(data: bytes) -> tuple[fits.Header, np.ndarray] | None:
    """The image of an empty primary and one one-row RICE_1 compressed image, as
    :func:`read_image` returns it; None for any other file, or any doubt."""
    codec = fast_codec()
    if codec is None:
        return None
    try:
        hdus = _layout(data)
        if len(hdus) != 2 or int(_structural(hdus[0].header, "NAXIS", 0)) != 0 or not is_compressed_image(hdus[1].header):
            return None
        table = hdus[1].header
        rows, columns, bitpix = (int(table.get(keyword, 0)) for keyword in ("ZNAXIS2", "ZNAXIS1", "ZBITPIX"))
        options = {str(table.get(f"ZNAME{n}", "")).strip().upper(): table.get(f"ZVAL{n}")
                   for n in range(1, 10) if f"ZNAME{n}" in table}
        bytepix, blocksize = bitpix // 8, int(options.get("BLOCKSIZE", RICE_BLOCKSIZE))
        image = image_header(table)
        scaling = (image.get("BSCALE", 1), image.get("BZERO", 0))
        unsigned = scaling == (1, 2 ** (bitpix - 1))
        if not (str(table.get("ZCMPTYPE", "")).strip() == "RICE_1" and int(table.get("ZNAXIS", 0)) == 2
                and bitpix in _FAST_BITPIX and rows > 0 and columns > 0
                and (table.get("ZTILE1"), table.get("ZTILE2")) == (columns, 1)
                and int(options.get("BYTEPIX", bytepix)) == bytepix
                and (table.get("TFIELDS"), table.get("NAXIS1"), table.get("NAXIS2")) == (1, 8, rows)
                and _ONE_ROW_TFORM.fullmatch(str(table.get("TFORM1", "")).strip())
                and table.get("THEAP", 8 * rows) == 8 * rows
                and not {"ZBLANK", "ZQUANTIZ", "ZSCALE", "ZZERO"} & set(table.keys()) and "BLANK" not in image
                and (scaling == (1, 0) or unsigned)):
            return None
    except (NotFitsError, VerifyError, ValueError, TypeError):
        return None
    table_start = hdus[1].data_start
    descriptors = np.frombuffer(data, dtype=">i4", count=2 * rows, offset=table_start).reshape(rows, 2).astype(np.int64)
    heap_start, heap_size = table_start + 8 * rows, int(table.get("PCOUNT", 0))
    if (descriptors < 0).any() or (descriptors.sum(axis=1) > heap_size).any():
        return None
    native = np.dtype(_STORED_TYPES[bitpix]).newbyteorder("=")
    pixels = np.empty((rows, columns), native)

    def decode_batch(indices):
        for row in indices:
            size, start = descriptors[row]
            tile = data[heap_start + start : heap_start + start + size]
            decoded = _decoded_row(codec, tile, blocksize, bytepix, columns)
            if decoded is None:
                return [row]
            pixels[row] = np.frombuffer(decoded, dtype=native)
        return []

    if _parallel(decode_batch, rows):
        return None  # a damaged tile: astropy reads the file and says what is wrong
    if unsigned:  # stored - 2**(bits-1), as astropy's uint view gives it: flip the sign bit
        pixels = pixels.view(f"u{bytepix}") ^ np.array(1 << (bitpix - 1), f"u{bytepix}")
    return image, pixels


class PrimaryHeader:
    """The primary header astropy writes for 2-D ``dtype`` data under ``header``, made
    before the data's shape is known (the data keywords NAXISn, BZERO and BSCALE in their
    usual places), then rendered for a shape in a fraction of the time."""

    def __init__(self, header: fits.Header, dtype: np.dtype | type):
        # A zero-stride stand-in gives astropy the type without any pixels.
        stand_in = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=(1, 1), strides=(0, 0))
        self._header = fits.PrimaryHDU(data=stand_in, header=header).header

    def rendered(self, shape: tuple[int, int]) -> bytes:
        self._header["NAXIS1"], self._header["NAXIS2"] = shape[1], shape[0]
        return self._header.tostring().encode("ascii")


def primary_header_bytes(header: fits.Header, shape: tuple[int, int], dtype: np.dtype | type) -> bytes:
    """The primary header astropy writes for an array of ``shape`` and ``dtype`` under ``header``."""
    return PrimaryHeader(header, dtype).rendered(shape)


def primary_image(pixels: np.ndarray, header: fits.Header | bytes) -> np.ndarray:
    """A primary HDU of unsigned 8- or 16-bit ``pixels`` (2-D, any strides), byte for byte
    what astropy writes, made in one pass over the pixels into one buffer.

    Returned as a 1-D uint8 array: a bytes-like object that file writes, hashlib and
    google-crc32c take as it is (``bytes(...)`` where bytes are needed). astropy
    converts, byte-swaps and copies 16-bit data on its way out; here each pixel is offset
    by ``BZERO=32768`` (an XOR of the sign bit) straight into big-endian order, holding no
    GIL, so threads can encode planes side by side. ``header`` may come already rendered
    by :func:`primary_header_bytes`.
    """
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a 2-D uint8 or uint16 array, not {pixels.ndim}-D {pixels.dtype}")
    text = header if isinstance(header, bytes) else primary_header_bytes(header, pixels.shape, pixels.dtype)
    start, size = len(text), pixels.size * pixels.itemsize
    output = np.empty(start + -(-size // BLOCK) * BLOCK, np.uint8)
    output[:start] = np.frombuffer(text, np.uint8)
    output[start + size:] = 0  # the data padded to a whole block
    stored = output[start : start + size].view(f">u{pixels.itemsize}").reshape(pixels.shape)
    if pixels.dtype == np.uint16:
        np.bitwise_xor(pixels, np.uint16(0x8000), out=stored)  # pixels - 32768, as a big-endian int16
    else:
        stored[...] = pixels  # BITPIX 8 is unsigned already
    return output
