"""The staged source is what gets deployed, and it runs on its own.

Each service present in this checkout is staged with ``bin/deploy SERVICE --stage``,
installed into a new virtual environment of the deploy runtime's Python (python312, when
this machine has it) from the staged requirements.txt alone, hashes required (no system
site-packages, no repository on the path), checked to hold exactly the lock's versions,
started as the platform starts it
(functions-framework for a function; the Dockerfile's CMD, gunicorn on $PORT, for a
Cloud Run service) and sent a real request, on the gcp backend against the emulators.
A requirement missing from the staged requirements.txt fails here, not in production.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from google.cloud import pubsub_v1
from packaging.utils import canonicalize_name
from panoptes_network import runtime
from panoptes_network.config import settings
from panoptes_network.messages import (
    PUBSUB_PUBLISHED,
    StorageObject,
    encode_push_envelope,
    storage_cloud_event,
    utc_now_iso,
)
from panoptes_network.stack import lock, staging
from panoptes_network.stack.deploy import PYTHON_RUNTIME
from panoptes_network.stack.services import SERVICES

from tests.conftest import skip_or_fail
from tests.deploy.script import REPOSITORY, marker_environment, run_deploy

SEQUENCE = "PAN001/14d3bd/20160909T081152"
TINY = f"{SEQUENCE}/20160909T081226.fits"
SOLVED = f"{SEQUENCE}/20160909T081434.fits.fz"


def present(service: str) -> None:
    if not (REPOSITORY / service / "main.py").is_file():
        skip_or_fail(f"{service}/main.py is not in this checkout yet (another branch writes it)")


# --- what is staged ----------------------------------------------------------------------

def test_staging_copies_the_service_the_shared_library_and_one_requirements_file(tmp_path):
    present("compress-fits")
    run_deploy("compress-fits", "--stage", str(tmp_path))
    staged = tmp_path / "compress-fits"
    files = {path.relative_to(staged).as_posix() for path in staged.rglob("*") if path.is_file()}
    service_files = {path.name for path in (REPOSITORY / "compress-fits").iterdir() if path.is_file()}
    library = {"panoptes_network/" + path.relative_to(REPOSITORY / "shared" / "panoptes_network").as_posix()
               for path in (REPOSITORY / "shared" / "panoptes_network").rglob("*")
               if path.is_file() and "__pycache__" not in path.parts}
    assert files == service_files | library | {"requirements.txt"}
    assert (staged / "main.py").read_bytes() == (REPOSITORY / "compress-fits" / "main.py").read_bytes()
    requirements = (staged / "requirements.txt").read_text()
    assert requirements.startswith("# Staged by bin/deploy from requirements.lock")
    assert requirements.splitlines()[2:] == "\n".join(
        pin.render() for pin in staging.locked_requirements("compress-fits")).splitlines()
    assert {"flask", "gunicorn", "astropy", "werkzeug"} <= set(lock.parse(requirements))  # werkzeug: flask's


def test_staging_refuses_a_directory_with_files_in_it(tmp_path):
    present("compress-fits")
    (tmp_path / "compress-fits").mkdir()
    (tmp_path / "compress-fits" / "precious.txt").write_text("keep me")
    result = run_deploy("compress-fits", "--stage", str(tmp_path), check=False)
    assert result.returncode == 2 and "is not empty" in result.stderr
    assert (tmp_path / "compress-fits" / "precious.txt").read_text() == "keep me"


def test_requirements_merge_one_line_per_package():
    merged = staging.merge_requirements(
        ["flask>=3.0", "numpy>=1.26", 'tomli>=2; python_version < "3.11"', "google-auth[requests]>=2.29"],
        ["Flask<4", "gunicorn>=22", "google_auth[aiohttp]", "tomli"],
    )
    assert merged == ["flask<4,>=3.0", "numpy>=1.26", 'tomli>=2; python_version < "3.11"',
                      "google-auth[aiohttp,requests]>=2.29", "gunicorn>=22", "tomli"]


@pytest.mark.parametrize("line, message", [
    ("-e ../somewhere", "pip options"),
    ("not a requirement!", "invalid requirement"),
    ("pkg @ https://example.com/pkg.whl", "direct references"),
])
def test_requirements_that_cannot_be_merged_are_refused(tmp_path, line, message):
    folder = tmp_path / "compress-fits"
    folder.mkdir()
    (folder / "main.py").write_text("")
    (folder / "requirements.txt").write_text(f"flask>=3.0\n{line}\n")
    (tmp_path / "shared").symlink_to(REPOSITORY / "shared")
    (tmp_path / lock.LOCK_FILE).symlink_to(REPOSITORY / lock.LOCK_FILE)
    with pytest.raises(staging.StagingError, match=message):
        staging.stage("compress-fits", tmp_path / "out", root=tmp_path)


# --- the staged source runs ----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def deploy_python() -> str:
    """The deploy runtime's Python (python312: the functions' runtime, the Dockerfiles' base)
    when this machine has one, else the tests' own: the lock is one for both."""
    version = f"{PYTHON_RUNTIME[6]}.{PYTHON_RUNTIME[7:]}"  # python312 -> 3.12
    candidates = [shutil.which(f"python{version}"),
                  *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))]
    for candidate in filter(None, candidates):  # a pyenv shim is on PATH but fails when not selected
        if subprocess.run([candidate, "-c", "import venv"], capture_output=True).returncode == 0:
            return candidate
    return sys.executable


UV = str(Path(sys.executable).with_name("uv"))  # the lock's uv, installed by `make install`


@pytest.fixture(scope="session")
def clean_venvs(tmp_path_factory):
    """A virtual environment per distinct staged requirements.txt, made once per session,
    holding exactly the lock's versions of the staged pins."""
    made: dict[str, Path] = {}
    python = deploy_python()
    locked = lock.read(REPOSITORY)

    def venv_for(requirements: Path) -> Path:
        lines = [line for line in requirements.read_text().splitlines() if not line.startswith("#")]
        key = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
        if key not in made:
            path = tmp_path_factory.mktemp(f"venv-{key}")
            venv_python = str(path / "bin" / "python")
            # uv, not pip, installs them: as pip does with --require-hashes, it refuses a package
            # without a pin and a hash in the file (a missing transitive pin fails here) and
            # checks every hash, but in seconds where pip took a minute or two per service.
            # pip itself is exercised on the same lock by `make install` (tests/deploy/test_lock.py).
            for command in ([UV, "venv", "--quiet", "--python", python, str(path)],
                            [UV, "pip", "install", "--quiet", "--python", venv_python, "--require-hashes",
                             "--requirement", str(requirements)]):
                made_step = subprocess.run(command, capture_output=True, text=True, timeout=900)
                assert made_step.returncode == 0, f"{' '.join(command)}:\n{made_step.stderr[-3000:]}"
            frozen = subprocess.run([UV, "pip", "freeze", "--python", venv_python],
                                    capture_output=True, text=True, check=True).stdout.split()
            environment = marker_environment(venv_python)
            staged = lock.parse(requirements.read_text())
            assert {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in frozen} == \
                {name: locked[name].version for name, pin in staged.items() if pin.applies(environment)}
            made[key] = path
        return made[key]

    return venv_for


class Server:
    """A staged service started as its platform starts it, on a loopback port."""

    def __init__(self, service: str, staged: Path, venv: Path, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        spec = SERVICES[service]
        if spec.kind == "function":
            command = [str(venv / "bin" / "functions-framework"), f"--target={spec.target}", "--source=main.py",
                       "--host=127.0.0.1", f"--port={self.port}"]
        else:  # the Dockerfile's CMD, with the container's environment
            dockerfile = DockerfileParser(str(staged / "Dockerfile"))
            command = json.loads(dockerfile.cmd) if dockerfile.cmd.startswith("[") else ["sh", "-c", dockerfile.cmd]
            env = {**dockerfile.envs, **env, "PORT": str(self.port)}
        env = {**env, "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
        self.log = log
        self.process = subprocess.Popen(command, cwd=staged, env=env, stdout=log.open("wb"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{service} exited:\n{log.read_text()[-3000:]}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{service} did not listen within 60 s:\n{log.read_text()[-3000:]}")

    def request(self, method: str, path: str = "/", body=None, headers=None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(5)


@pytest.fixture
def start(backend, clean_venvs, tmp_path):
    servers = []

    def start_service(service: str) -> Server:
        present(service)
        run_deploy(service, "--stage", str(tmp_path / "staged"))
        staged = tmp_path / "staged" / service
        venv = clean_venvs(staged / "requirements.txt")
        # The deployed environment: the names and the emulators, nothing of this test process.
        env = {key: value for key, value in os.environ.items()
               if key.endswith("_EMULATOR_HOST") or key.startswith(("PANOPTES_", "GOOGLE_CLOUD_PROJECT"))}
        env.update(HOME=str(tmp_path), LANG="C.UTF-8")
        server = Server(service, staged, venv, env, tmp_path / f"{service}.log")
        servers.append(server)
        return server

    yield start_service
    for server in servers:
        server.stop()


def cloud_event(event: dict) -> tuple[dict, dict]:
    """A CloudEvent in structured mode, as the functions framework accepts it."""
    return event, {"Content-Type": "application/cloudevents+json"}


def pubsub_event(data: dict) -> dict:
    return {"specversion": "1.0", "id": "staged-test-1", "type": PUBSUB_PUBLISHED, "time": utc_now_iso(),
            "source": "//pubsub.googleapis.com/projects/panoptes-test/topics/record-image",
            "datacontenttype": "application/json",
            "data": encode_push_envelope(data, subscription="projects/panoptes-test/subscriptions/record-image")}


@pytest.mark.slow
@pytest.mark.gcp
@pytest.mark.parametrize("backend", ["gcp"], indirect=True)
def test_staged_image_uploaded_routes_an_upload(start):
    names = settings()
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(names.project, names.compress_topic)
    publisher.create_topic(name=topic)
    pulled = subscriber.subscription_path(names.project, "staged-test-compress")
    subscriber.create_subscription(name=pulled, topic=topic)

    server = start("image-uploaded")
    body, headers = cloud_event(storage_cloud_event(StorageObject(names.raw_bucket, TINY, generation=1)))
    status, _ = server.request("POST", body=body, headers=headers)
    assert status == 200, server.log.read_text()[-3000:]

    response = subscriber.pull(subscription=pulled, max_messages=5, timeout=30)
    assert [json.loads(m.message.data) for m in response.received_messages] == [{"bucket_path": TINY}]


@pytest.mark.slow
@pytest.mark.gcp
@pytest.mark.parametrize("backend", ["gcp"], indirect=True)
def test_staged_record_image_records_a_frame(start, pocs):
    names = settings()
    runtime.bucket(names.raw_bucket).write(SOLVED, (pocs / "solved.fits.fz").read_bytes())
    server = start("record-image")
    body, headers = cloud_event(pubsub_event({"bucket_path": SOLVED}))
    status, _ = server.request("POST", body=body, headers=headers)
    assert status == 200, server.log.read_text()[-3000:]
    image = runtime.documents().get("images", "PAN001_14d3bd_20160909T081434")
    assert image is not None and image["bucket_path"] == SOLVED


@pytest.mark.slow
@pytest.mark.gcp
@pytest.mark.parametrize("backend", ["gcp"], indirect=True)
def test_staged_compress_fits_compresses_a_frame(start, pocs):
    names = settings()
    raw = runtime.bucket(names.raw_bucket)
    raw.write(TINY, (pocs / "tiny.fits").read_bytes())
    server = start("compress-fits")
    status, body = server.request("POST", body=encode_push_envelope({"bucket_path": TINY}))
    assert status == 200, server.log.read_text()[-3000:]
    assert json.loads(body)["compressed_path"] == TINY + ".fz"
    assert raw.exists(TINY + ".fz") and not raw.exists(TINY)


# Services written on other branches: the request every one of their kind must answer.
@pytest.mark.slow
@pytest.mark.gcp
@pytest.mark.parametrize("backend", ["gcp"], indirect=True)
@pytest.mark.parametrize("service, method, expected", [
    ("make-rgb-fits", "POST", range(400, 401)),  # a push endpoint: no envelope -> 400
    ("lookup-field", "GET", range(400, 500)),  # no search_string -> a 4xx that says so
    ("get-fits-header", "GET", range(400, 500)),  # no bucket_path -> a 4xx that says so
    ("data-explorer", "GET", range(200, 201)),  # the home page, also on an empty store
])
def test_staged_service_answers(start, service, method, expected):
    server = start(service)
    status, body = server.request(method, body={} if method == "POST" else None)
    assert status in expected, f"{service} answered {status}: {body[:500]!r}\n{server.log.read_text()[-3000:]}"


def test_a_deployment_stages_afresh_under_build_deploy(tmp_path):
    present("compress-fits")
    from panoptes_network.stack.deploy import STAGING_DIR, Runner, Stage

    root = tmp_path / "checkout"
    root.mkdir()
    for folder in ("compress-fits", "shared", lock.LOCK_FILE):
        (root / folder).symlink_to(REPOSITORY / folder)
    printed = []
    runner = Runner(root, echo=printed.append)
    step = Stage("deploy", "compress-fits", str(STAGING_DIR / "compress-fits"))
    runner.run(step)
    staged = root / STAGING_DIR / "compress-fits"
    (staged / "left-over-from-last-time.py").write_text("")
    runner.run(step)  # a second deployment uploads exactly the current source
    assert not (staged / "left-over-from-last-time.py").exists()
    assert (staged / "main.py").is_file() and (staged / "panoptes_network" / "handlers.py").is_file()
    assert printed[0].startswith("# stage compress-fits/")
