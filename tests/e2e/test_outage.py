"""Operating through outages (issue 16), on both backends: the CLI finds the running stack
without rewiring it, redrive sends dead letters again once, reconcile closes the gaps."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from panoptes_network import deadletter, runtime
from panoptes_network.stack import cli
from panoptes_network.stack.emulators import free_port
from tests.e2e.test_cli import CLI, wait_for

SEQUENCE = "PAN001/14d3bd/20160909T081152"
OBSERVATION = "PAN001_14d3bd_20160909T081152"
FRAME = f"{SEQUENCE}/20160909T081226.fits"


def command(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI in its own process, with this test's backend (the `backend` fixture's environment)."""
    environment = {**os.environ, "PANOPTES_WORKERS": "1"}
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=environment)


def test_drain_finds_up_on_another_port_and_leaves_its_pushes_alone(backend, pocs, tmp_path):
    port = free_port()
    log = tmp_path / "up.log"
    up = subprocess.Popen([CLI, "up", "--port", str(port), "--no-demo-prompt"],
                          env={**os.environ, "PANOPTES_WORKERS": "1"}, stdout=log.open("w"),
                          stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/_stack/status")
        for minute in (22, 23):
            assert command("upload", str(pocs / "tiny.fits"), "--as",
                           f"{SEQUENCE}/20160909T08{minute}00.fits").returncode == 0
            # No --port: drain waits on the stack `up` recorded, which keeps receiving the pushes.
            drained = command("drain", "--timeout", "120", "--settle", "2")
            assert drained.returncode == 0, drained.stderr + log.read_text()[-3000:]
        observation = json.loads(command("doc", f"observations/{OBSERVATION}").stdout)
        assert observation["num_images"] == 2
        status = command("status")
        assert f"stack: up at http://127.0.0.1:{port}" in status.stdout, status.stdout
        assert "WARNING" not in status.stdout
        if backend == "gcp":
            assert f"compress-fits                -> http://127.0.0.1:{port}/compress-fits/" in status.stdout
    finally:
        up.terminate()
        up.wait(timeout=30)
    status = command("status")
    assert "stack: not running" in status.stdout and "panoptes-network up" in status.stdout
    if backend == "gcp":  # nothing delivers there without `up`: say so, start nothing
        drained = command("drain", "--timeout", "10")
        assert drained.returncode == 2 and "`panoptes-network up`" in drained.stderr


@pytest.mark.parametrize("backend", ["gcp"], indirect=True)  # the local queue has no push endpoints
def test_status_warns_when_a_push_goes_elsewhere_than_the_running_stack(backend, stack):
    from panoptes_network.stack import running

    running.record(stack.settings, stack.server.url, stack.server.url)
    _point_compress_fits_at(stack, f"{stack.server.url}/_stack/down")
    status = command("status")
    assert (f"WARNING: compress-fits pushes to {stack.server.url}/_stack/down, not to the running stack "
            f"({stack.server.url}/compress-fits/)") in status.stdout


# --- an endpoint down, then redrive --------------------------------------------------------


def _point_compress_fits_at(stack, endpoint: str) -> None:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    subscriber.modify_push_config(subscription=subscriber.subscription_path(stack.settings.project, "compress-fits"),
                                  push_config={"push_endpoint": endpoint})


def _compress_fits_down(stack, down: bool) -> None:
    """An outage of compress-fits: every delivery to it fails until it is back."""
    if stack.backend == "local":
        with runtime.topics(stack.settings).db.transaction() as connection:
            connection.execute("UPDATE subscriptions SET service = ? WHERE name = 'compress-fits'",
                               ("compress-fits-down" if down else "compress-fits",))
    elif down:
        _point_compress_fits_at(stack, f"{stack.server.url}/_stack/down")  # answers 404
    else:
        from panoptes_network.stack.gcp import ensure_topology

        ensure_topology(stack.settings, stack.server.url)  # `up` again


def redrive(capsys, *args: str) -> str:
    capsys.readouterr()
    assert cli.main(["redrive", *args]) == 0
    return capsys.readouterr().out


def test_a_frame_dead_lettered_while_compress_fits_was_down_is_redriven_once(stack, pocs, capsys):
    _compress_fits_down(stack, True)
    stack.upload(pocs / "tiny.fits", FRAME)
    stack.drain()
    (letter,) = stack.dead_letters()
    assert letter["attempts"] == 5 and not deadletter.is_permanent(letter)
    assert stack.names() == [FRAME]

    _compress_fits_down(stack, False)
    stack.upload(b"not a FITS file", f"{SEQUENCE}/20160909T081300.fits")  # permanent: not redriven
    stack.drain()
    assert sorted(map(deadletter.is_permanent, stack.dead_letters())) == [False, True]
    assert "1 dead letter would redrive, 1 skipped" in redrive(capsys, "--dry-run")
    assert [letter["redriven"] for letter in stack.dead_letters()] == [None, None]  # a dry run marks nothing
    assert "1 dead letter redriven, 1 skipped" in redrive(capsys, "--service", "compress-fits")
    stack.drain()
    assert stack.names() == [FRAME + ".fz", f"{SEQUENCE}/20160909T081300.fits"]
    assert stack.documents.get("observations", OBSERVATION)["num_images"] == 1
    assert stack.documents.get("images", "PAN001_14d3bd_20160909T081226")["bucket_path"] == FRAME + ".fz"
    marked = [letter["redriven"] for letter in stack.dead_letters() if not deadletter.is_permanent(letter)]
    assert len(marked) == 1 and marked[0]["message_id"] and marked[0]["topic"] == stack.settings.compress_topic

    assert "0 dead letters redriven, 1 skipped" in redrive(capsys)  # the second does nothing
    stack.drain()
    assert [letter["redriven"] for letter in stack.dead_letters() if not deadletter.is_permanent(letter)] == marked
    assert stack.documents.get("observations", OBSERVATION)["num_images"] == 1


# --- reconcile ---------------------------------------------------------------------------


def _upload_with_its_event_lost(stack, source, bucket_path: str) -> None:
    """Upload while nothing subscribes to the finalize notifications: the event is dropped."""
    if stack.backend == "local":
        queue = runtime.topics(stack.settings)
        with queue.db.transaction() as connection:
            connection.execute("DELETE FROM subscriptions WHERE name = 'image-uploaded'")
        stack.upload(source, bucket_path)
        with queue.db.transaction() as connection:
            connection.execute("INSERT INTO subscriptions (name, topic, service) VALUES (?, ?, ?)",
                               ("image-uploaded", stack.settings.uploads_topic, "image-uploaded"))
        return
    from google.cloud import pubsub_v1

    from panoptes_network.stack.gcp import MONITOR_SUFFIX, ensure_topology

    subscriber = pubsub_v1.SubscriberClient()
    project = stack.settings.project
    for name in ("image-uploaded", "image-uploaded" + MONITOR_SUFFIX):
        subscriber.delete_subscription(subscription=subscriber.subscription_path(project, name))
    probe = subscriber.subscription_path(project, "reconcile-test-probe")
    subscriber.create_subscription(name=probe, topic=f"projects/{project}/topics/{stack.settings.uploads_topic}")
    stack.upload(source, bucket_path)
    received = []
    while not received:  # the notification was published, and nothing else received it
        received = subscriber.pull(subscription=probe, max_messages=10, timeout=30).received_messages
    subscriber.delete_subscription(subscription=probe)
    ensure_topology(stack.settings, stack.server.url)


def reconcile(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = cli.main(["reconcile", "--min-age", "0", *args])
    return status, capsys.readouterr().out


def test_reconcile_finds_each_planted_gap_and_fix_closes_them_with_exact_counts(stack, pocs, capsys):
    frames = [f"{SEQUENCE}/20160909T08{minute}00.fits" for minute in (30, 31, 32)]
    for frame in frames[:2]:
        stack.upload(pocs / "tiny.fits", frame)
    stack.drain()
    exptime = stack.documents.get("images", "PAN001_14d3bd_20160909T083000")["exptime"]
    clean_status, clean = reconcile(capsys)
    assert clean_status == 0 and "no gaps" in clean

    _upload_with_its_event_lost(stack, pocs / "tiny.fits", frames[2])  # a .fits never compressed
    stack.documents.delete("images", "PAN001_14d3bd_20160909T083100")  # a .fits.fz never recorded
    stack.documents.set("observations", OBSERVATION, {"num_images": 7}, merge=True)  # a wrong count
    stack.drain()
    capsys.readouterr()
    assert cli.main(["reconcile"]) == 1  # by default files younger than 15 minutes may be in flight
    young = capsys.readouterr().out
    assert "count_mismatch" in young and "never_compressed" not in young and "not_recorded" not in young
    status, found = reconcile(capsys)
    assert status == 1
    gaps = sorted(line.split()[:2] for line in found.splitlines() if line.startswith("  "))
    assert gaps == [["count_mismatch", OBSERVATION + ":"], ["never_compressed", frames[2] + ":"],
                    ["not_recorded", frames[1] + ".fz:"]], found
    assert "num_images 7" in found and "images recorded: 1" in found

    status, fixed = reconcile(capsys, "--fix")
    assert status == 0 and fixed.count("  fixed ") == 3, fixed
    stack.drain()
    assert stack.names() == [frame + ".fz" for frame in frames]
    observation = stack.documents.get("observations", OBSERVATION)
    assert observation["num_images"] == 3 and observation["total_exptime"] == pytest.approx(3 * exptime)
    assert sorted(doc.id for doc in stack.documents.query("images")) == [
        "PAN001_14d3bd_20160909T083000", "PAN001_14d3bd_20160909T083100", "PAN001_14d3bd_20160909T083200"]
    assert reconcile(capsys)[0] == 0 and stack.dead_letters() == []
