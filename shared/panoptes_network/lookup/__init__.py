"""Where on the sky is it? A search string to ICRS degrees.

:func:`resolve` tries, in order:

1. coordinates typed by the user (decimal degrees, sexagesimal, galactic), converted
   with astropy (:mod:`.coordinates`);
2. catalogs that ship with the project or its dependencies, so common targets resolve
   offline (:mod:`.catalogs`): OpenNGC (Messier, NGC, IC), the IAU-named bright stars,
   and a curated table of exoplanet hosts;
3. CDS Sesame online (:mod:`.sesame`), only when all of that fails, with a short
   timeout and a cache, unless configuration turns it off.

Configuration (environment): ``LOOKUP_ONLINE`` (``true``; ``false``/``0``/``no``/``off``
turns step 3 off), ``LOOKUP_SESAME_URLS`` (comma-separated mirrors; default astropy's),
``LOOKUP_TIMEOUT`` (seconds per mirror, default 3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from panoptes_network.lookup import catalogs, coordinates, sesame
from panoptes_network.lookup.coordinates import InvalidCoordinates

MAX_SEARCH_LENGTH = 200
DEFAULT_TIMEOUT_SECONDS = 3.0
COORDINATES = "coordinates"
ONLINE = "online"

__all__ = [
    "InvalidSearch",
    "LookupOptions",
    "NotFound",
    "Resolution",
    "ResolverUnavailable",
    "resolve",
]


class InvalidSearch(ValueError):
    """A search string that cannot be looked up as given (empty, too long, impossible coordinates)."""


class NotFound(LookupError):
    """Nothing answers to the search string."""


class ResolverUnavailable(RuntimeError):
    """The offline catalogs have no match and the online resolver could not be reached."""


@dataclass(frozen=True)
class Resolution:
    ra: float  # ICRS degrees, 0 <= ra < 360
    dec: float  # ICRS degrees
    source: str  # "coordinates", a catalog's name (catalogs.OFFLINE_CATALOGS), or "online"
    name: str | None = None  # the catalog's name for the object, when there is one


@dataclass(frozen=True)
class LookupOptions:
    online: bool = True
    sesame_urls: tuple[str, ...] = ()  # empty: astropy's mirrors
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LookupOptions:
        env = os.environ if env is None else env
        switch = env.get("LOOKUP_ONLINE", "true").strip().lower()
        if switch not in ("", "1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"LOOKUP_ONLINE must be true or false, not {switch!r}")
        urls = tuple(url.strip() for url in env.get("LOOKUP_SESAME_URLS", "").split(",") if url.strip())
        try:
            timeout = float(env.get("LOOKUP_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))
        except ValueError:
            raise ValueError(f"LOOKUP_TIMEOUT must be a number of seconds, not {env['LOOKUP_TIMEOUT']!r}") from None
        if not 0 < timeout <= 60:
            raise ValueError(f"LOOKUP_TIMEOUT must be between 0 and 60 seconds, not {timeout}")
        return cls(online=switch not in ("0", "false", "no", "off"), sesame_urls=urls, timeout=timeout)

    @property
    def mirrors(self) -> tuple[str, ...]:
        return self.sesame_urls or sesame.default_mirrors()


def resolve_offline(search_string: str) -> Resolution | None:
    """Steps 1 and 2: typed coordinates, then the shipped catalogs; None if neither knows it."""
    try:
        typed = coordinates.parse(search_string)
    except InvalidCoordinates as error:
        raise InvalidSearch(str(error)) from None
    if typed is not None:
        return Resolution(typed[0], typed[1], COORDINATES)
    for catalog in catalogs.OFFLINE_CATALOGS:
        entry = catalog.find(search_string)
        if entry is not None:
            return Resolution(entry.ra, entry.dec, catalog.name, entry.name)
    return None


def resolve(search_string: str, options: LookupOptions | None = None) -> Resolution:
    """ICRS degrees for ``search_string``.

    Raises :class:`InvalidSearch` (fix the input), :class:`NotFound`, or
    :class:`ResolverUnavailable` (offline failed and Sesame could not be reached).
    """
    if not isinstance(search_string, str) or not search_string.strip():
        raise InvalidSearch("the search string is empty; give a name (M42, WASP-33, Vega) or coordinates")
    search_string = " ".join(search_string.split())
    if len(search_string) > MAX_SEARCH_LENGTH:
        raise InvalidSearch(f"the search string is longer than {MAX_SEARCH_LENGTH} characters")
    if any(ord(character) < 32 for character in search_string):
        raise InvalidSearch("the search string contains control characters")
    options = options or LookupOptions.from_env()

    found = resolve_offline(search_string)
    if found is not None:
        return found
    offline = ", ".join(catalog.name for catalog in catalogs.OFFLINE_CATALOGS)
    if not options.online:
        raise NotFound(f"{search_string!r} is not coordinates and not in the offline catalogs ({offline}); "
                       "online lookup is turned off (LOOKUP_ONLINE)")
    try:
        answer = sesame.query(search_string, options.mirrors, options.timeout)
    except sesame.SesameUnavailable as error:
        raise ResolverUnavailable(f"{search_string!r} is not in the offline catalogs ({offline}) and the online "
                                  f"resolver (CDS Sesame) could not be reached: {error}") from None
    if answer.ra is None:
        raise NotFound(f"{search_string!r} is not coordinates, not in the offline catalogs ({offline}), "
                       "and CDS Sesame (SIMBAD, NED, VizieR) does not know it")
    return Resolution(answer.ra, answer.dec, ONLINE, answer.name)
