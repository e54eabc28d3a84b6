"""panoptes_network.lookup: typed coordinates, the offline catalogs, and CDS Sesame (a
local fake speaking Sesame's format) in that order."""

from __future__ import annotations

import csv
import re
import time

import pytest
from astropy.coordinates import SkyCoord
import astropy.units as u
from astropy.io import fits as astropy_fits

from panoptes_network import lookup
from panoptes_network.lookup import catalogs, sesame
from tests.fake_sesame import FakeSesame, closed_port_url

OFFLINE = lookup.LookupOptions(online=False)
ARCSEC = 1 / 3600


def separation_deg(found: lookup.Resolution, ra: float, dec: float) -> float:
    return SkyCoord(found.ra * u.deg, found.dec * u.deg).separation(SkyCoord(ra * u.deg, dec * u.deg)).deg


@pytest.fixture(autouse=True)
def fresh_cache():
    sesame.clear_cache()
    yield
    sesame.clear_cache()


@pytest.fixture
def fake_sesame():
    server = FakeSesame({"TOI-700": (97.0963, -65.5791, "TOI-700"), "V1298 Tau": (61.3315, 20.1576, "V* V1298 Tau")})
    yield server.start()
    server.stop()


def online(*urls: str, timeout: float = 2.0) -> lookup.LookupOptions:
    return lookup.LookupOptions(online=True, sesame_urls=urls, timeout=timeout)


# --- 1. typed coordinates -------------------------------------------------------------


KIC_8462852 = SkyCoord("20h06m15.4s +44d27m24.8s")


@pytest.mark.parametrize(
    "typed",
    [
        "20h06m15.4s +44d27m24.8s",
        "20:06:15.4 +44:27:24.8",
        "20 06 15.4 +44 27 24.8",
        "20h 06m 15.4s, +44d 27m 24.8s",
        "301d33m51s 44d27m24.8s",
        "301.5642 44.4569",
        "301.5642, +44.4569",
        "ra=301.5642 dec=44.4569",
    ],
)
def test_typed_equatorial_coordinates_in_every_form(typed):
    found = lookup.resolve(typed, OFFLINE)
    assert found.source == "coordinates" and found.name is None
    assert separation_deg(found, KIC_8462852.ra.deg, KIC_8462852.dec.deg) < 1 * ARCSEC


@pytest.mark.parametrize(
    "typed, ra, dec",
    [
        # The galactic centre and north pole, ICRS positions from the IAU definition.
        ("l=0 b=0", 266.40499, -28.93617),
        ("galactic 0 0", 266.40499, -28.93617),
        ("L: 0, B: 90", 192.85948, 27.12825),
        ("0 90 gal", 192.85948, 27.12825),
    ],
)
def test_galactic_coordinates_are_converted_to_icrs(typed, ra, dec):
    found = lookup.resolve(typed, OFFLINE)
    assert found.source == "coordinates"
    assert separation_deg(found, ra, dec) < 2 * ARCSEC


@pytest.mark.parametrize(
    "typed, complaint",
    [
        ("301.564 95", "Dec must be between -90 and 90"),
        ("-5 10", "RA must be between 0 and 360"),
        ("20:75:00 +10:00:00", "minute"),
        ("l=10 b=-100", "galactic latitude"),
    ],
)
def test_impossible_coordinates_say_why(typed, complaint):
    with pytest.raises(lookup.InvalidSearch, match=complaint):
        lookup.resolve(typed, OFFLINE)


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_an_empty_search_is_invalid(empty):
    with pytest.raises(lookup.InvalidSearch, match="empty"):
        lookup.resolve(empty, OFFLINE)


def test_a_search_longer_than_the_limit_is_invalid():
    with pytest.raises(lookup.InvalidSearch, match="longer"):
        lookup.resolve("M" * (lookup.MAX_SEARCH_LENGTH + 1), OFFLINE)


# --- 2. offline catalogs ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, source, ra, dec, tolerance",
    [
        # Well-known positions, to the arcminute: the catalogs must agree with them.
        ("M42", "OpenNGC", 83.822, -5.391, 0.05),
        ("NGC 7000", "OpenNGC", 314.82, 44.53, 0.1),
        ("IC 434", "OpenNGC", 85.25, -2.46, 0.1),
        ("M 31", "OpenNGC", 10.685, 41.269, 0.02),
        ("Andromeda Galaxy", "OpenNGC", 10.685, 41.269, 0.02),
        ("Vega", "IAU bright stars", 279.2347, 38.7837, 0.01),
        ("Polaris", "IAU bright stars", 37.9529, 89.2641, 0.01),
        ("Betelgeuse", "IAU bright stars", 88.7929, 7.4071, 0.01),
        ("WASP-33", "exoplanet hosts", 36.7128, 37.5505, 0.01),
        ("HD 189733", "exoplanet hosts", 300.1821, 22.7097, 0.01),
        ("HAT-P-7", "exoplanet hosts", 292.2473, 47.9695, 0.01),
    ],
)
def test_common_targets_resolve_offline(name, source, ra, dec, tolerance):
    found = lookup.resolve(name, OFFLINE)
    assert found.source == source
    assert separation_deg(found, ra, dec) < tolerance


@pytest.mark.parametrize(
    "spellings",
    [
        ["WASP-33", "wasp 33", "WASP33", "Wasp_33", "HD 15082", "hd15082", "HIP 11397", "TIC 129979528"],
        ["M42", "m42", "M 42", "M-42", "m 042", "NGC 1976", "ngc1976", "NGC-1976", "Orion Nebula", "orion nebula"],
        ["HAT-P-7", "hat p 7", "HATP7", "KIC 10666592", "Kepler-2", "KOI 2"],
        ["Kaus Australis", "kaus australis", "KAUS-AUSTRALIS"],
        ["KIC 8462852", "kic8462852", "Tabby's Star"],
    ],
)
def test_names_match_whatever_the_case_spaces_and_dashes(spellings):
    answers = {lookup.resolve(spelling, OFFLINE) for spelling in spellings}
    assert len(answers) == 1, answers


def test_field_name_in_a_real_frame_resolves_to_where_the_mount_pointed(pocs):
    header = astropy_fits.getheader(pocs / "solved.fits.fz", 1)
    found = lookup.resolve(header["FIELD"], OFFLINE)
    assert separation_deg(found, header["RA-MNT"], header["DEC-MNT"]) < 1 * ARCSEC


def exoplanet_rows() -> list[dict[str, str]]:
    with catalogs.EXOPLANET_TABLE.open(encoding="utf-8") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def test_exoplanet_table_states_its_source_for_every_row():
    head = catalogs.EXOPLANET_TABLE.read_text(encoding="utf-8").split("designation,")[0]
    assert "Source: the Open Exoplanet Catalogue" in head
    rows = exoplanet_rows()
    assert len(rows) >= 30
    assert all(row["note"].strip() for row in rows)


DESIGNATION = re.compile(r"(?:2MASS |1SWASP )J(\d{2})(\d{2})(\d{2}\.?\d*)([+-]\d{2})(\d{2})(\d{2}\.?\d*)")
DESIGNATED = [row for row in exoplanet_rows() if DESIGNATION.search(row["note"])]


def test_rows_without_a_designation_say_where_their_position_is_from():
    for row in exoplanet_rows():
        if row not in DESIGNATED:
            assert re.search(r"OEC system position|POCS field list", row["note"]), row["designation"]


@pytest.mark.parametrize("row", DESIGNATED, ids=lambda row: row["designation"])
def test_exoplanet_positions_agree_with_the_designations_they_were_read_from(row):
    """A 2MASS or 1SWASP designation spells its own position: a typo in the table shows here."""
    hours, minutes, seconds, degrees, arcmin, arcsec = DESIGNATION.search(row["note"]).groups()
    if "." not in seconds:  # 2MASS Jhhmmssss+ddmmsss: implied decimals
        seconds, arcsec = seconds[:2] + "." + seconds[2:], arcsec[:2] + "." + arcsec[2:]
    named = SkyCoord(f"{hours}h{minutes}m{seconds}s {degrees}d{arcmin}m{arcsec}s")
    found = lookup.resolve(row["designation"], OFFLINE)
    assert separation_deg(found, named.ra.deg, named.dec.deg) < 1 * ARCSEC


def test_every_exoplanet_alias_names_one_star():
    seen: dict[str, str] = {}
    for row in exoplanet_rows():
        for alias in [row["designation"], *filter(None, row["aliases"].split(";"))]:
            key = catalogs.normalise(alias)
            assert seen.setdefault(key, row["designation"]) == row["designation"], alias


# --- 3. online: CDS Sesame --------------------------------------------------------------


def test_online_only_when_offline_fails(fake_sesame):
    found = lookup.resolve("M42", online(fake_sesame.url))
    assert found.source == "OpenNGC"
    assert fake_sesame.requests == []


def test_a_name_only_sesame_knows_resolves_online(fake_sesame):
    found = lookup.resolve("TOI-700", online(fake_sesame.url))
    assert (found.source, found.name) == ("online", "TOI-700")
    assert (found.ra, found.dec) == pytest.approx((97.0963, -65.5791))
    assert fake_sesame.requests == ["/cgi-bin/nph-sesame/SNV?TOI-700"]


def test_a_name_sesame_does_not_know_is_not_found(fake_sesame):
    with pytest.raises(lookup.NotFound, match="Sesame"):
        lookup.resolve("no such star anywhere", online(fake_sesame.url))


def test_answers_are_cached_found_or_not(fake_sesame):
    options = online(fake_sesame.url)
    first = lookup.resolve("V1298 Tau", options)
    with pytest.raises(lookup.NotFound):
        lookup.resolve("not a star", options)
    assert len(fake_sesame.requests) == 2

    assert lookup.resolve("v1298 tau", options) == first
    with pytest.raises(lookup.NotFound):
        lookup.resolve("not a star", options)
    assert len(fake_sesame.requests) == 2


def test_unreachable_sesame_is_503_material_but_offline_targets_still_resolve():
    options = online(closed_port_url())
    assert lookup.resolve("Vega", options).source == "IAU bright stars"
    with pytest.raises(lookup.ResolverUnavailable, match="could not be reached"):
        lookup.resolve("TOI-700", options)


def test_a_slow_sesame_times_out_quickly(fake_sesame):
    fake_sesame.mode, fake_sesame.delay = "slow", 5.0
    started = time.monotonic()
    with pytest.raises(lookup.ResolverUnavailable):
        lookup.resolve("TOI-700", online(fake_sesame.url, timeout=0.5))
    assert time.monotonic() - started < 3


def test_a_failure_is_not_cached(fake_sesame):
    fake_sesame.mode = "error"
    with pytest.raises(lookup.ResolverUnavailable):
        lookup.resolve("TOI-700", online(fake_sesame.url))
    fake_sesame.mode = "answer"
    assert lookup.resolve("TOI-700", online(fake_sesame.url)).source == "online"


def test_the_next_mirror_answers_when_the_first_is_down(fake_sesame):
    found = lookup.resolve("TOI-700", online(closed_port_url(), fake_sesame.url))
    assert found.source == "online"


def test_online_lookup_can_be_turned_off(fake_sesame, monkeypatch):
    monkeypatch.setenv("LOOKUP_ONLINE", "false")
    monkeypatch.setenv("LOOKUP_SESAME_URLS", fake_sesame.url)
    with pytest.raises(lookup.NotFound, match="turned off"):
        lookup.resolve("TOI-700")
    assert fake_sesame.requests == []


def test_options_come_from_the_environment():
    options = lookup.LookupOptions.from_env(
        {"LOOKUP_ONLINE": "off", "LOOKUP_SESAME_URLS": "http://a/, http://b/", "LOOKUP_TIMEOUT": "1.5"}
    )
    assert options == lookup.LookupOptions(online=False, sesame_urls=("http://a/", "http://b/"), timeout=1.5)
    assert lookup.LookupOptions.from_env({}).mirrors == sesame.default_mirrors()
    with pytest.raises(ValueError, match="LOOKUP_ONLINE"):
        lookup.LookupOptions.from_env({"LOOKUP_ONLINE": "maybe"})
