"""How the services are wired together: which topic feeds which handler.

The local queue, the emulator stack and ``bin/deploy`` all read this one table.
"""

from __future__ import annotations

from panoptes_network.config import Settings
from panoptes_network.ports.topics import Subscription


def subscriptions(settings: Settings) -> list[Subscription]:
    return [
        # Cloud Storage finalize notifications of the raw bucket (Eventarc in production).
        Subscription("image-uploaded", settings.uploads_topic, "image-uploaded"),
        Subscription("compress-fits", settings.compress_topic, "compress-fits"),
        Subscription("record-image", settings.record_topic, "record-image"),
        Subscription("make-rgb-fits", settings.rgb_topic, "make-rgb-fits"),
        Subscription("plate-solve", settings.plate_solve_topic, "plate-solve"),
        Subscription("process-observation", settings.process_observation_topic, "process-observation"),
    ]
