"""What every Pub/Sub-driven handler does around its one call into the pipeline.

Success acknowledges. :class:`~panoptes_network.deadletter.PermanentError` (and a
message without what the job needs) is dead-lettered with its reason and acknowledged.
Anything else is a failure to retry: 500 for a push endpoint, an exception for a
CloudEvent function, and the transport redelivers with backoff.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from panoptes_network import auth, deadletter, http, log, runtime
from panoptes_network.messages import BadMessage, PubSubMessage, decode_push_envelope, message_from_cloud_event

Job = Callable[[PubSubMessage], dict[str, Any]]


def _run(service: str, message: PubSubMessage, job: Job) -> dict[str, Any]:
    try:
        result = job(message)
    except (deadletter.PermanentError, BadMessage) as error:
        reason = str(error)
        doc_id = deadletter.record(
            runtime.documents(),
            service=service,
            reason=reason,
            data=message.data,
            attributes=message.attributes,
            message_id=message.message_id,
            subscription=message.subscription,
            permanent=True,
        )
        log.error(f"{service}: dead-lettered: {reason}", service=service, message_id=message.message_id,
                  dead_letter=doc_id, data=message.data)
        return {"dead_lettered": doc_id, "reason": reason}
    except Exception as error:
        log.error(f"{service}: failed, will be retried: {error!r}", service=service,
                  message_id=message.message_id, data=message.data)
        raise
    log.info(f"{service}: {result.get('outcome', 'done')}", service=service, message_id=message.message_id,
             **result)
    return result


def read_push(request, service: str) -> tuple[bytes, Any]:
    """The raw and decoded JSON body of a push, after the checks every push endpoint makes.

    In order: the OIDC token (only when ``PUSH_AUDIENCE`` is configured; 401/403), the
    size (413 above what one Pub/Sub message can be), then the JSON (400 if it is not
    valid, not an object, too deeply nested or holds lone surrogates). Raises
    :class:`~panoptes_network.http.HttpError`; a push refused is never retried into success.
    """
    refusal = auth.push_refusal(request.headers)
    if refusal:
        log.warning(f"{service}: push refused: {refusal.reason}", service=service)
        raise http.HttpError(refusal.status, refusal.reason)
    try:
        body = http.read_body(request, http.MAX_PUSH_BODY_BYTES,
                              f"a Pub/Sub message is at most {http.PUBSUB_MAX_MESSAGE_BYTES} bytes")
        decoded = http.parse_json(body)
        if not isinstance(decoded, dict):
            raise http.HttpError(400, f"the body is JSON {type(decoded).__name__}, not an object; "
                                      "expected a Pub/Sub push envelope")
    except http.HttpError as error:
        log.warning(f"{service}: bad request: {error.msg}", service=service, status=error.status)
        raise
    return body, decoded


def handle_push(request, service: str, job: Job) -> tuple[str, int, dict[str, str]]:
    """A Flask view body for a Pub/Sub push endpoint (Cloud Run)."""
    try:
        message = decode_push_envelope(read_push(request, service)[1])
    except http.HttpError as error:
        return _json({"error": error.msg}, error.status)
    except BadMessage as error:
        log.warning(f"{service}: bad request: {error}", service=service)
        return _json({"error": str(error)}, 400)
    return _json(_run(service, message, job), 200)


def handle_cloud_event(event: Any, service: str, job: Job) -> dict[str, Any]:
    """The body of a CloudEvent function triggered by a Pub/Sub topic (Cloud Functions gen2)."""
    try:
        message = message_from_cloud_event(event)
    except BadMessage as error:
        # Retrying cannot fix the event itself; say why and acknowledge.
        log.error(f"{service}: not a Pub/Sub CloudEvent: {error}", service=service)
        return {"error": str(error)}
    return _run(service, message, job)


def _json(body: dict[str, Any], status: int) -> tuple[str, int, dict[str, str]]:
    return json.dumps(body, default=str), status, {"Content-Type": "application/json"}
