"""lookup-field: ICRS degrees for a name or typed coordinates (see :mod:`panoptes_network.lookup`).

Parameter: ``search_string``. 400 for input to fix, 404 when nothing answers to it, 503
when only the online resolver could have answered and it was unreachable.
"""

from __future__ import annotations

from typing import Any, Mapping

from panoptes_network import log, lookup
from panoptes_network.http import HttpError, text_param

SERVICE = "lookup-field"


def respond(params: Mapping[str, Any]) -> dict[str, Any]:
    search_string = text_param(params, "search_string", max_length=lookup.MAX_SEARCH_LENGTH)
    try:
        found = lookup.resolve(search_string)
    except lookup.InvalidSearch as error:
        raise HttpError(400, str(error), search_string=search_string) from None
    except lookup.NotFound as error:
        raise HttpError(404, str(error), search_string=search_string) from None
    except lookup.ResolverUnavailable as error:
        raise HttpError(503, str(error), search_string=search_string) from None
    log.info(f"{SERVICE}: {search_string!r} -> {found.source}", service=SERVICE, source=found.source)
    payload = {"search_string": search_string, "ra": found.ra, "dec": found.dec, "source": found.source}
    if found.name:
        payload["name"] = found.name
    return payload
