"""process-observation: an observation's solved frames -> its run, lightcurves and stars (Cloud Run, Pub/Sub push)."""

from flask import Flask, request

from panoptes_network import auth, log, runtime
from panoptes_network.config import settings
from panoptes_network.handlers import handle_push
from panoptes_network.pipeline.process import SERVICE, pending, process_message, publish

app = Flask(__name__)


@app.post("/")
def process_observation():
    return handle_push(request, SERVICE, lambda message: process_message(message, settings()))


@app.post("/sweep")
def sweep_on_schedule():
    """``panoptes-network process --pending`` (Cloud Scheduler calls it; bin/deploy sets that up),
    with the same token check as the pushes."""
    refusal = auth.push_refusal(request.headers)  # only when PUSH_AUDIENCE is configured
    if refusal:
        return {"error": refusal.reason}, refusal.status
    current = settings()
    sent = publish(current, pending(runtime.documents(current)))
    log.info("process-observation: sweep", published=len(sent), sequence_ids=sent)
    return {"published": sent}, 200
