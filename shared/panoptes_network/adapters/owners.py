"""Who holds a lease, an unsent notification or a temporary file of the local backend.

The holder is a process, named ``PID-START@HOST``: START is when the process started, in
clock ticks after boot (Linux ``/proc/PID/stat``), so a new process that was given a dead
one's pid has another name, and the dead one's leases are not taken for live. Where
there is no ``/proc`` (macOS), START is 0 and only "is that pid alive" can be asked.

An owner is called gone only when that is certain: on this host, and no process runs
with its pid and start time (a zombie counts as gone: it will never ack). An owner on
another host (a data directory shared over the network) is never called gone; its
leases run out at the ack deadline instead.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from functools import lru_cache

_OWNER = re.compile(r"^(\d+)-(\d+)@(.+)$")


@dataclass(frozen=True)
class Owner:
    pid: int
    started: int  # clock ticks after boot; 0 where the platform cannot say
    host: str

    def __str__(self) -> str:
        return f"{self.pid}-{self.started}@{self.host}"

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        match = _OWNER.match(text or "")
        return cls(int(match[1]), int(match[2]), match[3]) if match else None

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in ticks) of a running process, from /proc; None if it is not there."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:  # ENOENT: no such process
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])  # field 3 is the state, field 22 the start time


def _has_proc() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/stat")


@lru_cache(maxsize=None)
def _owner_of(pid: int) -> Owner:
    stat = _stat(pid) if _has_proc() else None
    return Owner(pid, stat[1] if stat else 0, socket.gethostname())


def current() -> Owner:
    """This process (asked again after a fork: the child is another owner)."""
    return _owner_of(os.getpid())


def is_gone(owner: Owner | str | None) -> bool:
    """True only if the owner is certainly dead (see the module's docstring)."""
    if isinstance(owner, str) or owner is None:
        owner = Owner.parse(owner)
        if owner is None:
            return False  # not a name this module gave: cannot tell
    if owner.host != socket.gethostname():
        return False
    if _has_proc():
        stat = _stat(owner.pid)
        return stat is None or stat[0] == "Z" or stat[1] != owner.started
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False
