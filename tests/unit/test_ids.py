from datetime import datetime, timezone

import pytest

from panoptes_network.ids import InvalidPathError, bucket_path_from_header, parse_bucket_path


def test_parses_the_four_part_path():
    path = parse_bucket_path("PAN001/14d3bd/20180216T110623/20180216T112430.fits.fz")
    assert (path.unit_id, path.camera_id) == ("PAN001", "14d3bd")
    assert path.sequence_id == "PAN001_14d3bd_20180216T110623"
    assert path.image_id == "PAN001_14d3bd_20180216T112430"
    assert path.sequence_time == datetime(2018, 2, 16, 11, 6, 23, tzinfo=timezone.utc)
    assert path.image_time == datetime(2018, 2, 16, 11, 24, 30, tzinfo=timezone.utc)
    assert path.extension == ".fits.fz" and path.file_type == ".fits.fz"
    assert not path.is_legacy
    assert path.path == "PAN001/14d3bd/20180216T110623/20180216T112430.fits.fz"
    assert path.with_extension(".jpg") == "PAN001/14d3bd/20180216T110623/20180216T112430.jpg"


def test_recognises_the_legacy_five_part_path():
    path = parse_bucket_path("PAN001/Tess_Sec21_Cam02/14d3bd/20200319T111240/20200319T112708.fits.fz")
    assert path.is_legacy and path.field_name == "Tess_Sec21_Cam02"
    assert path.path == "PAN001/14d3bd/20200319T111240/20200319T112708.fits.fz"
    assert path.image_id == "PAN001_14d3bd_20200319T112708"


def test_extension_case_is_kept_in_the_path_and_folded_for_routing():
    path = parse_bucket_path("PAN001/14d3bd/20180216T110623/20180216T112430.CR2")
    assert path.file_type == ".cr2" and path.path.endswith(".CR2")


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("", "empty"),
        ("/PAN001/14d3bd/20180216T110623/20180216T112430.fits", "absolute"),
        ("PAN001/../20180216T110623/20180216T112430.fits", "'..'"),
        ("PAN001//20180216T110623/20180216T112430.fits", "empty"),
        ("PAN001/20180216T112430.fits", "parts"),
        ("PAN1/14d3bd/20180216T110623/20180216T112430.fits", "unit id"),
        ("PAN001/14d3bz/20180216T110623/20180216T112430.fits", "camera id"),
        ("PAN001/14d3bd/20180216-110623/20180216T112430.fits", "sequence time"),
        ("PAN001/14d3bd/20181316T110623/20180216T112430.fits", "not a valid date"),
        ("PAN001/14d3bd/20180216T110623/image.fits", "image time"),
        ("PAN001/14d3bd/20180216T110623/20180216T112430", "no file extension"),
        ("PAN001/14d3bd/20180216T110623/20180216T112430.fits\n", "control"),
        ("PAN001/14d3bd/20180216T110623/" + "x" * 1100, "longer"),
    ],
)
def test_invalid_paths_raise_one_error_type_with_the_reason(bad, reason):
    with pytest.raises(InvalidPathError, match=reason):
        parse_bucket_path(bad)


def test_bucket_path_from_a_pocs_header():
    header = {"OBSERVER": "PAN001", "INSTRUME": "14d3bd", "SEQID": "PAN001_14d3bd_20160909T081152",
              "IMAGEID": "PAN001_14d3bd_20160909T081226"}
    assert bucket_path_from_header(header, ".fits") == "PAN001/14d3bd/20160909T081152/20160909T081226.fits"


def test_bucket_path_from_a_header_with_placeholders_is_refused_with_the_reason():
    header = {"OBSERVER": "PAN001", "INSTRUME": "XXXXXX", "SEQID": "PAN001_XXXXXX_20160909T081152",
              "IMAGEID": "PAN001_XXXXXX_20160909T081152"}
    with pytest.raises(InvalidPathError, match="camera id 'XXXXXX'.*--as"):
        bucket_path_from_header(header, ".fits")
    with pytest.raises(InvalidPathError, match="lacks INSTRUME"):
        bucket_path_from_header({"OBSERVER": "PAN001"}, ".fits")


# Arabic-Indic, Devanagari and full-width digits: str.isdigit() and re's \d take them all.
NON_ASCII_DIGITS = ["١٢٣", "१२३", "１２３"]


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
def test_ids_are_ascii_digits_only(digits):
    with pytest.raises(InvalidPathError, match="unit id"):
        parse_bucket_path(f"PAN{digits}/14d3bd/20180216T110623/20180216T112430.fits")
    with pytest.raises(InvalidPathError, match="sequence time"):
        parse_bucket_path(f"PAN001/14d3bd/2018021{digits[0]}T110623/20180216T112430.fits")
    with pytest.raises(InvalidPathError, match="image time"):
        parse_bucket_path(f"PAN001/14d3bd/20180216T110623/20180216T11243{digits[0]}.fits")


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
def test_the_explorer_takes_ascii_ids_and_numbers_only(digits):
    from panoptes_network.explorer import api, search

    with pytest.raises(search.ParameterError, match="sequence_id"):
        search.check_sequence_id(f"PAN{digits}_14d3bd_20180216T110623")
    with pytest.raises(search.ParameterError, match="unit"):
        search.parse({"unit": f"PAN{digits}"})
    with pytest.raises(search.ParameterError, match="per_page"):
        search.parse({"per_page": digits})
    with pytest.raises(search.ParameterError, match="year"):
        api.parse_year({"year": "20" + digits[:2]})

