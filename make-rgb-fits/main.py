"""make-rgb-fits: a raw camera frame (CR2, CR3, DNG) -> r, g, b FITS planes (Cloud Run)."""

from flask import Flask, request

from panoptes_network.config import settings
from panoptes_network.handlers import handle_push
from panoptes_network.messages import bucket_path_of
from panoptes_network.pipeline.rgb import make_rgb_fits

app = Flask(__name__)


@app.post("/")
def make_rgb_fits_view():
    return handle_push(
        request,
        "make-rgb-fits",
        lambda message: make_rgb_fits(bucket_path_of(message), message.json().get("rawpy_options"), settings()),
    )
