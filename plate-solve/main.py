"""plate-solve: a frame without a WCS -> its TAN-SIP solution (Cloud Run, Pub/Sub push)."""

from flask import Flask, request

from panoptes_network.config import settings
from panoptes_network.handlers import handle_push
from panoptes_network.messages import bucket_path_of
from panoptes_network.pipeline.platesolve import solve_object

app = Flask(__name__)


@app.post("/")
def plate_solve():
    return handle_push(request, "plate-solve", lambda message: solve_object(bucket_path_of(message), settings()))
