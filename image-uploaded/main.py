"""image-uploaded: route every object finalized in the raw bucket (Cloud Function gen2).

Accepts the Eventarc CloudEvent (``google.cloud.storage.object.v1.finalized``) and the
Cloud Storage Pub/Sub notification pushed through a subscription.
"""

import functions_framework

from panoptes_network import log
from panoptes_network.config import settings
from panoptes_network.messages import BadMessage, finalized_object
from panoptes_network.pipeline.routing import route_object


@functions_framework.cloud_event
def image_uploaded(cloud_event):
    try:
        obj = finalized_object(cloud_event)
    except BadMessage as error:
        log.error(f"image-uploaded: unusable event: {error}", service="image-uploaded")
        return  # retrying cannot fix the event itself
    if obj is None:
        log.info("image-uploaded: not a finalize event; ignored", service="image-uploaded")
        return
    outcome = route_object(obj, settings())
    log.info(f"image-uploaded: {outcome['outcome']} {obj.name}", service="image-uploaded", **outcome)
