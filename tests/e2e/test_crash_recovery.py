"""Issue #11: a process of the local stack killed at any step loses nothing.

Each test kills a real ``panoptes-network`` process at a named point
(``PANOPTES_CRASH_AT``: ``os._exit`` there, as ``kill -9`` would), restarts delivery as a
user would (``drain``), and checks that every frame ended as if nothing had happened:
its ``.fits.fz``, its ``images`` document, and exact counts on its observation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from panoptes_network import crashpoints, runtime
from panoptes_network.stack.emulators import free_port
from panoptes_network.stack.dispatcher import Dispatcher
from tests.e2e.test_cli import CLI, run
from tests.unit.test_local_recovery import dead_owner

pytestmark = pytest.mark.parametrize("backend", ["local"], indirect=True)

SEQUENCE = "PAN001/14d3bd/20160909T081152"
SEQUENCE_ID = "PAN001_14d3bd_20160909T081152"
TINY = f"{SEQUENCE}/20160909T081226.fits"  # uncompressed: image-uploaded, compress-fits, record-image
SOLVED = f"{SEQUENCE}/20160909T081434.fits.fz"  # compressed already: image-uploaded, record-image


def assert_every_frame_ingested_once(stack) -> None:
    assert stack.names() == [TINY + ".fz", SOLVED]
    images = {doc.id: doc.data["bucket_path"] for doc in stack.documents.query("images")}
    assert images == {"PAN001_14d3bd_20160909T081226": TINY + ".fz", "PAN001_14d3bd_20160909T081434": SOLVED}
    observation = stack.documents.get("observations", SEQUENCE_ID)
    assert observation["num_images"] == 2
    assert observation["total_exptime"] == pytest.approx(240.8)  # each exposure counted once
    assert [doc.id for doc in stack.documents.query("units")] == ["PAN001"]
    assert stack.dead_letters() == []
    storage = runtime.local_storage(stack.settings)
    assert storage.db.connection().execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    assert list(storage.tmp.iterdir()) == []


def killed_at(point: str, stack, *args: str) -> None:
    result = run(stack.settings.data_dir, *args, env={"PANOPTES_CRASH_AT": point})
    assert result.returncode == crashpoints.EXIT_STATUS, f"did not die at {point}: {result.stderr[-2000:]}"


@pytest.mark.parametrize("point", [
    "compress-fits:read",
    "compress-fits:compressed",
    "bucket:committed",  # the .fz written, its finalize notification not yet sent
    "bucket:notified",
    "compress-fits:deleted",
    "record-image:read",
    "documents:mid-transaction",
])
def test_a_worker_killed_at_any_step_loses_nothing(stack, pocs, point):
    stack.upload(pocs / "tiny.fits", TINY)
    stack.upload(pocs / "solved.fits.fz", SOLVED)
    killed_at(point, stack, "drain", "--workers", "1")
    stack.drain(timeout=120)  # the restart: takes back the dead worker's lease at once
    assert_every_frame_ingested_once(stack)


@pytest.mark.parametrize("point", ["bucket:temp-written", "bucket:committed", "bucket:notified"])
def test_an_upload_killed_at_any_step_loses_nothing(stack, pocs, point):
    stack.upload(pocs / "solved.fits.fz", SOLVED)
    killed_at(point, stack, "upload", str(pocs / "tiny.fits"), "--as", TINY)
    temp_files = list(runtime.local_storage(stack.settings).tmp.iterdir())
    if point == "bucket:temp-written":
        # Killed before the commit: no object, and `upload` never said it was done; the
        # unit uploads again. Its temporary file is left, until a start-up removes it.
        assert TINY not in stack.names() and len(temp_files) == 1
        stack.upload(pocs / "tiny.fits", TINY)
    else:
        assert TINY in stack.names() and temp_files == []
    stack.drain(timeout=120)
    assert_every_frame_ingested_once(stack)


def test_after_kill_9_of_up_its_leases_are_taken_back_at_once(stack, pocs):
    """The ack deadline stays 600 s: only taking the lease back lets this drain finish."""
    environment = {**os.environ, "PANOPTES_HANG_AT": "compress-fits:read"}
    up = subprocess.Popen([CLI, "up", "--data-dir", str(stack.settings.data_dir), "--port", str(free_port()),
                           "--workers", "1", "--no-demo-prompt"], env=environment, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue = runtime.topics(stack.settings)
    try:
        stack.upload(pocs / "tiny.fits", TINY)
        deadline = time.monotonic() + 120
        while not (queue.counts().done == 1 and queue.leases()):  # image-uploaded done, compress-fits held
            assert up.poll() is None and time.monotonic() < deadline, "up never took the compress-fits delivery"
            time.sleep(0.1)
    finally:
        os.killpg(up.pid, signal.SIGKILL)  # up and its delivery worker, as kill -9 of the whole group
        up.wait()
    [lease] = queue.leases()
    assert lease.owner_gone and lease.deliveries == 1

    status = run(stack.settings.data_dir, "status")
    assert f"1 in flight held by process {lease.owner}, which is gone" in status.stdout

    stack.drain(timeout=120)
    row = queue.db.connection().execute(
        "SELECT state, attempts, last_error FROM deliveries WHERE subscription = 'compress-fits'").fetchone()
    owner_pid = lease.owner.split("-")[0]
    assert (row["state"], row["attempts"]) == ("done", 2)
    assert row["last_error"].startswith(f"the delivering process (process {owner_pid} on ")
    assert stack.names() == [TINY + ".fz"]
    assert stack.documents.get("observations", SEQUENCE_ID)["num_images"] == 1


def test_a_message_whose_every_worker_died_is_dead_lettered_not_retried_for_ever(stack, monkeypatch):
    monkeypatch.setenv("PANOPTES_MAX_ATTEMPTS", "2")
    runtime.reset()
    dispatcher = Dispatcher()
    stack.publish(stack.settings.compress_topic, {"bucket_path": TINY})
    for _ in range(2):  # each attempt's worker killed mid-delivery
        assert dispatcher.queue.lease(str(dead_owner())) is not None
        assert dispatcher.queue.reclaim_dead_leases()
    assert dispatcher.run_once()
    [letter] = stack.dead_letters()
    assert letter["service"] == "compress-fits"
    assert "the last attempt never finished (its process died or overran the ack deadline); " \
           "the delivering process (process" in letter["reason"]
    assert dispatcher.queue.counts().dead == 1 and not dispatcher.queue.has_unfinished()
