"""record-image: a frame's header into the images, observations and units documents (Cloud Function gen2)."""

import functions_framework

from panoptes_network.config import settings
from panoptes_network.handlers import handle_cloud_event
from panoptes_network.messages import bucket_path_of
from panoptes_network.pipeline.record import record_object


@functions_framework.cloud_event
def record_image(cloud_event):
    handle_cloud_event(cloud_event, "record-image", lambda message: record_object(bucket_path_of(message), settings()))
