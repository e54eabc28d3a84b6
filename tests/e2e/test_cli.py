"""The panoptes-network command as a user runs it, on the local backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from panoptes_network.stack.emulators import free_port

CLI = str(Path(sys.executable).parent / "panoptes-network")
SEQUENCE = "PAN001/14d3bd/20160909T081152"


def run(data_dir: Path, *args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PANOPTES_BACKEND": "local", "PANOPTES_MIN_BACKOFF": "0.2",
                   "PANOPTES_MAX_BACKOFF": "1", "PANOPTES_WORKERS": "2", **(env or {})}
    for key in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        environment.pop(key, None)
    return subprocess.run([CLI, *args, "--data-dir", str(data_dir)] if args[0] != "upload" else
                          [CLI, args[0], "--data-dir", str(data_dir), *args[1:]],
                          capture_output=True, text=True, timeout=timeout, env=environment)


def test_upload_drain_doc_status_ls(tmp_path, pocs):
    data = tmp_path / "data"
    uploaded = run(data, "upload", str(pocs / "tiny.fits"), "--as", f"{SEQUENCE}/20160909T081226.fits")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "uploaded" in uploaded.stdout
    uploaded = run(data, "upload", str(pocs / "solved.fits.fz"), "--as", f"{SEQUENCE}/20160909T081434.fits.fz")
    assert uploaded.returncode == 0, uploaded.stderr

    drained = run(data, "drain", "--timeout", "120")
    assert drained.returncode == 0, drained.stderr
    assert "every message delivered" in drained.stdout

    doc = run(data, "doc", "observations/PAN001_14d3bd_20160909T081152")
    assert doc.returncode == 0
    observation = json.loads(doc.stdout)
    assert observation["num_images"] == 2 and observation["time"] == "2016-09-09T08:11:52Z"
    unit = json.loads(run(data, "doc", "units/PAN001").stdout)
    assert unit["location"] == {"latitude": 19.54, "longitude": -155.58}

    listing = run(data, "ls", "panoptes-raw-images", "PAN001/")
    assert [line.split()[-1] for line in listing.stdout.splitlines()] == [
        f"{SEQUENCE}/20160909T081226.fits.fz", f"{SEQUENCE}/20160909T081434.fits.fz"]

    status = run(data, "status").stdout
    assert "panoptes-raw-images" in status and "observations" in status
    assert "0 pending" in status

    reindexed = run(data, "reindex")  # record-image indexed it already: nothing to do
    assert reindexed.returncode == 0, reindexed.stderr
    assert reindexed.stdout.strip() == ("1 observation: 0 given their sky index now, "
                                        "0 without a position (not searchable by cone)")


def test_absent_document_exits_1_and_bad_names_exit_2(tmp_path):
    assert run(tmp_path, "doc", "images/PAN001_14d3bd_20160909T081226").returncode == 1
    bad = run(tmp_path, "doc", "images")
    assert bad.returncode == 2 and "COLLECTION/ID" in bad.stderr


def test_upload_without_a_path_uses_the_header_or_says_why_not(tmp_path, pocs):
    refused = run(tmp_path, "upload", str(pocs / "tiny.fits"))
    assert refused.returncode == 2
    assert "camera id 'XXXXXX'" in refused.stderr and "--as" in refused.stderr
    assert run(tmp_path, "upload", str(pocs / "tiny.fits"), str(pocs / "pole.fits"), "--as", "x").returncode == 2


def test_many_files_upload_with_a_progress_bar_from_their_headers(tmp_path, pocs):
    from astropy.io import fits as astropy_fits

    files = []
    for minute in range(3):
        header = astropy_fits.getheader(pocs / "tiny.fits")
        header["INSTRUME"] = "14d3bd"
        header["SEQID"] = "PAN001_14d3bd_20160909T081152"
        header["IMAGEID"] = f"PAN001_14d3bd_20160909T08{13 + minute}00"
        path = tmp_path / f"frame{minute}.fits"
        astropy_fits.writeto(path, astropy_fits.getdata(pocs / "tiny.fits"), header)
        files.append(str(path))
    result = run(tmp_path / "data", "upload", *files)
    assert result.returncode == 0, result.stderr
    assert "uploading" in result.stderr and "3/3" in result.stderr
    listing = run(tmp_path / "data", "ls", "panoptes-raw-images").stdout
    assert f"{SEQUENCE}/20160909T081400.fits" in listing


def test_drain_reports_dead_letters_and_exits_1(tmp_path):
    run(tmp_path, "upload", __file__, "--as", f"{SEQUENCE}/20160909T081226.fits")
    drained = run(tmp_path, "drain", "--timeout", "60")
    assert drained.returncode == 1
    assert "dead letter [compress-fits]" in drained.stderr and "not a FITS file" in drained.stderr
    status = run(tmp_path, "status").stdout
    assert "dead letters" in status and "not a FITS file" in status


def wait_for(url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def test_up_serves_every_service_and_delivers_while_drain_runs_beside_it(tmp_path, pocs):
    port = free_port()
    environment = {**os.environ, "PANOPTES_BACKEND": "local", "PANOPTES_WORKERS": "1"}
    up = subprocess.Popen([CLI, "up", "--data-dir", str(tmp_path), "--port", str(port), "--log-format", "text",
                           "--no-catalog"],
                          env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = wait_for(f"http://127.0.0.1:{port}/_stack/status")
        assert {"image-uploaded", "compress-fits", "record-image"} <= set(status["services"])
        for minute in range(4):
            assert run(tmp_path, "upload", str(pocs / "tiny.fits"), "--as",
                       f"{SEQUENCE}/20160909T08{20 + minute}00.fits").returncode == 0
        # drain, with its own two workers, and up's worker share the queue through leases.
        drained = run(tmp_path, "drain", "--timeout", "120")
        assert drained.returncode == 0, drained.stderr
        observation = json.loads(run(tmp_path, "doc", "observations/PAN001_14d3bd_20160909T081152").stdout)
        assert observation["num_images"] == 4
        request = urllib.request.Request(f"http://127.0.0.1:{port}/compress-fits/", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.code == 400
    finally:
        up.terminate()
        output = up.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/compress-fits/" in output
    # --log-format text: one short human line per event, no JSON.
    assert "WARNING compress-fits: bad request: no 'message' object" in output
    assert not any(line.startswith('{"severity"') for line in output.splitlines())


def test_up_upload_drain_and_doc_on_the_emulators(emulators, pocs, monkeypatch, tmp_path):
    """The same commands on the gcp backend, with Pub/Sub pushing to `up`."""
    from panoptes_network.config import settings
    from tests.conftest import reset_emulators

    for key, value in {**emulators.environment, "PANOPTES_BACKEND": "gcp", "PANOPTES_MIN_BACKOFF": "0.2",
                       "PANOPTES_MAX_BACKOFF": "1"}.items():
        monkeypatch.setenv(key, value)
    environment = dict(os.environ)
    reset_emulators(emulators, settings())
    port = free_port()

    def cli(*args, timeout=300):
        return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=environment)

    log = tmp_path / "up.log"
    up = subprocess.Popen([CLI, "up", "--port", str(port)], env=environment, stdout=log.open("w"),
                          stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/_stack/status")
        uploaded = cli("upload", str(pocs / "tiny.fits"), "--as", f"{SEQUENCE}/20160909T081226.fits")
        assert uploaded.returncode == 0, uploaded.stderr
        drained = cli("drain", "--port", str(port), "--timeout", "120", "--settle", "2")
        assert drained.returncode == 0, drained.stderr
        listing = cli("ls", "panoptes-raw-images").stdout
        assert f"{SEQUENCE}/20160909T081226.fits.fz" in listing and ".fits\n" not in listing
        observation = json.loads(cli("doc", "observations/PAN001_14d3bd_20160909T081152").stdout)
        assert observation["num_images"] == 1
    finally:
        up.terminate()
        up.wait(timeout=30)
    assert "on the emulators" in log.read_text()


def test_collect_dead_letters_moves_what_pubsub_held_into_the_collection(emulators, monkeypatch, tmp_path):
    """Deployed, Pub/Sub forwards a message it gave up on to the dead-letter topic, whose
    -held subscription (bin/deploy makes it) keeps it until this command records it."""
    from google.cloud import pubsub_v1

    from panoptes_network import deadletter, runtime
    from panoptes_network.config import settings
    from tests.conftest import reset_emulators

    for key, value in {**emulators.environment, "PANOPTES_BACKEND": "gcp"}.items():
        monkeypatch.setenv(key, value)
    current = settings()
    reset_emulators(emulators, current)
    environment = dict(os.environ)

    def collect():
        return subprocess.run([CLI, "collect-dead-letters"], capture_output=True, text=True, timeout=120,
                              env=environment)

    missing = collect()
    assert missing.returncode == 2 and "bin/deploy makes it" in missing.stderr

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(current.project, current.dead_letter_topic)
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscriber.subscription_path(
        current.project, current.dead_letter_topic + deadletter.HELD_SUFFIX), topic=topic)
    source = f"projects/{current.project}/subscriptions/record-image"
    for attempt_count in ("5", "7"):
        publisher.publish(topic, f'{{"bucket_path": "PAN001/x/{attempt_count}.fits.fz"}}'.encode(),
                          CloudPubSubDeadLetterSourceSubscription=source,
                          CloudPubSubDeadLetterSourceDeliveryCount=attempt_count).result(timeout=30)

    collected = collect()
    assert collected.returncode == 0, collected.stderr
    assert collected.stdout.strip() == "2 dead letters moved from Pub/Sub into dead_letters"
    letters = runtime.documents(current).query(deadletter.COLLECTION)
    assert sorted(letter.data["attempts"] for letter in letters) == [5, 7]
    for letter in letters:
        assert letter.data["subscription"] == source and "gave up after" in letter.data["reason"]
        assert letter.data["data"].startswith('{"bucket_path": "PAN001/x/')
    again = collect()  # acknowledged: nothing is moved twice
    assert again.returncode == 0 and again.stdout.startswith("0 dead letters")
    assert len(runtime.documents(current).query(deadletter.COLLECTION)) == 2
    status = subprocess.run([CLI, "status"], capture_output=True, text=True, timeout=120, env=environment)
    assert "gave up after 7 delivery attempts" in status.stdout
