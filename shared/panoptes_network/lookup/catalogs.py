"""Catalogs that resolve names offline, shipped with the project or its dependencies.

- ``OpenNGC``: Messier, NGC and IC objects (and the other designations OpenNGC
  cross-references, plus its common names such as "Orion Nebula"), from the OpenNGC
  database that ``pyongc`` ships (CC-BY-SA-4.0, Mattia Verga).
- ``IAU bright stars``: the 116 IAU-named bright stars PyEphem ships (``ephem.stars``,
  Hipparcos positions carried to J2000.0).
- ``exoplanet hosts``: the curated table ``exoplanet_hosts.csv`` beside this file; its
  header states the source of every row.

Names match tolerant of case, spaces, dashes and underscores, and of leading zeros in
numbers: ``wasp 33`` = ``WASP-33``, ``m42`` = ``M 42`` = ``M042``.
"""

from __future__ import annotations

import csv
import functools
import math
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import astropy.units as u
from astropy.coordinates import Angle

EXOPLANET_TABLE = Path(__file__).with_name("exoplanet_hosts.csv")


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # the catalog's own name for the object
    ra: float  # ICRS degrees
    dec: float


def normalise(name: str) -> str:
    """The form names are compared in: upper case, no spaces/dashes/underscores, no leading zeros."""
    tokens = re.split(r"[\s_\-]+", name.strip().upper())
    return "".join(re.sub(r"\d+", lambda match: str(int(match.group())), token) for token in tokens)


# --- OpenNGC (pyongc) --------------------------------------------------------------------


def _ongc_candidates(name: str) -> list[str]:
    """The spellings of ``name`` that pyongc's own identifier patterns accept."""
    from pyongc import ongc

    spaced = " ".join(name.upper().split())
    joined = re.sub(r"[\s_]+|(?<=[A-Z])-(?=\d)", "", spaced)  # "NGC-7000" -> "NGC7000", keeps "ESO 12-34"'s dash
    candidates = []
    for candidate in (spaced, joined):
        if candidate not in candidates and any(re.match(p, candidate) for p in ongc.PATTERNS.values()):
            candidates.append(candidate)
    return candidates


@functools.cache
def _ongc_common_names() -> dict[str, str]:
    """Normalised common name -> OpenNGC name, read from the database pyongc ships."""
    import pyongc

    names: dict[str, str] = {}
    try:
        connection = sqlite3.connect(f"file:{pyongc.DBPATH}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT name, commonnames FROM objects WHERE commonnames != ''").fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return names  # another database layout: common names are a convenience, designations still work
    for object_name, common_names in rows:
        for common in str(common_names).split(","):
            if common.strip():
                names.setdefault(normalise(common), object_name)
    return names


def find_openngc(name: str) -> CatalogEntry | None:
    from pyongc import ongc

    candidates = _ongc_candidates(name)
    common = _ongc_common_names().get(normalise(name))
    if common:
        candidates.append(common)
    for candidate in candidates:
        try:
            dso = ongc.Dso(candidate)
        except (ongc.UnknownIdentifier, ongc.ObjectNotFound):
            continue
        coordinates = dso.rad_coords
        if coordinates is None:
            continue  # OpenNGC keeps a few objects without a position (nonexistent, unidentified)
        ra, dec = (math.degrees(float(value)) for value in coordinates)
        return CatalogEntry(dso.name, ra % 360.0, dec)
    return None


# --- IAU-named bright stars (PyEphem) ----------------------------------------------------


@functools.cache
def _bright_stars() -> dict[str, CatalogEntry]:
    import ephem.stars

    stars = {}
    for star_name in ephem.stars.stars:
        star = ephem.star(star_name)  # a FixedBody: _ra/_dec are its J2000 catalog position, radians
        stars[normalise(star_name)] = CatalogEntry(star_name, math.degrees(float(star._ra)), math.degrees(float(star._dec)))
    return stars


def find_bright_star(name: str) -> CatalogEntry | None:
    return _bright_stars().get(normalise(name))


# --- exoplanet hosts (curated table) -----------------------------------------------------


@functools.cache
def _exoplanet_hosts() -> dict[str, CatalogEntry]:
    hosts: dict[str, CatalogEntry] = {}
    with EXOPLANET_TABLE.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        for row in rows:
            entry = CatalogEntry(
                row["designation"],
                float(Angle(row["ra"], unit=u.hourangle).deg),
                float(Angle(row["dec"], unit=u.deg).deg),
            )
            for alias in [row["designation"], *row["aliases"].split(";")]:
                if alias.strip():
                    key = normalise(alias)
                    if key in hosts and hosts[key] != entry:
                        raise ValueError(f"{EXOPLANET_TABLE.name}: {alias!r} names two stars")
                    hosts[key] = entry
    return hosts


def find_exoplanet_host(name: str) -> CatalogEntry | None:
    return _exoplanet_hosts().get(normalise(name))


@dataclass(frozen=True)
class Catalog:
    name: str  # what the response's ``source`` says
    find: Callable[[str], CatalogEntry | None]


OFFLINE_CATALOGS = (
    Catalog("OpenNGC", find_openngc),
    Catalog("IAU bright stars", find_bright_star),
    Catalog("exoplanet hosts", find_exoplanet_host),
)
