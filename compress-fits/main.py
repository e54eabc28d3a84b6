"""compress-fits: fpack a .fits losslessly, verify, then remove the original (Cloud Run)."""

from flask import Flask, request

from panoptes_network.config import settings
from panoptes_network.handlers import handle_push
from panoptes_network.messages import bucket_path_of
from panoptes_network.pipeline.compress import compress_object

app = Flask(__name__)


@app.post("/")
def compress_fits():
    return handle_push(request, "compress-fits", lambda message: compress_object(bucket_path_of(message), settings()))
