"""One line per event on stdout: JSON, the structured form Cloud Logging parses, or text.

``severity`` and ``message`` are Cloud Logging's special fields; everything else lands
in ``jsonPayload`` where it can be filtered on (``jsonPayload.image_id="PAN001_..."``).

JSON is the default, for Cloud Logging and for files. ``PANOPTES_LOG_FORMAT=text`` gives
one short line per event for a person at a console (``panoptes-network up`` sets it when
its stdout is a terminal, or as ``--log-format`` says): time, severity, the message and
the one field that says which frame or why, never payloads or tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date, datetime
from typing import Any, TextIO

SEVERITIES = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("json", "text")
FORMAT_VARIABLE = "PANOPTES_LOG_FORMAT"  # an environment variable: worker processes inherit it
TEXT_DETAILS = ("bucket_path", "reason", "error", "last_error")  # the first one not in the message
MAX_TEXT_LINE = 200


def console_format(choice: str | None, stream: TextIO) -> str:
    """The format ``choice`` names, else text for a terminal and JSON for anything else."""
    if choice:
        return choice
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def _format() -> str:
    return "text" if os.environ.get(FORMAT_VARIABLE, "").strip().lower() == "text" else "json"


def text_line(entry: dict[str, Any], now: datetime | None = None) -> str:
    """``HH:MM:SS SEVERITY message (detail)`` on one line of at most :data:`MAX_TEXT_LINE` characters."""
    message = str(entry["message"])
    for key in TEXT_DETAILS:
        detail = entry.get(key)
        if detail is not None and str(detail) not in message:
            message += f" ({_default(detail) if not isinstance(detail, str) else detail})"
            break
    line = f"{(now or datetime.now()):%H:%M:%S} {entry['severity']:<7} {' '.join(message.split())}"
    return line if len(line) <= MAX_TEXT_LINE else line[: MAX_TEXT_LINE - 1] + "…"


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def log(severity: str, message: str, **fields: Any) -> dict[str, Any]:
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    entry = {"severity": severity, "message": message}
    entry.update({key: value for key, value in fields.items() if value is not None})
    line = text_line(entry) if _format() == "text" else json.dumps(entry, default=_default, sort_keys=False)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return entry


def info(message: str, **fields: Any) -> dict[str, Any]:
    return log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> dict[str, Any]:
    return log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> dict[str, Any]:
    return log("ERROR", message, **fields)
