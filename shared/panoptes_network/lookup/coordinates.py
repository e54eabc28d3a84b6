"""Coordinates typed by the user: decimal degrees, sexagesimal, or galactic.

Recognised forms (case does not matter, a comma may separate the two parts)::

    301.564 44.457                   decimal degrees (RA, Dec)
    20h06m15.4s +44d27m24.8s         sexagesimal with units (RA in hours, or 301d33m50s)
    20:06:15.4 +44:27:24.8           sexagesimal, RA in hours
    20 06 15.4 +44 27 24.8           six numbers, RA in hours
    ra=301.564 dec=44.457            labelled
    l=76.7 b=6.8   |   galactic 76.7 6.8   |   76.7 6.8 gal      galactic degrees

:func:`parse` returns ICRS degrees, ``None`` when the text is not coordinates at all
(it is then a name), and raises :class:`InvalidCoordinates` when it is coordinates but
not valid ones (Dec beyond 90 degrees, minutes past 60, ...), so the user hears why.
"""

from __future__ import annotations

import re
import warnings

import astropy.units as u
from astropy.coordinates import Angle, SkyCoord


class InvalidCoordinates(ValueError):
    """Text written as coordinates that do not describe a place on the sky."""


NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Digits and separators alternate (never two ways to match the same text: no backtracking blow-up).
ANGLE = re.compile(r"[+-]?[\d.]+(?:[\s:hmsd°'\"′″]+[\d.]+)*[\s:hmsd°'\"′″]*", re.IGNORECASE)
GALACTIC_LABELS = re.compile(r"l\s*[=:]?\s*(?P<first>.+?)\s*[,\s]\s*b\s*[=:]?\s*(?P<second>.+)", re.IGNORECASE)
EQUATORIAL_LABELS = re.compile(r"ra\s*[=:]?\s*(?P<first>.+?)\s*[,\s]\s*dec\s*[=:]?\s*(?P<second>.+)", re.IGNORECASE)
GALACTIC_WORD = re.compile(r"^(?:galactic|gal)\b[\s,:]*|[\s,]*\b(?:galactic|gal)$", re.IGNORECASE)


def _is_angle(text: str) -> bool:
    if NUMBER.fullmatch(text):
        return True
    return bool(ANGLE.fullmatch(text)) and any(character.isdigit() for character in text)


def _split(text: str) -> tuple[str, str] | None:
    """The two angles of ``text``, or None if it is not two angles."""
    if "," in text:
        parts = [part.strip() for part in text.split(",")]
        return (parts[0], parts[1]) if len(parts) == 2 and all(map(_is_angle, parts)) else None
    tokens = text.split()
    if len(tokens) == 2:
        pair = (tokens[0], tokens[1])
    elif len(tokens) == 6 and all(NUMBER.fullmatch(token) for token in tokens):
        pair = (" ".join(tokens[:3]), " ".join(tokens[3:]))
    else:
        signed = [index for index, token in enumerate(tokens) if index > 0 and token[:1] in "+-"]
        if len(signed) != 1:
            return None
        pair = (" ".join(tokens[: signed[0]]), " ".join(tokens[signed[0]:]))
    return pair if all(map(_is_angle, pair)) else None


def _angle(text: str, unit: u.Unit, what: str) -> float:
    """Degrees of ``text``: a plain number is degrees; otherwise ``unit`` unless it says otherwise."""
    if NUMBER.fullmatch(text):
        value = float(text)
    else:
        if unit is u.hourangle and re.search(r"[d°]", text, re.IGNORECASE):
            unit = u.deg  # "301d33m50s": RA written in degrees
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # astropy only warns about 61 seconds and the like
                value = Angle(text, unit=unit).deg
        except Exception as error:  # astropy's parser raises several types
            raise InvalidCoordinates(f"{what} {text!r} is not an angle astropy can read ({error})") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidCoordinates(f"{what} {text!r} is not a finite number")
    return value


def _check(value: float, low: float, high: float, what: str, text: str) -> float:
    if not low <= value <= high:
        raise InvalidCoordinates(f"{what} must be between {low:g} and {high:g} degrees; {text!r} is {value:g}")
    return value


def parse(text: str) -> tuple[float, float] | None:
    """ICRS (RA, Dec) in degrees from typed coordinates, or None if ``text`` is not coordinates."""
    text = " ".join(text.split())
    galactic = GALACTIC_LABELS.fullmatch(text)
    if galactic:
        pair = (galactic["first"].strip(" ,"), galactic["second"].strip(" ,"))
        pair = pair if all(map(_is_angle, pair)) else None
    elif GALACTIC_WORD.search(text):
        pair = _split(GALACTIC_WORD.sub("", text).strip())
        galactic = pair is not None
    else:
        labelled = EQUATORIAL_LABELS.fullmatch(text)
        pair = _split(text) if not labelled else (labelled["first"].strip(" ,"), labelled["second"].strip(" ,"))
        if pair is not None and not all(map(_is_angle, pair)):
            pair = None
    if pair is None:
        return None
    first, second = pair
    if galactic:
        l_deg = _check(_angle(first, u.deg, "galactic longitude l"), 0, 360, "galactic longitude l", first)
        b_deg = _check(_angle(second, u.deg, "galactic latitude b"), -90, 90, "galactic latitude b", second)
        icrs = SkyCoord(l=l_deg * u.deg, b=b_deg * u.deg, frame="galactic").icrs
        return float(icrs.ra.deg), float(icrs.dec.deg)
    ra = _check(_angle(first, u.hourangle, "RA"), 0, 360, "RA", first)
    dec = _check(_angle(second, u.deg, "Dec"), -90, 90, "Dec", second)
    return float(ra % 360.0), float(dec)
