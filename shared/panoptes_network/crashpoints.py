"""Named points where the tests kill a process, to prove that no crash loses work.

``PANOPTES_CRASH_AT=NAME`` makes the process end at once (``os._exit``: no cleanup, no
``finally``, as ``kill -9`` would) the first time it reaches the point ``NAME``, with
exit status :data:`EXIT_STATUS` so that a test knows it died there and nowhere else.
``PANOPTES_HANG_AT=NAME`` makes it stop there instead, for a test that kills it itself.
Unset, as everywhere outside the tests, a point costs one environment lookup.

The points, in the order a frame meets them:

- ``bucket:temp-written``: an object's bytes are in its temporary file, not yet committed;
- ``bucket:committed``: the object is committed, its finalize notification not yet sent;
- ``bucket:notified``: the notification is sent, not yet crossed off the outbox;
- ``compress-fits:read``, ``compress-fits:compressed``, ``compress-fits:deleted``: after
  reading the ``.fits``, after compressing and verifying it, after deleting it;
- ``record-image:read``: the header read, nothing recorded yet;
- ``documents:mid-transaction``: part of a transaction's writes made, not committed;
- ``process-observation:lightcurves-written``, ``process-observation:stars-updated``: a
  run's lightcurves written, not yet its stars; its stars updated, the run not yet complete.
"""

from __future__ import annotations

import os
import time

EXIT_STATUS = 86


def reached(name: str) -> None:
    if os.environ.get("PANOPTES_CRASH_AT") == name:
        os._exit(EXIT_STATUS)
    if os.environ.get("PANOPTES_HANG_AT") == name:
        while True:
            time.sleep(60)
