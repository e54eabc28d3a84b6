"""compress-fits: fpack a .fits losslessly, verify, then remove the original (Cloud Run).

``POST /reconcile`` runs ``panoptes-network reconcile --fix`` (Cloud Scheduler calls it when
``bin/deploy compress-fits --schedule-reconcile CRON`` set that up), with the same token
check as the pushes: this service already reads the raw bucket and writes the documents.
"""

from flask import Flask, request

from panoptes_network import auth, log, reconcile
from panoptes_network.config import settings
from panoptes_network.handlers import handle_push
from panoptes_network.messages import bucket_path_of
from panoptes_network.pipeline.compress import compress_object

app = Flask(__name__)


@app.post("/")
def compress_fits():
    return handle_push(request, "compress-fits", lambda message: compress_object(bucket_path_of(message), settings()))


@app.post("/reconcile")
def reconcile_on_schedule():
    refusal = auth.push_refusal(request.headers)  # only when PUSH_AUDIENCE is configured
    if refusal:
        return {"error": refusal.reason}, refusal.status
    result = reconcile.summary(reconcile.reconcile(settings(), fix=True))
    log.info("reconcile: done", **result)
    return result, 200
