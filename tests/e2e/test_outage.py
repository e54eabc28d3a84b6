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
            drained = command("drain", "--timeout", "120")
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
