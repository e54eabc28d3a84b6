"""Topics on Google Cloud Pub/Sub through google-cloud-pubsub.

With ``PUBSUB_EMULATOR_HOST`` set the client library talks to the emulator.
"""

from __future__ import annotations

from google.cloud import pubsub_v1

from panoptes_network.ports.topics import Topics

PUBLISH_TIMEOUT_SECONDS = 60


class PubSubTopics(Topics):
    def __init__(self, project: str, publisher: pubsub_v1.PublisherClient | None = None):
        self.project = project
        self.publisher = publisher or pubsub_v1.PublisherClient()

    def _publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        future = self.publisher.publish(self.publisher.topic_path(self.project, topic), data, **attributes)
        return future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
