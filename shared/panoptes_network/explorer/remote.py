"""Name resolution and FITS headers, through issue #5's lookup-field and get-fits-header.

By default the explorer calls the two services' code in its own process
(:mod:`panoptes_network.api.lookup_field`, :mod:`panoptes_network.api.fits_header`):
the same answers as their HTTP endpoints, one network hop fewer. Deployed, where those
are separate functions with their own dependencies, ``LOOKUP_FIELD_URL`` and
``GET_FITS_HEADER_URL`` make the explorer call their endpoints instead.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Mapping

from panoptes_network.config import Settings
from panoptes_network.explorer.search import ParameterError

TIMEOUT_SECONDS = 10.0


class RemoteError(RuntimeError):
    """A service answered with an error the user cannot fix by changing a parameter (or did not answer)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _call_http(url: str, params: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    full = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(full, timeout=TIMEOUT_SECONDS) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read())
        except ValueError:
            return error.code, {"success": False, "msg": f"{url} answered {error.code}"}
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise RemoteError(503, f"{url} could not be reached: {error}") from None


def _call_in_process(respond: Callable[[Mapping[str, Any]], dict], params: Mapping[str, str]) -> tuple[int, dict]:
    from panoptes_network.http import HttpError

    try:
        return 200, {"success": True, **respond(params)}
    except HttpError as error:
        return error.status, {"success": False, "msg": error.msg}


def resolve(target: str) -> tuple[float, float, str]:
    """``(ra, dec, source)`` for an object name or typed coordinates; ParameterError('target') if unknown."""
    url = os.environ.get("LOOKUP_FIELD_URL", "").strip()
    params = {"search_string": target}
    if url:
        status, payload = _call_http(url, params)
    else:
        from panoptes_network.api import lookup_field

        status, payload = _call_in_process(lookup_field.respond, params)
    if status == 200 and payload.get("success"):
        return float(payload["ra"]), float(payload["dec"]), str(payload.get("source", "lookup"))
    message = payload.get("msg") or f"lookup-field answered {status}"
    if status in (400, 404):
        raise ParameterError("target", f"target {target!r} could not be resolved: {message}")
    raise RemoteError(503 if status >= 500 else status, f"name resolution failed: {message}")


def frame_header(bucket_path: str, settings: Settings) -> dict[str, Any]:
    """get-fits-header's answer for a frame in the raw bucket: ``{"header": {...}, "hdu": ..., ...}``."""
    url = os.environ.get("GET_FITS_HEADER_URL", "").strip()
    params = {"bucket_path": bucket_path, "bucket_name": settings.raw_bucket}
    if url:
        status, payload = _call_http(url, params)
    else:
        from panoptes_network.api import fits_header

        status, payload = _call_in_process(lambda p: fits_header.respond(p, settings), params)
    if status == 200 and payload.get("success"):
        return payload
    raise RemoteError(status if status >= 400 else 502, payload.get("msg") or f"get-fits-header answered {status}")
