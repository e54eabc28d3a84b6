"""Push delivery for the local queue: lease, POST the push envelope to the handler, ack.

The envelope is exactly what a Pub/Sub push subscription sends, posted to the
service's own WSGI app, so the handler cannot tell the local stack from the cloud.
Deliveries run in worker processes (``PANOPTES_WORKERS``, default: one per core), so
CPU-heavy handlers such as compress-fits use every core.

Every worker first recovers what crashed processes left behind, and again every
:data:`RECOVER_EVERY_SECONDS`: the leases of processes that are gone, the finalize
notifications that a killed writer committed but never sent, and the temporary files
of writers that are gone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

import flask

from panoptes_network import deadletter, log, runtime
from panoptes_network.adapters.local_queue import Delivery, LocalQueue
from panoptes_network.config import Settings, settings as current_settings
from panoptes_network.messages import encode_push_envelope
from panoptes_network.stack.services import ServiceMissing, load_app

ACK_STATUSES = (102, 200, 201, 202, 204)  # what Pub/Sub push counts as an acknowledgement
IDLE_POLL_SECONDS = 0.2
RECOVER_EVERY_SECONDS = 1.0

_captured = threading.local()


def _capture_exception(sender, exception, **extra):
    _captured.error = exception


flask.got_request_exception.connect(_capture_exception)


def default_workers() -> int:
    return max(1, int(os.environ.get("PANOPTES_WORKERS") or os.cpu_count() or 1))


@dataclass
class DeliveryResult:
    ok: bool
    detail: str


class Dispatcher:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or current_settings()
        queue = runtime.topics(self.settings)
        if not isinstance(queue, LocalQueue):
            raise RuntimeError("the local dispatcher needs PANOPTES_BACKEND=local")
        self.queue: LocalQueue = queue
        self.worker_id = LocalQueue.new_worker_id()
        self._recovered_at = float("-inf")

    def recover(self) -> int:
        """Take back what processes that are gone left unfinished; returns how many things."""
        self._recovered_at = time.monotonic()
        reclaimed = self.queue.reclaim_dead_leases()
        for lease in reclaimed:
            log.warning(f"took back {lease.deliveries} leased deliveries of a process that is gone",
                        owner=lease.owner)
        storage = runtime.local_storage(self.settings)
        storage.remove_abandoned_temp_files()
        resent = storage.send_orphaned_notifications()
        if resent:
            log.warning(f"sent {resent} finalize notifications a process that is gone had committed but not sent")
        return len(reclaimed) + resent

    def deliver(self, delivery: Delivery) -> DeliveryResult:
        subscription = self.queue.subscriptions().get(delivery.subscription)
        if subscription is None:
            return DeliveryResult(False, f"subscription {delivery.subscription} no longer exists")
        try:
            app = load_app(subscription.service)
        except ServiceMissing as error:
            return DeliveryResult(False, str(error))
        envelope = encode_push_envelope(
            delivery.data,
            delivery.attributes,
            message_id=delivery.message_id,
            subscription=f"projects/{self.settings.project}/subscriptions/{delivery.subscription}",
            publish_time=delivery.publish_time,
        )
        _captured.error = None
        try:
            response = app.test_client().post("/", json=envelope)
        except Exception as error:  # the app itself failed outside a request
            return DeliveryResult(False, f"{type(error).__name__}: {error}")
        if response.status_code in ACK_STATUSES:
            return DeliveryResult(True, f"HTTP {response.status_code}")
        detail = f"HTTP {response.status_code}"
        if _captured.error is not None:
            detail += f": {type(_captured.error).__name__}: {_captured.error}"
        else:
            detail += ": " + response.get_data(as_text=True)[:500]
        return DeliveryResult(False, detail)

    def run_once(self) -> bool:
        """Deliver one due message; False when none was due."""
        delivery = self.queue.lease(self.worker_id)
        if delivery is None:
            return False
        if delivery.attempts > self.queue.policy.max_attempts:  # the last attempt was never nacked
            result = DeliveryResult(False, "the last attempt never finished (its process died or overran the "
                                           f"ack deadline); {delivery.last_error or 'no error recorded'}")
        else:
            result = self.deliver(delivery)
        if result.ok:
            self.queue.ack(delivery)
            return True
        if self.queue.nack(delivery, result.detail):
            reason = f"delivery failed {delivery.attempts} times; last error: {result.detail}"
            deadletter.record(
                runtime.documents(self.settings),
                service=delivery.subscription,
                reason=reason,
                data=delivery.data,
                attributes=delivery.attributes,
                message_id=delivery.message_id,
                subscription=delivery.subscription,
                attempts=delivery.attempts,
            )
            log.error(f"dead-lettered after {delivery.attempts} attempts", subscription=delivery.subscription,
                      message_id=delivery.message_id, last_error=result.detail)
        else:
            log.warning("delivery failed; will retry", subscription=delivery.subscription,
                        message_id=delivery.message_id, attempt=delivery.attempts, error=result.detail)
        return True

    def work(self, until_idle: bool, stop: Callable[[], bool] = lambda: False,
             more_coming: Callable[[], bool] = lambda: False) -> None:
        """Deliver until stopped, or, with ``until_idle``, until nothing is pending anywhere
        and ``more_coming()`` says nothing more will be published."""
        while not stop():
            recovered = time.monotonic() - self._recovered_at >= RECOVER_EVERY_SECONDS and self.recover()
            if self.run_once() or recovered:
                continue
            wait = self.queue.seconds_until_next_due()
            if wait is None and until_idle and not more_coming():
                return
            time.sleep(min(wait if wait is not None else IDLE_POLL_SECONDS, IDLE_POLL_SECONDS))


def _worker_main(until_idle: bool, stop_event, parent_pid: int, published_event=None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    # A worker whose parent died (killed, not stopped) must not deliver on as an orphan.
    Dispatcher().work(until_idle, lambda: stop_event.is_set() or os.getppid() != parent_pid,
                      more_coming=lambda: published_event is not None and not published_event.is_set())


class WorkerPool:
    """``count`` delivery workers: processes, or this thread when there is one."""

    def __init__(self, count: int | None = None):
        self.count = count or default_workers()
        context = multiprocessing.get_context("spawn")  # no fork: gRPC and SQLite dislike it
        self._context = context
        self.stop_event = context.Event()
        self.published_event = context.Event()  # see start()
        self.processes: list = []

    def start(self, until_idle: bool, while_publishing: bool = False) -> None:
        """``while_publishing``: an idle queue does not end the workers until
        ``published_event`` is set (what publishes is still at it)."""
        for _ in range(self.count):
            process = self._context.Process(
                target=_worker_main,
                args=(until_idle, self.stop_event, os.getpid(), self.published_event if while_publishing else None),
                daemon=True,
            )
            process.start()
            self.processes.append(process)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the workers; True if all finished within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for process in self.processes:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            process.join(remaining)
        return all(not process.is_alive() for process in self.processes)

    def stop(self, grace: float = 10.0) -> None:
        self.stop_event.set()
        self.join(grace)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)


def drain(timeout: float | None = None, workers: int | None = None, during: Callable[[], object] | None = None) -> bool:
    """Deliver everything pending; True if the queue emptied within ``timeout``.

    ``during``, if given, publishes the work (the demo uploading its frames): it runs here
    while the workers already deliver what it has published, on the cores it leaves free,
    as the running stack does while units upload. ``timeout`` counts from its return.
    """
    count = workers or default_workers()
    if count == 1:
        if during is not None:
            during()  # one worker: nothing to overlap with
        deadline = None if timeout is None else time.monotonic() + timeout
        Dispatcher().work(True, lambda: deadline is not None and time.monotonic() > deadline)
        return not runtime.topics().has_unfinished()
    pool = WorkerPool(count)
    pool.start(until_idle=True, while_publishing=during is not None)
    if during is not None:
        try:
            during()
        except BaseException:
            pool.stop()
            raise
        pool.published_event.set()
    finished = pool.join(timeout)
    if not finished:
        pool.stop()
    return finished and not runtime.topics().has_unfinished()
