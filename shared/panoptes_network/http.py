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
# A push carries one Pub/Sub message, at most 10 MB (Pub/Sub's quota), base64-encoded in
# its envelope (4/3 as large) beside a few fields: a body larger than that is no push.
PUBSUB_MAX_MESSAGE_BYTES = 10_000_000
MAX_PUSH_BODY_BYTES = 4 * -(-PUBSUB_MAX_MESSAGE_BYTES // 3) + 64 * 1024
# Our bodies nest four levels at most. Python's json recursion fails near 1,000 levels,
# and any code walking a decoded body recursively would too: refuse far earlier.
MAX_JSON_DEPTH = 32

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


def parse_json(body: bytes | str, what: str = "the body") -> Any:
    """``body`` decoded, or :class:`HttpError` 400 saying why it cannot be used.

    Beyond ``json.loads``: no nesting deeper than :data:`MAX_JSON_DEPTH`, and no lone
    surrogates (``"\\ud800"`` is valid JSON but no text: it fails wherever it is encoded).
    """
    try:
        decoded = json.loads(body)
    except RecursionError:
        raise HttpError(400, f"{what} nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise HttpError(400, f"{what} is not JSON ({error})") from None
    pending = [(decoded, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value, what)
        elif isinstance(value, (list, dict)):
            if depth > MAX_JSON_DEPTH:
                raise HttpError(400, f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key in value:
                    _check_text(key, what)
                value = value.values()
            pending.extend((item, depth + 1) for item in value)
    return decoded


def _check_text(text: str, what: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, f"{what} holds a lone surrogate (an unpaired \\ud800-\\udfff escape), "
                             "which is not text") from None


def read_body(request: flask.Request, limit: int, hint: str) -> bytes:
    """The request body, or :class:`HttpError` 413 if it is larger than ``limit`` bytes."""
    too_large = HttpError(413, f"the body is larger than {limit} bytes; {hint}")
    if request.content_length and request.content_length > limit:
        raise too_large
    body = request.get_data(cache=True) if request.content_length else request.stream.read(limit + 1)
    if len(body) > limit:
        raise too_large
    return body


def request_params(request: flask.Request) -> dict[str, Any]:
    """The query parameters, overlaid with the JSON object body of a POST."""
    params: dict[str, Any] = dict(request.args.items())
    if request.method != "POST":
        return params
    body = read_body(request, MAX_BODY_BYTES, "send only the parameters")
    if not body.strip():
        return params
    decoded = parse_json(body)
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
