"""Online name resolution with CDS Sesame (SIMBAD, then NED, then VizieR).

The mirrors and the database order are astropy's (``astropy.coordinates.name_resolve``
``sesame_url`` and ``sesame_database``), and the request is the one astropy's
``get_icrs_coordinates`` sends (``<mirror>/SNV?<name>``, Sesame's plain-text answer,
whose ``%J`` line holds ICRS J2000 degrees). It is sent here rather than through
``get_icrs_coordinates`` for two reasons: that function leaves a temporary file per
query until the process exits (in a long-running service, an unbounded pile), and it
raises one exception type both for "Sesame does not know this name" and for "Sesame
could not be reached", which this service must answer differently (404 vs 503).

Answers (positions and "nothing found") are cached in memory; failures are not.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass

POSITION = re.compile(r"^%J\s+([+-]?[0-9.]+)\s+([+-]?[0-9.]+)", re.MULTILINE)
IDENTIFIER = re.compile(r"^%I\.0\s+(.+?)\s*$", re.MULTILINE)
NOTHING_FOUND = re.compile(r"^#!.*nothing found", re.MULTILINE | re.IGNORECASE)
MAX_ANSWER_BYTES = 256 * 1024

FOUND_TTL_SECONDS = 24 * 3600
MISSING_TTL_SECONDS = 15 * 60
CACHE_SIZE = 1024


class SesameUnavailable(RuntimeError):
    """No Sesame mirror gave an answer (refused, timed out, or answered with an error)."""


@dataclass(frozen=True)
class SesameAnswer:
    ra: float | None  # ICRS degrees; None when Sesame found nothing
    dec: float | None
    name: str | None  # the main identifier Sesame reports


def default_mirrors() -> tuple[str, ...]:
    from astropy.coordinates import name_resolve

    return tuple(name_resolve.sesame_url.get())


def default_database() -> str:
    """Sesame's database letters for astropy's ``sesame_database`` ("all" -> SIMBAD, NED, VizieR)."""
    from astropy.coordinates import name_resolve

    database = name_resolve.sesame_database.get()
    return "SNV" if database == "all" else database.upper()[0]


def parse_answer(text: str) -> SesameAnswer:
    """Sesame's plain-text answer; raise :class:`SesameUnavailable` if it is neither a position nor "nothing found"."""
    position = POSITION.search(text)
    if position:
        ra, dec = float(position.group(1)), float(position.group(2))
        if not (0 <= ra <= 360 and -90 <= dec <= 90):
            raise SesameUnavailable(f"Sesame answered an impossible position ({ra}, {dec})")
        identifier = IDENTIFIER.search(text)
        return SesameAnswer(ra % 360.0, dec, identifier.group(1) if identifier else None)
    if NOTHING_FOUND.search(text):
        return SesameAnswer(None, None, None)
    raise SesameUnavailable(f"Sesame's answer holds neither a position nor 'nothing found': {text[:120]!r}")


class _Cache:
    def __init__(self, size: int):
        self.size = size
        self.entries: OrderedDict[tuple, tuple[float, SesameAnswer]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> SesameAnswer | None:
        with self.lock:
            found = self.entries.get(key)
            if found is None:
                return None
            expires, answer = found
            if expires < time.monotonic():
                del self.entries[key]
                return None
            self.entries.move_to_end(key)
            return answer

    def put(self, key: tuple, answer: SesameAnswer) -> None:
        ttl = FOUND_TTL_SECONDS if answer.ra is not None else MISSING_TTL_SECONDS
        with self.lock:
            self.entries[key] = (time.monotonic() + ttl, answer)
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


_cache = _Cache(CACHE_SIZE)


def clear_cache() -> None:
    _cache.clear()


def _fetch(url: str, timeout: float) -> str:
    request = urllib.request.Request(url, headers={"User-Agent": "panoptes-network lookup-field"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read(MAX_ANSWER_BYTES).decode("utf-8", errors="replace")


def query(name: str, mirrors: tuple[str, ...], timeout: float, database: str | None = None) -> SesameAnswer:
    """Ask each mirror in turn until one answers; cached. :class:`SesameUnavailable` if none does."""
    database = database or default_database()
    key = (name.strip().lower(), mirrors, database)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    failures = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{database}?{urllib.parse.quote(name)}"
        try:
            answer = parse_answer(_fetch(url, timeout))
        except (urllib.error.URLError, OSError, SesameUnavailable) as error:  # timeouts are OSErrors
            failures.append(f"{mirror}: {getattr(error, 'reason', error)}")
            continue
        _cache.put(key, answer)
        return answer
    raise SesameUnavailable("; ".join(failures) or "no Sesame mirror is configured")
