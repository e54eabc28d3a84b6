"""fits.read_header reads only header bytes, in few range reads; header_as_json and
header_cards render what it read. On the real POCS frames and on headers made to
measure (one to forty blocks)."""

from __future__ import annotations

import io
import math
import subprocess

import numpy as np
import pytest
from astropy.io import fits as astropy_fits

from panoptes_network import fits
from tests.conftest import need_tool

BLOCK = fits.BLOCK
FRAMES = ["tiny.fits", "unsolved.fits", "pole.fits", "rotation.fits", "noheader.fits", "solved.fits.fz"]


class CountingReader:
    """A read_range over bytes that remembers every range asked for."""

    def __init__(self, data: bytes):
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int) -> bytes:
        self.ranges.append((start, end))
        return self.data[start:end]

    @property
    def furthest(self) -> int:
        return max(end for _, end in self.ranges)

    def touched(self, start: int, end: int) -> bool:
        return any(a < end and start < b for a, b in self.ranges)


def image_hdu_extent(data: bytes) -> tuple[int, int, int]:
    """(index, header start, data start) of the image HDU, as astropy finds it."""
    with astropy_fits.open(io.BytesIO(data)) as hdus:
        index = next(i for i, hdu in enumerate(hdus) if hdu.header.get("NAXIS", 0) > 0 or
                     isinstance(hdu, astropy_fits.CompImageHDU))
        info = hdus[index].fileinfo()
        return index, info["hdrLoc"], info["datLoc"]


def header_of_blocks(blocks: int) -> astropy_fits.Header:
    """A primary header that fills exactly ``blocks`` blocks (36 cards a block, END included)."""
    header = astropy_fits.PrimaryHDU(np.zeros((4, 4), dtype=np.int16)).header
    for number in range(36 * blocks - len(header) - 1):
        header.append(("COMMENT", f"padding card {number}"), bottom=True)
    return header


def frame_with_header_blocks(blocks: int, data_blocks: int = 40) -> bytes:
    image = np.arange(data_blocks * BLOCK // 2, dtype=np.int16).reshape(data_blocks, -1)
    header = header_of_blocks(blocks)
    buffer = io.BytesIO()
    astropy_fits.PrimaryHDU(image, header=header).writeto(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name", FRAMES)
def test_real_frame_header_takes_at_most_two_reads_and_reads_past_it_no_more_than_itself(pocs, name):
    data = (pocs / name).read_bytes()
    index, _, data_start = image_hdu_extent(data)
    reader = CountingReader(data)

    read = fits.read_header(reader)

    assert read.hdu_index == index
    assert read.reads == len(reader.ranges) <= 2
    assert read.bytes_read == sum(min(end, len(data)) - start for start, end in reader.ranges)
    # Past the header's end the reads hold at most the first 8-block window or the header again.
    assert reader.furthest <= max(fits.FIRST_READ_BLOCKS * BLOCK, 2 * data_start)
    assert read.bytes_read < len(data) / 2


def test_compressed_header_past_ten_blocks_costs_two_reads_and_not_the_tiles(pocs):
    data = (pocs / "solved.fits.fz").read_bytes()
    _, header_start, data_start = image_hdu_extent(data)
    assert (data_start - header_start) // BLOCK > 10, "the premise: this frame's compressed header is long"
    reader = CountingReader(data)

    read = fits.read_header(reader)

    assert read.compressed and read.reads == 2
    assert reader.furthest - data_start < data_start - header_start  # over-read smaller than the header
    assert not reader.touched(2 * data_start, len(data))  # the tiles beyond stay unread


@pytest.mark.parametrize("blocks", [1, 2, 3, 5, 7, 8, 9, 12, 16, 17, 40])
def test_reads_grow_by_doubling_from_eight_blocks(blocks):
    data = frame_with_header_blocks(blocks)
    reader = CountingReader(data)

    read = fits.read_header(reader)

    assert image_hdu_extent(data)[2] == blocks * BLOCK, "the premise: a header of exactly that many blocks"
    expected_reads = 1 if blocks <= 8 else 1 + math.ceil(math.log2(blocks / 8))
    assert read.reads == expected_reads
    assert fits.header_cards(read.header) == fits.header_cards(astropy_fits.getheader(io.BytesIO(data)))
    assert reader.furthest <= max(8 * BLOCK, 2 * blocks * BLOCK)


def test_headers_up_to_eight_blocks_behind_an_empty_primary_take_at_most_two_reads():
    for blocks in range(1, 9):
        table = astropy_fits.BinTableHDU.from_columns([astropy_fits.Column("x", "J", array=np.arange(3))])
        for number in range(36 * blocks - len(table.header) - 1):
            table.header.append(("COMMENT", f"padding {number}"), bottom=True)
        buffer = io.BytesIO()
        astropy_fits.HDUList([astropy_fits.PrimaryHDU(), table]).writeto(buffer)
        reader = CountingReader(buffer.getvalue())

        read = fits.read_header(reader, hdu=1)

        assert read.reads <= 2, f"{blocks}-block extension header took {read.reads} reads"
        assert read.header["TFIELDS"] == 1


def test_a_data_section_between_hdus_is_skipped_not_read():
    primary = astropy_fits.PrimaryHDU(np.zeros((1000, 1000), dtype=np.int16))  # 2 MB of data
    extension = astropy_fits.ImageHDU(np.ones((10, 10), dtype=np.int16), name="SMALL")
    buffer = io.BytesIO()
    astropy_fits.HDUList([primary, extension]).writeto(buffer)
    data = buffer.getvalue()
    with astropy_fits.open(io.BytesIO(data)) as hdus:
        primary_data, extension_header = hdus[0].fileinfo()["datLoc"], hdus[1].fileinfo()["hdrLoc"]
    reader = CountingReader(data)

    read = fits.read_header(reader, hdu=1)

    assert read.header["EXTNAME"] == "SMALL" and read.offset == extension_header
    assert not reader.touched(primary_data + fits.FIRST_READ_BLOCKS * BLOCK, extension_header)
    assert read.bytes_read <= 2 * fits.FIRST_READ_BLOCKS * BLOCK


def test_asking_for_an_hdu_past_the_last_says_how_many_there_are(pocs):
    data = (pocs / "tiny.fits").read_bytes()
    with pytest.raises(fits.NoSuchHDU) as raised:
        fits.read_header_bytes(data, hdu=3)
    assert raised.value.count == 1 and raised.value.wanted == 3
    assert "1 HDU" in str(raised.value)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "too short"),
        (b"hello world\n" * 400, "SIMPLE"),
        (b"SIMPLE  =                    T" + b" " * 50 + b"BITPIX  = 16" + b" " * 68, "too short"),
        ((b"SIMPLE  =                    T" + b" " * 50) * 36 * 3, "END"),
    ],
    ids=["empty", "text", "one-card", "no-end"],
)
def test_what_is_not_fits_is_refused_with_the_reason(data, reason):
    with pytest.raises(fits.NotFitsError, match=reason):
        fits.read_header_bytes(data)


def test_a_header_cut_short_is_refused(pocs):
    data = (pocs / "pole.fits").read_bytes()[: 3 * BLOCK]  # its header runs 6 blocks
    with pytest.raises(fits.NotFitsError, match="truncated"):
        fits.read_header_bytes(data)


def test_compressed_header_renders_exactly_as_funpack_restores_it(pocs, tmp_path):
    funpack = need_tool("funpack")
    restored_path = tmp_path / "solved.fits"
    subprocess.run([funpack, "-O", str(restored_path), str(pocs / "solved.fits.fz")], check=True)
    funpacked = astropy_fits.getheader(restored_path)

    read = fits.read_header_bytes((pocs / "solved.fits.fz").read_bytes())

    assert fits.header_as_json(read.header) == fits.header_as_json(funpacked)
    assert list(fits.header_as_json(read.header)) == list(fits.header_as_json(funpacked))  # same order
    assert fits.header_cards(read.header) == fits.header_cards(funpacked)


def test_plain_frame_cards_are_the_files_own_cards(pocs):
    data = (pocs / "tiny.fits").read_bytes()
    _, _, data_start = image_hdu_extent(data)
    raw = data[:data_start].decode("ascii")
    on_disk = [raw[i : i + 80] for i in range(0, len(raw), 80)]
    on_disk = on_disk[: on_disk.index("END" + " " * 77)]

    assert fits.header_cards(fits.read_header_bytes(data).header) == on_disk


def test_json_values_are_typed_and_lists_long_strings_and_hierarch_kept():
    header = astropy_fits.Header()
    header["EXPTIME"] = (120.4, "seconds")
    header["ISO"] = 100
    header["SOLVED"] = True
    header["FIELD"] = "KIC 8462852"
    header["NOVALUE"] = None
    header["LONGPATH"] = "/var/panoptes/images/fields/" + "x" * 150 + "/frame.cr2"
    header["HIERARCH PANOPTES CAMERA SERIAL"] = "14d3bd"
    header.add_comment("first comment")
    header.add_history("made by a test")
    header.add_comment("second comment")
    primary = astropy_fits.PrimaryHDU(np.zeros((2, 2), dtype=np.int16), header=header)
    buffer = io.BytesIO()
    primary.writeto(buffer)

    read = fits.read_header_bytes(buffer.getvalue())
    rendered = fits.header_as_json(read.header)
    cards = fits.header_cards(read.header)

    assert rendered["EXPTIME"] == 120.4 and isinstance(rendered["EXPTIME"], float)
    assert rendered["ISO"] == 100 and isinstance(rendered["ISO"], int)
    assert rendered["SOLVED"] is True and rendered["SIMPLE"] is True
    assert rendered["FIELD"] == "KIC 8462852"
    assert rendered["NOVALUE"] is None
    assert rendered["LONGPATH"] == header["LONGPATH"]  # joined from CONTINUE cards
    assert rendered["PANOPTES CAMERA SERIAL"] == "14d3bd"
    assert rendered["COMMENT"] == ["first comment", "second comment"]
    assert rendered["HISTORY"] == ["made by a test"]
    assert all(len(card) == 80 for card in cards)
    assert sum(card.startswith("CONTINUE") for card in cards) >= 2
    assert any(card.startswith("HIERARCH PANOPTES CAMERA SERIAL") for card in cards)


def test_an_unparsable_card_renders_as_its_raw_text_and_the_rest_as_usual(pocs):
    data = bytearray((pocs / "tiny.fits").read_bytes())
    exptime = data.index(b"EXPTIME =")
    data[exptime + 10 : exptime + 30] = b"   12O.4 seconds?   "  # a letter O where a zero should be

    rendered = fits.header_as_json(fits.read_header_bytes(bytes(data)).header)

    assert isinstance(rendered["EXPTIME"], str) and "12O.4" in rendered["EXPTIME"]
    assert rendered["ISO"] == 100 and rendered["NAXIS1"] == 200


def test_a_broken_structural_card_or_unprintable_byte_is_not_fits(pocs):
    data = (pocs / "tiny.fits").read_bytes()
    naxis = data.index(b"NAXIS   =")
    broken = data[: naxis + 10] + b"!" + data[naxis + 11 :]
    with pytest.raises(fits.NotFitsError, match="NAXIS"):
        fits.read_header_bytes(broken)
    unprintable = data[:200] + b"\x00" + data[201:]
    with pytest.raises(fits.NotFitsError, match="printable ASCII"):
        fits.read_header_bytes(unprintable)
