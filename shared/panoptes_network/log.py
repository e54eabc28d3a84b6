"""One JSON line per event on stdout: the structured form Cloud Logging parses.

``severity`` and ``message`` are Cloud Logging's special fields; everything else lands
in ``jsonPayload`` where it can be filtered on (``jsonPayload.image_id="PAN001_..."``).
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Any

SEVERITIES = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")


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
    sys.stdout.write(json.dumps(entry, default=_default, sort_keys=False) + "\n")
    sys.stdout.flush()
    return entry


def info(message: str, **fields: Any) -> dict[str, Any]:
    return log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> dict[str, Any]:
    return log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> dict[str, Any]:
    return log("ERROR", message, **fields)
