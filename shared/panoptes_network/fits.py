"""FITS headers read with range requests, and lossless compression as fpack does it.

Reading: FITS is a sequence of 2880-byte blocks; a header is 80-byte cards up to an
``END`` card, padded to a block, followed by its data, also padded. :func:`read_header`
fetches the first 8 blocks in one read (most headers fit), then doubles the request
until the wanted header's ``END`` is in hand; it skips data sections by arithmetic,
never by reading them. Cards are parsed by astropy.

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
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from astropy.io import fits
from astropy.io.fits.hdu.compressed._compression import compress_rice_1_c, decompress_rice_1_c
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


@dataclass
class HeaderRead:
    header: fits.Header
    hdu_index: int
    compressed: bool
    reads: int
    bytes_read: int
    offset: int  # where the header starts in the file


class _Window:
    """A growing window on the file, fetched with as few range reads as possible."""

    def __init__(self, read_range: RangeReader, first_read: int):
        self.read_range = read_range
        self.next_size = first_read
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
            size = max(self.next_size, end - have)
            chunk = self.read_range(have, have + size)
            self.reads += 1
            self.bytes_read += len(chunk)
            self.next_size *= 2
            self.data += chunk
            if len(chunk) < size:
                self.eof_at = have + len(chunk)
                end = min(end, self.eof_at)
        return self.data[start - self.offset : end - self.offset]


def _header_at(window: _Window, start: int, primary: bool) -> tuple[fits.Header, int]:
    """Parse the header starting at ``start``; return it and where its data begins."""
    first = window.get(start, start + BLOCK)
    if len(first) < BLOCK:
        if start == 0:
            raise NotFitsError(f"too short to be FITS ({len(first)} bytes; a FITS file is at least {BLOCK})")
        raise NotFitsError(f"no HDU at byte {start}: the file ends there")
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
    groups = bool(header.get("GROUPS")) and axes and axes[0] == 0
    elements = math.prod(axes[1:] if groups else axes)
    size = abs(bitpix) // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + elements)
    return -(-size // BLOCK) * BLOCK


def is_compressed_image(header: fits.Header) -> bool:
    return header.get("XTENSION", "").strip() == "BINTABLE" and bool(header.get("ZIMAGE", False))


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
    header, data_start = _header_at(window, 0, primary=True)
    want = hdu if hdu is not None else (0 if int(header.get("NAXIS", 0)) > 0 else None)
    while want is None or index < want:
        next_start = data_start + data_size(header)
        if want is None:
            # The primary has no data: the image, if any, is in the first extension.
            if window.get(next_start, next_start + BLOCK) == b"":
                want = 0
                break
            want = 1
        start, index = next_start, index + 1
        header, data_start = _header_at(window, start, primary=False)
    compressed = is_compressed_image(header)
    if compressed and restore_compressed:
        header = image_header(header)
    return HeaderRead(header, index, compressed, window.reads, window.bytes_read, start)


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


# --- compression -------------------------------------------------------------------------


@dataclass
class Compressed:
    data: bytes
    images: int  # image HDUs compressed


RICE_BLOCKSIZE = 32
_FAST_BITPIX = (16, 32)  # signed integer pixels, one row per tile: the POCS frames
_TO_COMPRESSED = {image: table for table, image in _RENAMED.items()}
_TILE_BATCHES_PER_THREAD = 8


def _open(data: bytes) -> fits.HDUList:
    try:
        return fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError, IndexError) as error:
        raise NotFitsError(f"not a readable FITS file: {error}") from None


def _check_losslessly_compressible(index: int, header: fits.Header) -> None:
    bitpix = header["BITPIX"]
    if bitpix < 0:
        raise UnsupportedFitsError(
            f"HDU {index} holds floating-point pixels; RICE_1 would quantise them (lossy), so it is not compressed"
        )
    bscale, bzero = header.get("BSCALE", 1), header.get("BZERO", 0)
    if bscale != 1 or bzero not in (0, 2 ** (bitpix - 1)):
        raise UnsupportedFitsError(
            f"HDU {index} has BSCALE={bscale} BZERO={bzero}; only unscaled or unsigned integer images are compressed"
        )


def _hdus(data: bytes) -> list[tuple[fits.Header, int]]:
    """Every HDU's header and data offset; :class:`NotFitsError` if the file is truncated."""
    window = _Window(lambda start, end: data[start:end], len(data))
    header, data_start = _header_at(window, 0, primary=True)
    found = [(header, data_start)]
    while True:
        end = data_start + data_size(header)
        if end > len(data):
            raise NotFitsError(
                f"truncated FITS: HDU {len(found) - 1} needs {end} bytes but the file has {len(data)}"
            )
        if end + BLOCK > len(data):
            return found
        header, data_start = _header_at(window, end, primary=False)
        found.append((header, data_start))


def check_structure(data: bytes) -> int:
    """Walk every HDU's header and data extent (headers only: cheap); return the HDU count."""
    return len(_hdus(data))


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


def _pixels(data: bytes, header: fits.Header, offset: int) -> np.ndarray:
    """The stored (unscaled, big-endian) pixels of a 2-D image, without copying."""
    rows, columns = int(header["NAXIS2"]), int(header["NAXIS1"])
    dtype = f">i{int(header['BITPIX']) // 8}"
    return np.frombuffer(data, dtype=dtype, count=rows * columns, offset=offset).reshape(rows, columns)


def _is_fast_case(hdus: list[tuple[fits.Header, int]]) -> bool:
    header = hdus[0][0]
    return len(hdus) == 1 and int(header.get("NAXIS", 0)) == 2 and int(header["BITPIX"]) in _FAST_BITPIX


def _table_header(image: fits.Header, rows: int, columns: int, bytepix: int, longest: int, heap: int) -> fits.Header:
    """fpack's binary-table header: the table's keywords, then the image's, renamed in place."""
    header = fits.Header()
    for keyword, value, comment in (
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
        ("EXTNAME", "COMPRESSED_IMAGE", ""),
    ):
        header.append(fits.Card(keyword, value, comment), bottom=True)
    for card in image.cards:
        keyword = card.keyword
        if keyword.startswith("NAXIS") and keyword[5:].isdigit():
            header.append(fits.Card("Z" + keyword, card.value, card.comment), bottom=True)
        elif keyword in _TO_COMPRESSED:
            header.append(fits.Card(_TO_COMPRESSED[keyword], card.value, card.comment), bottom=True)
        else:
            header.append(card, bottom=True)
    return header


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def _compress_rows(image: fits.Header, pixels: np.ndarray) -> bytes:
    """One RICE_1 tile per row, on every core, assembled as fpack lays them out."""
    rows, columns = pixels.shape
    bytepix = pixels.dtype.itemsize
    native = pixels.dtype.newbyteorder("=")

    def compress_batch(indices):
        return [compress_rice_1_c(pixels[row].astype(native).tobytes(), RICE_BLOCKSIZE, bytepix) for row in indices]

    tiles = _parallel(compress_batch, rows)
    sizes = np.fromiter((len(tile) for tile in tiles), dtype=np.int64, count=rows)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    descriptors = np.empty((rows, 2), dtype=">i4")
    descriptors[:, 0], descriptors[:, 1] = sizes, offsets
    heap = b"".join(tiles)
    table = _table_header(image, rows, columns, bytepix, int(sizes.max()), len(heap))
    primary = fits.Header([("SIMPLE", True, "file does conform to FITS standard"),
                           ("BITPIX", 8, "number of bits per data pixel"),
                           ("NAXIS", 0, "number of data axes"),
                           ("EXTEND", True, "FITS dataset may contain extensions")])
    return b"".join((
        primary.tostring(padding=True).encode("ascii"),
        table.tostring(padding=True).encode("ascii"),
        _padded(descriptors.tobytes() + heap),
    ))


def compress(data: bytes) -> Compressed:
    """fpack's defaults: every image HDU RICE_1-compressed in one-row tiles, others copied.

    The common case (one 2-D integer image, as every POCS frame) is compressed tile by
    tile straight from the stored bytes on every core; anything else goes through
    astropy's CompImageHDU.
    """
    hdus = _hdus(data)
    for index, (header, _) in enumerate(hdus):
        if int(header.get("NAXIS", 0)) > 0 and (index == 0 or header.get("XTENSION", "").strip() == "IMAGE"):
            _check_losslessly_compressible(index, header)
    if _is_fast_case(hdus):
        header, offset = hdus[0]
        return Compressed(_compress_rows(header, _pixels(data, header, offset)), 1)
    with _open(data) as opened:
        if opened[0].header.get("NAXIS", 0) == 0 and len(opened) == 1:
            raise UnsupportedFitsError("the file holds no image to compress")
        output = [fits.PrimaryHDU()]
        images = 0
        for index, hdu in enumerate(opened):
            if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)) and hdu.header.get("NAXIS", 0) > 0:
                output.append(fits.CompImageHDU(data=hdu.data, header=hdu.header.copy(), compression_type="RICE_1"))
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


def _verify_rows(original: bytes, compressed: bytes) -> bool:
    """Decode every tile from the compressed file's own descriptors and heap and compare
    it with the original row. False if the file is not in the one-row RICE_1 layout."""
    image_hdus = _hdus(original)
    if not _is_fast_case(image_hdus):
        return False
    table = read_header_bytes(compressed, hdu=1, restore_compressed=False)
    header = table.header
    if header.get("ZCMPTYPE") != "RICE_1" or header.get("ZTILE2") != 1:
        return False
    image, offset = image_hdus[0]
    pixels = _pixels(original, image, offset)
    rows, columns = pixels.shape
    if (header.get("ZNAXIS1"), header.get("ZNAXIS2"), header.get("ZTILE1")) != (columns, rows, columns):
        raise ValueError(f"compressed shape {header.get('ZNAXIS1')}x{header.get('ZNAXIS2')} is not {columns}x{rows}")
    table_start = table.offset + len(header.tostring(padding=True))
    descriptors = np.frombuffer(compressed, dtype=">i4", count=2 * rows, offset=table_start).reshape(rows, 2)
    heap_start = table_start + 8 * rows
    bytepix = pixels.dtype.itemsize
    native = pixels.dtype.newbyteorder("=")

    def check_batch(indices):
        for row in indices:
            size, start = descriptors[row]
            tile = compressed[heap_start + start : heap_start + start + size]
            decoded = np.frombuffer(decompress_rice_1_c(tile, RICE_BLOCKSIZE, bytepix, columns), dtype=native)
            if not np.array_equal(decoded, pixels[row]):
                return [row]
        return []

    bad = _parallel(check_batch, rows)
    if bad:
        raise ValueError(f"image 0: pixels differ after decompression (row {bad[0]})")
    lost = set(_keywords(image)) ^ set(_keywords(image_header(header)))
    if lost:
        raise ValueError(f"image 0: header keywords differ after decompression: {sorted(lost, key=str)[:5]}")
    return True


def verify_compressed(original: bytes, compressed: bytes) -> None:
    """Raise unless ``compressed`` decompresses to exactly the pixels and keywords of ``original``."""
    try:
        if _verify_rows(original, compressed):
            return
    except NotFitsError as error:
        raise ValueError(f"the compressed file is not readable FITS: {error}") from None
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
