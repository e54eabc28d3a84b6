"""The topic port: publish a message. Delivery is the transport's job.

Adapters: :mod:`panoptes_network.adapters.local_queue` (a durable SQLite queue that
pushes to the subscribed handler) and :mod:`panoptes_network.adapters.pubsub_topics`
(google-cloud-pubsub).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Mapping

from panoptes_network.messages import encode_data


@dataclass(frozen=True)
class Subscription:
    """A push subscription: messages on ``topic`` go to the handler of ``service``."""

    name: str
    topic: str
    service: str


class Topics(abc.ABC):
    @abc.abstractmethod
    def _publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        """Publish encoded data; return the message id."""

    def publish(
        self,
        topic: str,
        data: bytes | str | Mapping[str, Any],
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Publish ``data`` (a dict is sent as JSON) with string ``attributes``."""
        attributes = {str(key): str(value) for key, value in (attributes or {}).items()}
        return self._publish(topic, encode_data(data), attributes)
