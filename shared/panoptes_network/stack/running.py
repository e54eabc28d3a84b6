"""Where the running stack serves, so that no command but ``up`` has to be told (or guess).

``up`` records its address when it starts: on the local backend in the data directory
(``stack.json``), on the gcp backend in the document ``stack/running`` (the project is
what the commands share there). ``drain``, ``status`` and ``demo`` read it and check the
stack answers; an address that no longer answers is a stack that stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from panoptes_network import runtime
from panoptes_network.config import Settings

COLLECTION, DOCUMENT = "stack", "running"
FILE_NAME = "stack.json"
START_HINT = "start it with `panoptes-network up` (in another shell)"


@dataclass(frozen=True)
class RunningStack:
    url: str  # where it answers, e.g. http://127.0.0.1:18555 (its /_stack/status)
    push_url: str  # where Pub/Sub pushes (up --public-url), else the same
    pid: int
    started: str


def _file(settings: Settings) -> Path:
    return settings.data_dir / FILE_NAME


def record(settings: Settings, url: str, push_url: str) -> RunningStack:
    stack = RunningStack(url, push_url, os.getpid(), datetime.now(timezone.utc).isoformat())
    if settings.backend == "local":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        temporary = _file(settings).with_suffix(".tmp")
        temporary.write_text(json.dumps(stack.__dict__))
        temporary.replace(_file(settings))
    else:
        runtime.documents(settings).set(COLLECTION, DOCUMENT, stack.__dict__, merge=False)
    return stack


def recorded(settings: Settings) -> RunningStack | None:
    """What the last ``up`` recorded, alive or not."""
    if settings.backend == "local":
        try:
            data = json.loads(_file(settings).read_text())
        except (OSError, ValueError):
            return None
    else:
        data = runtime.documents(settings).get(COLLECTION, DOCUMENT)
    try:
        return RunningStack(**data) if data else None
    except TypeError:
        return None


def forget(settings: Settings, stack: RunningStack) -> None:
    """On the way out of ``up``: unless another ``up`` has recorded itself since."""
    if recorded(settings) != stack:
        return
    if settings.backend == "local":
        _file(settings).unlink(missing_ok=True)
    else:
        runtime.documents(settings).delete(COLLECTION, DOCUMENT)


def find(settings: Settings) -> RunningStack | None:
    """The running stack, if one is recorded and answers."""
    from panoptes_network.stack.server import fetch_status

    stack = recorded(settings)
    if stack is None or fetch_status(stack.url) is None:
        return None
    return stack


def not_found_message(settings: Settings) -> str:
    stack = recorded(settings)
    where = (f"data directory {settings.data_dir}" if settings.backend == "local"
             else f"project {settings.project}")
    if stack is None:
        return f"no running stack is recorded for the {where}; {START_HINT}"
    return f"the stack recorded for the {where} at {stack.url} does not answer; {START_HINT}"
