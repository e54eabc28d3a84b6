"""The conventions of the public HTTP services (get-fits-header, lookup-field).

Each answers ``GET`` with query parameters and ``POST`` with a JSON object body (query
parameters, if any, are merged under the body's), answers the CORS preflight
(``OPTIONS``), sets ``Access-Control-Allow-Origin`` on every answer, and always replies
JSON with a ``success`` field. A problem the caller can fix is an :class:`HttpError`
(4xx, with a ``msg`` saying what to fix); anything else is logged and answered with a
500 that says so, never a stack trace.

A handler is one call::

    @functions_framework.http
    def lookup_field(request):
        return http.serve_json(request, "lookup-field", lookup_field_api.respond)
"""

from __future__ import annotations

import json
import traceback
from typing import Any, Callable, Mapping

import flask

from panoptes_network import log

ALLOWED_METHODS = ("GET", "POST", "OPTIONS")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "3600",
}
MAX_BODY_BYTES = 64 * 1024  # parameters only: a few hundred bytes in practice

Params = Mapping[str, Any]


class HttpError(Exception):
    """A request the service cannot answer as asked; ``msg`` tells the caller what to fix."""

    def __init__(self, status: int, msg: str, **fields: Any):
        super().__init__(msg)
        self.status, self.msg, self.fields = status, msg, fields


def json_response(payload: Mapping[str, Any], status: int = 200) -> flask.Response:
    response = flask.Response(
        json.dumps(payload, allow_nan=False, ensure_ascii=False), status=status, mimetype="application/json"
    )
    response.headers.update(CORS_HEADERS)
    return response


def error_response(status: int, msg: str, **fields: Any) -> flask.Response:
    return json_response({"success": False, "msg": msg, **fields}, status)


def request_params(request: flask.Request) -> dict[str, Any]:
    """The query parameters, overlaid with the JSON object body of a POST."""
    params: dict[str, Any] = dict(request.args.items())
    if request.method != "POST":
        return params
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise HttpError(413, f"the body is larger than {MAX_BODY_BYTES} bytes; send only the parameters")
    body = request.get_data(cache=True)
    if len(body) > MAX_BODY_BYTES:
        raise HttpError(413, f"the body is larger than {MAX_BODY_BYTES} bytes; send only the parameters")
    if not body.strip():
        return params
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise HttpError(400, f"the body is not valid JSON ({error}); send a JSON object of parameters") from None
    if not isinstance(decoded, dict):
        raise HttpError(400, f"the body is JSON {type(decoded).__name__}, not an object; send {{\"name\": value}}")
    params.update(decoded)
    return params


def text_param(params: Params, name: str, *, required: bool = True, max_length: int = 1024) -> str | None:
    """A string parameter, stripped; :class:`HttpError` 400 if missing (when required) or unfit."""
    value = params.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise HttpError(400, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise HttpError(400, f"{name} must be a string, not {type(value).__name__}")
    if len(value) > max_length:
        raise HttpError(400, f"{name} is longer than {max_length} characters")
    if any(ord(character) < 32 for character in value):
        raise HttpError(400, f"{name} contains control characters")
    return value.strip()


def int_param(params: Params, name: str, *, minimum: int = 0, maximum: int = 10_000) -> int | None:
    """An optional whole-number parameter, given as a number or as digits."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise HttpError(400, f"{name} must be a whole number, not {json.dumps(value)[:40]}")
    text = str(value).strip()
    if not text.isascii() or not text.lstrip("+-").isdigit() or len(text) > 12:
        raise HttpError(400, f"{name} must be a whole number, not {text[:40]!r}")
    number = int(text)
    if not minimum <= number <= maximum:
        raise HttpError(400, f"{name} must be between {minimum} and {maximum}, not {number}")
    return number


def bool_param(params: Params, name: str) -> bool:
    """An optional switch: true/false, 1/0, yes/no (or a JSON boolean); absent is false."""
    value = params.get(name)
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise HttpError(400, f"{name} must be true or false, not {text[:40]!r}")


def serve_json(
    request: flask.Request, service: str, respond: Callable[[dict[str, Any]], Mapping[str, Any]]
) -> flask.Response:
    """Answer one request: preflight, method check, parameters, then ``respond(params)``.

    ``respond`` returns the success payload (``success: true`` is added) or raises
    :class:`HttpError`.
    """
    if request.method == "OPTIONS":
        response = flask.Response(status=204)
        response.headers.update(CORS_HEADERS)
        return response
    if request.method not in ALLOWED_METHODS:
        response = error_response(405, f"{request.method} is not supported; use GET with query parameters or POST JSON")
        response.headers["Allow"] = ", ".join(ALLOWED_METHODS)
        return response
    try:
        payload = respond(request_params(request))
    except HttpError as error:
        if error.status >= 500:
            log.warning(f"{service}: {error.msg}", service=service, status=error.status)
        return error_response(error.status, error.msg, **error.fields)
    except Exception as error:  # the caller gets a clear 500; the log gets the details
        log.error(f"{service}: unexpected {type(error).__name__}: {error}", service=service,
                  path=request.full_path, traceback=traceback.format_exc())
        what = type(error).__name__
        return error_response(500, f"{service} failed unexpectedly ({what}); this is a bug, please report it")
    return json_response({"success": True, **payload})
