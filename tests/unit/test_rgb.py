"""make-rgb-fits without the stack: option validation, decoding real (generated) DNG
files with LibRaw, and the headers of the planes."""

from __future__ import annotations

import io
import warnings
from datetime import datetime, timezone

import numpy as np
import pytest
import rawpy
import tifffile
from astropy.io import fits as astropy_fits

from panoptes_network import fits
from panoptes_network.deadletter import PermanentError
from panoptes_network.ids import parse_bucket_path
from panoptes_network.pipeline import rgb
from tests.dng import Camera, expected_level, lit_dng

BUCKET_PATH = "PAN001/14d3bd/20180216T110623/20180216T112430.dng"
NETWORK_DEFAULTS = {"demosaic_algorithm": "AAHD", "gamma": [1.0, 1.0], "half_size": True, "no_auto_bright": True,
                    "output_bps": 16}


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize("given", [None, {}])
def test_no_options_means_the_network_defaults(given):
    assert rgb.validate_options(given) == NETWORK_DEFAULTS


def test_overrides_are_merged_and_named_canonically():
    options = rgb.validate_options({"demosaic_algorithm": "ahd", "half_size": False, "output_color": "RAW",
                                    "highlight_mode": "blend", "user_wb": [2, 1, 1.5, 1]})
    assert options == {**NETWORK_DEFAULTS, "demosaic_algorithm": "AHD", "half_size": False, "output_color": "raw",
                       "highlight_mode": "Blend", "user_wb": [2.0, 1.0, 1.5, 1.0]}
    assert list(options) == sorted(options)  # recorded in a stable order


def test_every_accepted_option_is_one_rawpy_takes():
    every = {
        "demosaic_algorithm": "DCB", "half_size": False, "four_color_rgb": True, "dcb_iterations": 2,
        "dcb_enhance": True, "fbdd_noise_reduction": "Light", "noise_thr": 100.0, "median_filter_passes": 1,
        "use_camera_wb": True, "use_auto_wb": False, "user_wb": [2, 1, 1.5, 1], "output_color": "XYZ",
        "output_bps": 8, "user_flip": 3, "user_black": 250, "user_cblack": [1, 2, 3, 4], "user_sat": 4000,
        "no_auto_bright": False, "auto_bright_thr": 0.02, "adjust_maximum_thr": 0.5, "bright": 1.5,
        "highlight_mode": 5, "exp_shift": 2.0, "exp_preserve_highlights": 0.5, "no_auto_scale": False,
        "gamma": [2.222, 4.5], "chromatic_aberration": [1.001, 0.999],
    }
    assert set(every) == set(rgb.OPTION_CHECKS)
    arguments = rgb.to_rawpy(rgb.validate_options(every))
    assert arguments["demosaic_algorithm"] is rawpy.DemosaicAlgorithm.DCB
    assert arguments["output_color"] is rawpy.ColorSpace.XYZ
    assert arguments["gamma"] == (2.222, 4.5)
    rawpy.Params(**arguments)  # rawpy itself accepts every name and value


@pytest.mark.parametrize(
    "options, reason",
    [
        ({"demosaic": "AAHD"}, "unknown rawpy option 'demosaic'"),
        ({"bad_pixels_path": "/etc/passwd"}, "unknown rawpy option 'bad_pixels_path'"),
        ({"half_size": "yes"}, "'half_size' must be true or false"),
        ({"half_size": 1}, "'half_size' must be true or false"),
        ({"output_bps": 12}, "'output_bps' must be 8 or 16"),
        ({"output_bps": True}, "'output_bps' must be 8 or 16"),
        ({"demosaic_algorithm": "BILINEAR"}, "'demosaic_algorithm' must be one of"),
        ({"demosaic_algorithm": "AMAZE"}, "'demosaic_algorithm' must be one of"),  # not in rawpy's LibRaw build
        ({"gamma": [1]}, "'gamma' must be a list of 2 numbers"),
        ({"gamma": [0, 1]}, "'gamma' must be greater than 0"),
        ({"gamma": "1,1"}, "'gamma' must be a list of 2 numbers"),
        ({"user_wb": [1, 1, 1]}, "'user_wb' must be a list of 4 numbers"),
        ({"exp_shift": 10}, "'exp_shift' must be between 0.25 and 8"),
        ({"bright": 0}, "'bright' must be greater than 0"),
        ({"noise_thr": float("nan")}, "'noise_thr' must be a finite number"),
        ({"highlight_mode": 12}, "'highlight_mode' must be between 0 and 9"),
        ({"user_flip": 4}, "'user_flip' must be 0, 3, 5 or 6"),
        ({"dcb_iterations": 1.5}, "'dcb_iterations' must be an integer"),
        (["half_size"], "rawpy_options must be a JSON object"),
    ],
)
def test_invalid_options_are_permanent_errors_naming_the_option(options, reason):
    with pytest.raises(PermanentError, match=reason.replace("(", r"\(").replace("[", r"\[")):
        rgb.validate_options(options)


def test_unknown_options_error_lists_what_is_accepted():
    with pytest.raises(PermanentError) as caught:
        rgb.validate_options({"zzz": 1, "aaa": 2})
    assert "unknown rawpy options 'aaa', 'zzz'" in str(caught.value)
    assert "demosaic_algorithm" in str(caught.value) and "half_size" in str(caught.value)


# --- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lit, bright", [("r", 0), ("g", 1), ("b", 2)])
def test_each_plane_holds_its_own_photosites(lit, bright):
    planes, _ = rgb.decode(lit_dng(lit=lit), NETWORK_DEFAULTS, "test.dng")
    assert planes.shape == (32, 48, 3) and planes.dtype == np.uint16  # half size, 16 bits
    for index in range(3):
        if index == bright:
            assert planes[:, :, index] == pytest.approx(expected_level(), rel=2e-4)
        else:
            assert planes[:, :, index].max() <= 2  # dark: nothing leaks from the lit colour


def test_options_change_the_output():
    data = lit_dng(lit="r")
    full, _ = rgb.decode(data, rgb.validate_options({"half_size": False, "demosaic_algorithm": "LINEAR"}), "t.dng")
    assert full.shape == (64, 96, 3)
    eight_bit, _ = rgb.decode(data, rgb.validate_options({"output_bps": 8}), "t.dng")
    assert eight_bit.dtype == np.uint8
    assert eight_bit[:, :, 0] == pytest.approx(expected_level(output_bps=8), abs=1)


def test_metadata_comes_from_the_raw_file():
    camera = Camera(make="Canon", model="Canon EOS 100D", serial="083021005566", exposure=(1, 50), iso=400,
                    capture_time="2018:02:16 11:24:30")
    _, metadata = rgb.decode(lit_dng(camera=camera), NETWORK_DEFAULTS, "t.dng")
    assert metadata.exptime == pytest.approx(0.02)
    assert metadata.iso == 400
    assert metadata.capture_time == datetime(2018, 2, 16, 11, 24, 30, tzinfo=timezone.utc)
    assert metadata.capture_zone == rgb.CLOCK_AS_UTC
    assert (metadata.make, metadata.model, metadata.serial) == ("Canon", "Canon EOS 100D", "083021005566")
    assert metadata.bayer_pattern == "RGGB"
    assert metadata.camera_wb == pytest.approx({"R": 2.0, "G": 1.0, "B": 1.6})  # 1 / AsShotNeutral
    assert metadata.black_levels == {"R": 256, "G": 256, "B": 256, "G2": 256}
    assert metadata.white_level == 4095


def test_a_recorded_utc_offset_gives_the_capture_time_in_utc():
    camera = Camera(capture_time="2018:02:16 01:24:30", offset_time="-10:00")  # Hawaii
    _, metadata = rgb.decode(lit_dng(camera=camera), NETWORK_DEFAULTS, "t.dng")
    assert metadata.capture_time == datetime(2018, 2, 16, 11, 24, 30, tzinfo=timezone.utc)
    assert metadata.capture_zone == "offset -10:00"


def _plain_tiff() -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("zero bytes", b"", "is empty"),
        ("text", b"this is not a raw camera file\n" * 100, "Unsupported file format or not RAW"),
        ("plain TIFF", _plain_tiff(), "Unsupported file format or not RAW"),
        ("cut in the header", lit_dng()[:200], "truncated"),
        ("cut in half", lit_dng()[: len(lit_dng()) // 2], "truncated"),
        ("last byte missing", lit_dng()[:-1], "truncated"),
    ],
)
@pytest.mark.parametrize("as_file", [False, True], ids=["bytes", "file"])
def test_unreadable_files_are_permanent_errors_with_the_reason(name, content, reason, as_file, tmp_path):
    source = content
    if as_file:  # how the service hands it over: a file LibRaw reads by name
        source = tmp_path / "x.cr2"
        source.write_bytes(content)
    with pytest.raises(PermanentError, match=reason):
        rgb.decode(source, NETWORK_DEFAULTS, "gs://raw/x.cr2")


def test_a_file_decodes_as_its_bytes_do(tmp_path):
    camera = Camera(make="Canon", model="Canon EOS 100D", serial="083021005566", capture_time="2018:02:16 11:24:30")
    data = lit_dng(lit="g", camera=camera)
    file = tmp_path / "frame.cr2"
    file.write_bytes(data)
    from_bytes, bytes_metadata = rgb.decode(data, NETWORK_DEFAULTS, "t.cr2")
    from_file, file_metadata = rgb.decode(file, NETWORK_DEFAULTS, "t.cr2")
    np.testing.assert_array_equal(from_file, from_bytes)
    assert file_metadata == bytes_metadata and file_metadata.serial == "083021005566"


# --- headers ----------------------------------------------------------------------------------


def _header(plane: str = "g", metadata: rgb.RawMetadata | None = None, options=None) -> astropy_fits.Header:
    if metadata is None:
        _, metadata = rgb.decode(lit_dng(), NETWORK_DEFAULTS, "t.dng")
    return rgb.plane_header(parse_bucket_path(BUCKET_PATH), plane, options or NETWORK_DEFAULTS, metadata,
                            "gs://panoptes-raw-images/" + BUCKET_PATH, "0123456789abcdef0123456789abcdef")


def test_header_carries_ids_plane_options_and_raw_metadata():
    header = _header("g")
    assert header["OBSERVER"] == "PAN001" and header["INSTRUME"] == "14d3bd"
    assert header["SEQID"] == "PAN001_14d3bd_20180216T110623"
    assert header["IMAGEID"] == "PAN001_14d3bd_20180216T112430"
    assert header["COLOR"] == "g"
    assert header["RAWFILE"] == "gs://panoptes-raw-images/" + BUCKET_PATH
    assert header["EXPTIME"] == 120.0 and header["ISO"] == 100
    assert header["DATE-OBS"] == "2018-02-16T11:24:30" and header["TIMESYS"] == "UTC"
    assert (header["CAMMAKE"], header["CAMMODEL"], header["CAMSN"]) == ("Canon", "Canon EOS 100D", "012070048413")
    assert header["CAMWB_R"] == pytest.approx(2.0) and header["CAMWB_B"] == pytest.approx(1.6)
    assert [header[f"BLACK_{c}"] for c in ("R", "G", "B", "G2")] == [256] * 4
    assert header["WHITELVL"] == 4095 and header["BAYERPAT"] == "RGGB"
    assert header["RAWPY DEMOSAIC_ALGORITHM"] == "AAHD"
    assert header["RAWPY HALF_SIZE"] is True and header["RAWPY NO_AUTO_BRIGHT"] is True
    assert header["RAWPY OUTPUT_BPS"] == 16 and header["RAWPY GAMMA"] == "[1.0, 1.0]"
    assert header["RAWPYVER"] == rawpy.__version__


def test_header_leaves_out_what_the_raw_file_does_not_say():
    header = _header("r", rgb.RawMetadata())
    for keyword in ("EXPTIME", "ISO", "DATE-OBS", "CAMMAKE", "CAMMODEL", "CAMSN", "CAMWB_R", "BLACK_R", "WHITELVL"):
        assert keyword not in header
    assert "" not in header.values()


def test_plane_file_is_valid_and_reproducible():
    planes, metadata = rgb.decode(lit_dng(), NETWORK_DEFAULTS, "t.dng")
    header = _header("r", metadata, rgb.validate_options({"user_wb": [1.2345678901234567] * 4}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no card truncated, nothing astropy must fix
        content = fits.primary_image(planes[:, :, 0], header).tobytes()
        again = fits.primary_image(planes[:, :, 0], header).tobytes()
        with astropy_fits.open(io.BytesIO(content)) as hdus:
            hdus.verify("exception")
            assert (hdus[0].data == planes[:, :, 0]).all() and hdus[0].data.dtype == np.uint16
            assert hdus[0].header["RAWPY USER_WB"] == "[1.2345678901234567, 1.2345678901234567, " \
                                                      "1.2345678901234567, 1.2345678901234567]"
    assert content == again


def test_plane_paths_sit_beside_the_raw_path():
    path = parse_bucket_path("PAN001/14d3bd/20180216T110623/20180216T112430.CR2")
    assert [rgb.plane_path(path, plane) for plane in rgb.PLANES] == [
        f"PAN001/14d3bd/20180216T110623/20180216T112430_{plane}.fits" for plane in "rgb"
    ]


def test_header_refuses_an_unknown_plane():
    with pytest.raises(ValueError):
        _header("x", rgb.RawMetadata())
