"""FITS headers by range reads, and compression checked against fpack/funpack themselves."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
from astropy.io import fits as astropy_fits

from panoptes_network import fits
from tests.conftest import need_tool

FRAMES = ["tiny.fits", "noheader.fits", "pole.fits", "rotation.fits", "unsolved.fits"]


class CountingReader:
    def __init__(self, data: bytes):
        self.data, self.calls = data, []

    def __call__(self, start: int, end: int) -> bytes:
        self.calls.append((start, end))
        return self.data[start:end]


@pytest.mark.parametrize("name", FRAMES)
def test_header_of_every_frame_matches_astropy_in_one_read(pocs, name):
    data = (pocs / name).read_bytes()
    reader = CountingReader(data)
    read = fits.read_header(reader)
    assert list(read.header.items()) == list(astropy_fits.getheader(pocs / name).items())
    assert read.hdu_index == 0 and not read.compressed
    assert read.reads == 1 and len(reader.calls) == 1
    header_end = data.index(b"END" + b" " * 77) + 80
    assert read.bytes_read <= max(fits.FIRST_READ_BLOCKS * fits.BLOCK, header_end)


def test_compressed_frame_header_is_what_funpack_restores(pocs, tmp_path):
    need_tool("funpack")
    restored = tmp_path / "solved.fits"
    subprocess.run(["funpack", "-O", str(restored), str(pocs / "solved.fits.fz")], check=True)
    reader = CountingReader((pocs / "solved.fits.fz").read_bytes())
    read = fits.read_header(reader)
    assert read.compressed and read.hdu_index == 1 and read.offset == fits.BLOCK
    expected = astropy_fits.getheader(restored)
    assert [(c.keyword, c.value) for c in read.header.cards] == [(c.keyword, c.value) for c in expected.cards]
    assert read.header["CRVAL1"] == pytest.approx(303.206422334)
    # The compressed header runs to 12 blocks with the primary: two reads, doubling.
    assert read.reads == 2
    data_start = fits.BLOCK + 11 * fits.BLOCK
    assert read.bytes_read < data_start + 16 * fits.BLOCK


def test_compressed_table_header_on_request(pocs):
    read = fits.read_header_bytes((pocs / "solved.fits.fz").read_bytes(), hdu=1, restore_compressed=False)
    assert read.header["XTENSION"] == "BINTABLE" and read.header["ZCMPTYPE"] == "RICE_1"
    primary = fits.read_header_bytes((pocs / "solved.fits.fz").read_bytes(), hdu=0)
    assert primary.header["NAXIS"] == 0


def test_an_hdu_after_data_is_reached_by_skipping_the_data(pocs):
    image = astropy_fits.getdata(pocs / "tiny.fits")
    buffer = io.BytesIO()
    astropy_fits.HDUList([astropy_fits.PrimaryHDU(image), astropy_fits.ImageHDU(image[:10], name="SMALL")]).writeto(buffer)
    reader = CountingReader(buffer.getvalue())
    read = fits.read_header(reader, hdu=1, first_read=fits.BLOCK)
    assert read.header["EXTNAME"] == "SMALL" and read.hdu_index == 1
    data_start = fits.BLOCK
    data_end = data_start + fits.data_size(astropy_fits.getheader(pocs / "tiny.fits")) - fits.BLOCK
    # Nothing inside the primary's data section was read.
    assert all(end <= data_start + fits.BLOCK or start >= data_end for start, end in reader.calls)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "too short"),
        (b"hello world\n" * 300, "does not start with SIMPLE"),
        (b"SIMPLE  =                    T" + b" " * 2850, "ends before the header's END"),
    ],
)
def test_not_fits_says_why(data, reason):
    with pytest.raises(fits.NotFitsError, match=reason):
        fits.read_header_bytes(data)


def test_asking_for_an_hdu_that_does_not_exist(pocs):
    with pytest.raises(fits.NotFitsError, match="no HDU"):
        fits.read_header_bytes((pocs / "tiny.fits").read_bytes(), hdu=1)


@pytest.mark.parametrize("name", FRAMES)
def test_compression_is_lossless_and_funpack_restores_the_pixels(pocs, name, tmp_path):
    need_tool("funpack")
    original = (pocs / name).read_bytes()
    compressed = fits.compress(original)
    fits.verify_compressed(original, compressed.data)
    ours = tmp_path / "ours.fits.fz"
    ours.write_bytes(compressed.data)
    restored = tmp_path / "restored.fits"
    subprocess.run(["funpack", "-O", str(restored), str(ours)], check=True)
    assert np.array_equal(astropy_fits.getdata(restored), astropy_fits.getdata(pocs / name))
    assert astropy_fits.getdata(restored).dtype == astropy_fits.getdata(pocs / name).dtype


@pytest.mark.parametrize("name", ["tiny.fits", "unsolved.fits", "pole.fits"])
def test_compression_matches_fpack(pocs, name, tmp_path):
    need_tool("fpack")
    source = tmp_path / name
    source.write_bytes((pocs / name).read_bytes())
    subprocess.run(["fpack", str(source)], check=True)
    theirs = astropy_fits.open(str(source) + ".fz", disable_image_compression=True)[1].header
    ours_bytes = fits.compress((pocs / name).read_bytes()).data
    ours = astropy_fits.open(io.BytesIO(ours_bytes), disable_image_compression=True)[1].header
    # Card for card the table header fpack writes, but for the checksums fpack adds to it.
    def cards(header):
        return [(card.keyword, card.value) for card in header.cards if card.keyword not in ("CHECKSUM", "DATASUM")]

    assert cards(ours) == cards(theirs)
    size_ours, size_theirs = len(ours_bytes), (tmp_path / (name + ".fz")).stat().st_size
    assert abs(size_ours - size_theirs) <= 0.01 * size_theirs
    assert np.array_equal(astropy_fits.getdata(io.BytesIO(ours_bytes), 1), astropy_fits.getdata(pocs / name))


def test_verification_catches_a_changed_pixel(pocs):
    original = (pocs / "tiny.fits").read_bytes()
    hdus = astropy_fits.open(io.BytesIO(original))
    hdus[0].data[5, 5] += 1
    other = io.BytesIO()
    hdus.writeto(other)
    with pytest.raises(ValueError, match="pixels differ"):
        fits.verify_compressed(original, fits.compress(other.getvalue()).data)


@pytest.mark.parametrize(
    "make, error, reason",
    [
        (lambda raw: b"", fits.NotFitsError, "too short"),
        (lambda raw: b"plain text\n" * 500, fits.NotFitsError, "SIMPLE"),
        (lambda raw: raw[:50_000], fits.NotFitsError, "truncated"),
        (lambda raw: raw[:3000], fits.NotFitsError, "truncated"),
        (lambda raw: _float_image(), fits.UnsupportedFitsError, "floating-point"),
        (lambda raw: _empty_primary(), fits.UnsupportedFitsError, "no image"),
    ],
)
def test_what_cannot_be_compressed_says_why(pocs, make, error, reason):
    with pytest.raises(error, match=reason):
        fits.compress(make((pocs / "tiny.fits").read_bytes()))


def _float_image() -> bytes:
    buffer = io.BytesIO()
    astropy_fits.PrimaryHDU(np.ones((10, 10), dtype=np.float32)).writeto(buffer)
    return buffer.getvalue()


def _empty_primary() -> bytes:
    buffer = io.BytesIO()
    astropy_fits.PrimaryHDU().writeto(buffer)
    return buffer.getvalue()


def test_tiles_checked_at_compression_must_be_the_ones_in_the_file(pocs):
    original = (pocs / "tiny.fits").read_bytes()
    compressed = fits.compress(original)
    assert compressed.checked_tiles is not None
    fits.verify_compressed(original, compressed)
    damaged = bytearray(compressed.data)
    damaged[-fits.BLOCK - 100] ^= 0xFF  # a byte in the heap, before the padding
    with pytest.raises(ValueError, match="pixels differ"):
        fits.verify_compressed(original, fits.Compressed(bytes(damaged), 1, compressed.checked_tiles))
    with pytest.raises(ValueError):
        fits.verify_compressed(original, bytes(damaged))  # decoded afresh: caught as well


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (37, 1441), (100, 77)])
def test_primary_image_is_what_astropy_writes(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    # A strided plane of an (h, w, 3) image, as rawpy gives them, over the type's whole range.
    top = np.iinfo(dtype).max
    image = rng.integers(0, top + 1, size=(*shape, 3), dtype=dtype)
    image[0, 0] = (0, top // 2 + 1, top)
    header = astropy_fits.Header([("OBSERVER", "PAN001", "unit"), ("COLOR", "g", "plane")])
    header.add_comment("a comment card")
    plane = image[:, :, 1]

    expected = io.BytesIO()
    astropy_fits.PrimaryHDU(data=np.ascontiguousarray(plane), header=header).writeto(expected)
    encoded = fits.primary_image(plane, header)
    rendered_first = fits.primary_image(plane, fits.primary_header_bytes(header, plane.shape, dtype))

    assert encoded.dtype == np.uint8 and encoded.ndim == 1
    assert encoded.tobytes() == expected.getvalue()
    assert rendered_first.tobytes() == encoded.tobytes()
    with astropy_fits.open(io.BytesIO(encoded)) as hdus:
        assert hdus[0].data.dtype == dtype
        np.testing.assert_array_equal(hdus[0].data, plane)
    assert header.get("NAXIS") is None  # the caller's header is left as it was


def test_primary_image_refuses_other_types():
    with pytest.raises(ValueError, match="2-D uint8 or uint16"):
        fits.primary_image(np.zeros((2, 2), np.int16), astropy_fits.Header())
    with pytest.raises(ValueError, match="2-D uint8 or uint16"):
        fits.primary_image(np.zeros((2, 2, 3), np.uint16), astropy_fits.Header())


def _image_bytes(pixels: np.ndarray, **keywords) -> bytes:
    buffer = io.BytesIO()
    hdu = astropy_fits.PrimaryHDU(pixels)
    hdu.header.update(keywords)
    hdu.writeto(buffer)
    return buffer.getvalue()


def _fpacked(tmp_path, data: bytes, *options: str) -> bytes:
    need_tool("fpack")
    source, packed = tmp_path / "frame.fits", tmp_path / "frame.fits.fz"
    source.write_bytes(data)
    packed.unlink(missing_ok=True)
    subprocess.run(["fpack", *options, "-O", str(packed), str(source)], check=True)
    return packed.read_bytes()


def _astropy_image(data: bytes):
    with astropy_fits.open(io.BytesIO(data)) as hdus:
        hdu = next(hdu for hdu in hdus if hdu.is_image and hdu.header.get("NAXIS") == 2)
        return hdu.header.copy(), np.asarray(hdu.data)


_RNG = np.random.default_rng(12)
_SIGNED = _RNG.integers(-30000, 30000, (40, 61)).astype(np.int16)
_UNSIGNED_32 = _RNG.integers(0, 2**32, (9, 33), dtype=np.uint64).astype(np.uint32)


@pytest.mark.parametrize("make, fast", [
    (lambda pocs, tmp_path: (pocs / "solved.fits.fz").read_bytes(), True),  # fpack's, from a unit
    (lambda pocs, tmp_path: fits.compress((pocs / "tiny.fits").read_bytes()).data, True),  # compress-fits'
    (lambda pocs, tmp_path: fits.compress(_image_bytes(_SIGNED)).data, True),  # signed, no BZERO
    (lambda pocs, tmp_path: fits.compress(_image_bytes(_UNSIGNED_32)).data, True),  # 32-bit, BZERO 2**31
    (lambda pocs, tmp_path: _fpacked(tmp_path, (pocs / "tiny.fits").read_bytes()), True),
    (lambda pocs, tmp_path: _fpacked(tmp_path, (pocs / "tiny.fits").read_bytes(), "-t", "200,4"), False),
    (lambda pocs, tmp_path: _fpacked(tmp_path, (pocs / "tiny.fits").read_bytes(), "-g"), False),  # GZIP_1
    (lambda pocs, tmp_path: _fpacked(tmp_path, _image_bytes(_SIGNED, BSCALE=2.0, BZERO=10.0)), False),
    (lambda pocs, tmp_path: (pocs / "unsolved.fits").read_bytes(), False),  # not compressed
])
def test_read_image_gives_what_astropy_gives_and_decodes_fpacks_layout_itself(pocs, tmp_path, make, fast):
    data = make(pocs, tmp_path)
    header, pixels = fits.read_image(data)
    expected_header, expected = _astropy_image(data)
    assert pixels.dtype == expected.dtype and pixels.shape == expected.shape
    np.testing.assert_array_equal(pixels, expected)
    assert fits.header_differences(header, expected_header) == []
    # fpack's default layout (one RICE_1 row a tile, integers) is decoded by the fast
    # codec; any other is left to astropy.
    assert (fits._read_row_tiles(data) is not None) == fast


def test_read_image_of_a_damaged_tile_or_no_image(pocs):
    compressed = bytearray(fits.compress((pocs / "tiny.fits").read_bytes()).data)
    compressed[-fits.BLOCK - 100] ^= 0xFF  # a byte in the heap, before the padding
    with pytest.raises(Exception, match="decompression error"):  # astropy's word on it, not a wrong image
        fits.read_image(bytes(compressed))
    assert fits.read_image(_empty_primary()) is None
