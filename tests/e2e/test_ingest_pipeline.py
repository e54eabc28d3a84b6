"""Issue #3 end to end, on both backends: upload real frames, let the pipeline run, and
check buckets and documents against the frames' own headers."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from astropy.io import fits as astropy_fits

from panoptes_network.ports.documents import GeoPoint

SEQUENCE = "PAN001/14d3bd/20160909T081152"
TINY = f"{SEQUENCE}/20160909T081226.fits"
SOLVED = f"{SEQUENCE}/20160909T081434.fits.fz"
SEQUENCE_ID = "PAN001_14d3bd_20160909T081152"

SEED_IMAGE_FIELDS = {"ha_mnt", "ra_mnt", "dec_mnt", "ra_image", "dec_image", "exptime", "moonfrac", "moonsep",
                     "airmass", "bucket_path", "sequence_id", "status", "time"}


def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)


@pytest.fixture
def ingested(stack, pocs):
    stack.upload(pocs / "tiny.fits", TINY)
    stack.upload(pocs / "solved.fits.fz", SOLVED)
    stack.drain()
    return stack


def test_raw_bucket_ends_with_only_compressed_frames(ingested, pocs):
    assert ingested.names() == [TINY + ".fz", SOLVED]
    restored = astropy_fits.open(__import__("io").BytesIO(ingested.raw.read(TINY + ".fz")))
    original = astropy_fits.open(pocs / "tiny.fits")
    assert (restored[1].data == original[0].data).all()
    assert ingested.dead_letters() == []


def test_images_hold_the_header_values(ingested, pocs):
    # tiny.fits has no WCS, so plate-solve tries it: a 0.57 degree cut-out holds too few
    # index stars, and it is marked unsolved. solved.fits.fz is recorded as solved from its header.
    for bucket_path, source, hdu, image_time, status in (
        (TINY + ".fz", "tiny.fits", 0, "20160909T081226", "unsolved"),
        (SOLVED, "solved.fits.fz", 1, "20160909T081434", "uploaded"),
    ):
        header = astropy_fits.getheader(pocs / source, hdu)
        image = ingested.documents.get("images", f"PAN001_14d3bd_{image_time}")
        assert SEED_IMAGE_FIELDS <= set(image)
        assert image["bucket_path"] == bucket_path
        assert image["sequence_id"] == SEQUENCE_ID
        assert image["time"] == utc(image_time)
        assert image["status"] == status
        for field, keyword in (("ha_mnt", "HA-MNT"), ("ra_mnt", "RA-MNT"), ("dec_mnt", "DEC-MNT"),
                               ("exptime", "EXPTIME"), ("moonfrac", "MOONFRAC"), ("moonsep", "MOONSEP"),
                               ("airmass", "AIRMASS")):
            assert image[field] == pytest.approx(header[keyword]), field
        assert image["iso"] == header["ISO"]
        assert image["camtemp"] == float(header["CAMTEMP"].split()[0])
        assert [image[f"measrggb_{c}"] for c in ("r", "g1", "g2", "b")] == [int(v) for v in header["MEASRGGB"].split()]
        assert image["field_name"] == header["FIELD"]
        assert "" not in image.values()  # empty header values are null, never ""

    solved = ingested.documents.get("images", "PAN001_14d3bd_20160909T081434")
    assert solved["ra_image"] == pytest.approx(303.206422334) and solved["dec_image"] == pytest.approx(46.0173987483)
    tiny = ingested.documents.get("images", "PAN001_14d3bd_20160909T081226")
    assert tiny["ra_image"] is None and tiny["dec_image"] is None  # not plate-solved
    assert "no solution" in tiny["solve"]["reason"] and tiny["plate_solved"] is False


def test_observation_and_unit_documents(ingested):
    observation = ingested.documents.get("observations", SEQUENCE_ID)
    assert observation["unit_id"] == "PAN001" and observation["camera_id"] == "14d3bd"
    assert observation["software_version"] == "POCSv0.1.1"
    assert observation["field_name"] == "KIC 8462852"
    assert observation["ra"] == pytest.approx(303.206422334)  # the plate-solved centre
    assert observation["time"] == utc("20160909T081152")
    assert observation["num_images"] == 2
    assert observation["total_exptime"] == pytest.approx(240.8)
    assert observation["first_image_time"] == utc("20160909T081226")
    assert observation["last_image_time"] == utc("20160909T081434")
    unit = ingested.documents.get("units", "PAN001")
    assert unit == {"name": "PAN001", "elevation": 3400.0, "location": GeoPoint(19.54, -155.58), "status": "active"}


def snapshot(stack) -> dict:
    return {
        "objects": {info.name: (stack.raw.md5(info.name), info.generation) for info in stack.raw.list()},
        "images": {doc.id: doc.data for doc in stack.documents.query("images")},
        "observations": {doc.id: doc.data for doc in stack.documents.query("observations")},
        "units": {doc.id: doc.data for doc in stack.documents.query("units")},
    }


def test_redelivery_of_every_message_changes_nothing(stack, pocs):
    start = datetime.now(timezone.utc)
    stack.upload(pocs / "tiny.fits", TINY)
    stack.upload(pocs / "solved.fits.fz", SOLVED)
    stack.drain()
    before = snapshot(stack)
    pushes = stack.server.activity.requests if stack.server else None
    stack.replay(start)
    stack.drain()
    if stack.server:  # every message was pushed again: 2 finalize + 1 compress + 2 record, at least
        assert stack.server.activity.requests - pushes >= 5
    assert snapshot(stack) == before
    assert before["observations"][SEQUENCE_ID]["num_images"] == 2
    assert stack.dead_letters() == []


def test_crash_between_upload_and_delete_is_finished_by_redelivery(stack, pocs, monkeypatch):
    bucket_class = type(stack.raw)
    real_delete = bucket_class.delete
    crashes = []

    def crash_once(self, path, **kwargs):
        if path.endswith(".fits") and not crashes:
            crashes.append(path)
            raise RuntimeError("simulated crash after the .fz upload")
        return real_delete(self, path, **kwargs)

    monkeypatch.setattr(bucket_class, "delete", crash_once)
    stack.upload(pocs / "tiny.fits", TINY)
    stack.drain()
    assert crashes == [TINY]
    assert stack.names() == [TINY + ".fz"]
    assert stack.documents.get("observations", SEQUENCE_ID)["num_images"] == 1
    assert stack.dead_letters() == []


@pytest.mark.parametrize(
    "name, content, expect",
    [
        ("zero-byte", b"", "dead"),
        ("text", b"this is not a FITS file\n" * 200, "dead"),
        ("truncated", None, "dead"),
        ("too-few-parts", None, "quarantine"),
        ("dot-dot", None, "quarantine"),
    ],
)
def test_bad_input_is_quarantined_or_dead_lettered_and_never_lost(stack, pocs, name, content, expect):
    path = f"{SEQUENCE}/20160909T081226.fits"
    if name == "truncated":
        content = (pocs / "tiny.fits").read_bytes()[:50_000]
    elif name == "too-few-parts":
        path, content = "PAN001/20160909T081226.fits", (pocs / "tiny.fits").read_bytes()
    elif name == "dot-dot":
        path, content = "PAN001/../14d3bd/20160909T081152/20160909T081226.fits", (pocs / "tiny.fits").read_bytes()
    stack.upload(content, path)
    stack.drain()
    letters = stack.dead_letters()
    if expect == "dead":
        assert stack.names() == [path]  # the original is untouched
        assert stack.raw.read(path) == content
        assert len(letters) == 1 and letters[0]["service"] == "compress-fits"
        assert "FITS" in letters[0]["reason"]
        assert letters[0]["attempts"] is None  # dead-lettered on the first attempt, not retried
    else:
        assert stack.names() == []
        quarantined = stack.bucket(stack.settings.temp_bucket).list("quarantine/")
        (info,) = list(quarantined)
        assert info.name == "quarantine/" + path
        assert stack.bucket(stack.settings.temp_bucket).read(info.name) == content
        assert info.metadata["quarantine_reason"]
        assert letters == []


def test_legacy_path_is_renamed_then_processed(stack, pocs):
    stack.upload(pocs / "tiny.fits", "PAN001/Tess_Sec21_Cam02/14d3bd/20160909T081152/20160909T081226.fits")
    stack.drain()
    assert stack.names() == [TINY + ".fz"]
    assert stack.documents.get("images", "PAN001_14d3bd_20160909T081226")["bucket_path"] == TINY + ".fz"


def test_timelapse_moves_and_previews_stay(stack):
    stack.upload(b"not really a video", f"{SEQUENCE}/20160909T081152.mp4")
    stack.upload(b"\xff\xd8 a jpeg", f"{SEQUENCE}/20160909T081226.jpg")
    stack.drain()
    assert stack.names() == [f"{SEQUENCE}/20160909T081226.jpg"]
    assert stack.names(stack.settings.timelapse_bucket) == [f"{SEQUENCE}/20160909T081152.mp4"]
    assert stack.bucket(stack.settings.timelapse_bucket).read(f"{SEQUENCE}/20160909T081152.mp4") == b"not really a video"


def test_a_message_pubsub_gave_up_on_is_recorded_with_its_source(stack):
    """What Pub/Sub pushes from the dead-letter topic to the stack, attributes as Pub/Sub sets them."""
    from werkzeug.test import Client

    from panoptes_network.messages import encode_push_envelope
    from panoptes_network.stack.server import build_app

    source = f"projects/{stack.settings.project}/subscriptions/panoptes-record-image"
    envelope = encode_push_envelope({"bucket_path": TINY + ".fz"}, attributes={
        "CloudPubSubDeadLetterSourceSubscription": source, "CloudPubSubDeadLetterSourceDeliveryCount": "5"})
    app, _ = build_app(stack.settings)
    client = Client(app)
    for _ in range(2):  # a redelivered dead letter is the same document
        assert client.post("/_stack/dead-letter", json=envelope).status_code == 204
    letters = stack.dead_letters()
    assert len(letters) == 1
    assert letters[0]["service"] == "panoptes-record-image" and letters[0]["subscription"] == source
    assert letters[0]["attempts"] == 5 and "gave up after 5 delivery attempts" in letters[0]["reason"]


def _float_frame() -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    astropy_fits.PrimaryHDU(np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30)).writeto(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("failure", ["refused", "compressor fails"])
def test_a_file_that_cannot_be_compressed_is_dead_lettered_after_exactly_one_attempt(stack, pocs, monkeypatch,
                                                                                      failure):
    """Issue #17: the compressor's verdict comes on the first delivery, never after retries."""
    from panoptes_network import fits

    real_compress, attempts = fits.compress, []

    def counted(data: bytes):
        attempts.append(len(data))
        if failure == "compressor fails":  # as astropy did on a table with a heap
            raise OSError("Could not find heap data for the 'VLA' variable-length array column.")
        return real_compress(data)

    monkeypatch.setattr(fits, "compress", counted)
    content = _float_frame() if failure == "refused" else (pocs / "tiny.fits").read_bytes()
    stack.upload(content, TINY)
    stack.drain()

    assert attempts == [len(content)]  # one delivery reached the compressor, and only one
    assert stack.names() == [TINY] and stack.raw.read(TINY) == content  # the original kept
    (letter,) = stack.dead_letters()
    assert letter["service"] == "compress-fits" and letter["attempts"] is None
    expected = "floating-point pixels" if failure == "refused" else "could not be done losslessly; the original is kept"
    assert expected in letter["reason"] and TINY in letter["reason"]


def _multi_extension_frame(pocs) -> bytes:
    """A file of the kinds issue #17 found: an empty primary with the frame's keywords, the
    frame's pixels as a scaled image with null pixels and blank-keyword cards, a table with
    a heap and one with a zero-width column."""
    import io

    import numpy as np

    header = astropy_fits.getheader(pocs / "tiny.fits")
    pixels = astropy_fits.getdata(pocs / "tiny.fits").astype(np.int32) - 2048
    pixels[0, :10] = -(2**31)
    image = astropy_fits.ImageHDU(pixels, name="SCI")
    image.header.update({"BLANK": -(2**31), "EXTNAME": "SCI"})
    image.header.append(astropy_fits.Card("", "   / DATA PACKET follows"), bottom=True)
    heap = astropy_fits.BinTableHDU.from_columns(
        [astropy_fits.Column("VLA", "PJ()", array=np.array([np.arange(3), np.arange(9)], dtype=object))])
    empty = astropy_fits.BinTableHDU.from_columns(
        [astropy_fits.Column("A", "J", array=np.arange(2)), astropy_fits.Column("NONE", "0J")])
    primary = astropy_fits.PrimaryHDU(header=astropy_fits.Header(
        [card for card in header.cards if card.keyword not in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2")]))
    buffer = io.BytesIO()
    astropy_fits.HDUList([primary, image, heap, empty]).writeto(buffer)
    return buffer.getvalue()


def test_a_multi_extension_file_is_compressed_and_recorded(stack, pocs):
    """Issue #17: images compressed, tables carried, the header recorded, nothing dead-lettered."""
    import io

    import numpy as np

    content = _multi_extension_frame(pocs)
    stack.upload(content, TINY)
    stack.drain()

    assert stack.dead_letters() == []
    assert stack.names() == [TINY + ".fz"]
    with astropy_fits.open(io.BytesIO(content)) as before, \
            astropy_fits.open(io.BytesIO(stack.raw.read(TINY + ".fz"))) as after:
        assert [type(hdu).__name__ for hdu in after] == ["PrimaryHDU", "CompImageHDU", "BinTableHDU", "BinTableHDU"]
        np.testing.assert_array_equal(after[1].data, before[1].data)  # the null pixels NaN in both
        assert np.isnan(after[1].data[0, :10]).all() and after[1].header["BLANK"] == -(2**31)
        assert [list(row) for row in after[2].data["VLA"]] == [list(range(3)), list(range(9))]
    image = stack.documents.get("images", "PAN001_14d3bd_20160909T081226")
    assert image["bucket_path"] == TINY + ".fz"
    assert image["exptime"] == pytest.approx(astropy_fits.getheader(pocs / "tiny.fits")["EXPTIME"])
