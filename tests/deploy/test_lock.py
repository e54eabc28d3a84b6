"""requirements.lock: every install takes its versions, and it covers every requirement.

The lock is the one place versions are chosen (README: Dependencies). These tests fail
when a requirements file names a package the lock lacks or a version it does not hold
(`make lock` refreshes it), when a service would be staged with anything but the lock's
pins, and when `make install` on a fresh checkout installs anything but the locked versions.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from panoptes_network.stack import lock, staging
from panoptes_network.stack.services import SERVICES

from tests.conftest import skip_or_fail
from tests.deploy.script import REPOSITORY, marker_environment

PYPI = "https://pypi.org/simple"
PRESENT = [name for name in SERVICES if (REPOSITORY / name / "main.py").is_file()]


@pytest.fixture(scope="module")
def pins():
    return lock.read(REPOSITORY)


def test_the_lock_satisfies_every_requirement_of_the_repository():
    assert lock.stale(REPOSITORY) == []
    sources = lock.inputs(REPOSITORY)
    # What is read: the shared library with its extras and build, the dev tools, every service.
    assert {f"{service}/requirements.txt" for service in SERVICES if (REPOSITORY / service / "requirements.txt")
            .is_file()} | {"requirements-dev.txt"} <= set(sources)
    assert any("[lookup]" in source for source in sources) and any("build-system" in s for s in sources)


def test_the_lock_holds_one_version_of_each_package_with_pypi_hashes(pins):
    text = (REPOSITORY / lock.LOCK_FILE).read_text()
    assert "#    make lock" in text.splitlines()[1]  # written by `make lock`, not by hand
    assert len(pins) > 50
    for pin in pins.values():
        assert pin.hashes and all(digest.startswith("sha256:") and len(digest) == 71 for digest in pin.hashes), pin
        assert pin.index == PYPI, f"{pin.name} came from {pin.index!r}, not PyPI"
        assert pin.required_by, f"{pin.name} is locked but nothing needs it"
    # One entry per package: the Python the tests run on and the deploy runtime's get the same version.
    names = [line.split("==")[0] for line in text.splitlines() if line and not line[0].isspace()
             and not line.startswith("#")]
    assert len(names) == len(set(names)) == len(pins)


def test_parse_refuses_two_versions_of_a_package_and_loose_pins():
    with pytest.raises(lock.LockError, match="two versions of numpy"):
        lock.parse("numpy==2.4.6 ; python_full_version < '3.12' \\\n    --hash=sha256:aa\n"
                   "numpy==2.5.5 ; python_full_version >= '3.12' \\\n    --hash=sha256:bb\n")
    with pytest.raises(lock.LockError, match="not one exact version"):
        lock.parse("numpy>=2\n")


def checkout_with(tmp_path: Path, service: str, extra_requirement: str) -> Path:
    """A checkout whose ``service`` asks for one more requirement than the repository's."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("shared", lock.LOCK_FILE, lock.DEV_REQUIREMENTS):
        (root / name).symlink_to(REPOSITORY / name)
    folder = root / service
    folder.mkdir()
    (folder / "main.py").write_text("")
    original = (REPOSITORY / service / "requirements.txt").read_text()
    (folder / "requirements.txt").write_text(original + extra_requirement + "\n")
    return root


@pytest.mark.parametrize("requirement, reason", [
    ("cowsay>=6.0", "compress-fits/requirements.txt names cowsay, which requirements.lock lacks"),
    ("numpy<2", "compress-fits/requirements.txt asks for 'numpy<2'; requirements.lock has numpy=="),
])
def test_a_requirement_the_lock_does_not_satisfy_is_caught_and_not_staged(tmp_path, requirement, reason):
    root = checkout_with(tmp_path, "compress-fits", requirement)
    assert [message for message in lock.stale(root) if reason in message], lock.stale(root)
    with pytest.raises(staging.StagingError, match="run `make lock`"):
        staging.stage("compress-fits", tmp_path / "out", root=root)
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize("service", PRESENT)
def test_staged_requirements_are_the_locks_pins_of_what_the_service_needs(service, pins, tmp_path):
    staged = staging.stage(service, tmp_path / service) / "requirements.txt"
    text = staged.read_text()
    assert text.startswith("# Staged by bin/deploy from requirements.lock")
    staged_pins = lock.parse(text)
    # Each pin exactly the lock's: version, environment marker and every hash.
    for name, pin in staged_pins.items():
        assert (pin.version, pin.marker, pin.hashes) == (pins[name].version, pins[name].marker, pins[name].hashes)
    assert text.count("--hash=") == sum(len(pin.hashes) for pin in staged_pins.values())
    # What the service and the shared library name is there...
    named = {canonicalize_name(Requirement(line).name) for line in staging.requirements_for(service)}
    assert named <= set(staged_pins)
    # ...and whatever a staged package needs (the lock's "via"), down to the last one.
    for pin in pins.values():
        if pin.required_by & set(staged_pins):
            assert pin.name in staged_pins, f"{pin.name} is needed by {sorted(pin.required_by & set(staged_pins))}"
    # Checked against the packages' own metadata too (those installed here at the locked version).
    checked = 0
    for name in staged_pins:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if distribution.version != pins[name].version:
            continue
        checked += 1
        for line in distribution.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                assert canonicalize_name(requirement.name) in staged_pins, f"{name} needs {line}"
    assert checked >= len(staged_pins) // 2, "too few staged packages are installed here at the locked version"
    # Nothing of the dev tools: a service installs what it runs.
    assert not {"pytest", "playwright", "hypothesis", "uv"} & set(staged_pins)


# --- make install ---------------------------------------------------------------------------

def fresh_checkout(destination: Path) -> Path:
    """The repository's files as they are in the working tree, less what git ignores: what a clone gets."""
    if not (REPOSITORY / ".git").exists() or not shutil.which("git"):
        skip_or_fail("not a git checkout: cannot tell which files a clone has")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPOSITORY, capture_output=True, check=True).stdout
    for relative in filter(None, listed.decode().split("\0")):
        source = REPOSITORY / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    return destination


@pytest.mark.slow
def test_make_install_on_a_fresh_clone_installs_exactly_the_locked_versions(tmp_path, pins):
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    if os.environ.get("CI") == "true" and (REPOSITORY / ".venv" / ".installed").is_file():
        # CI runs on a clean clone, and its `make test` has just made .venv with `make install`
        # from nothing: that is the fresh install to check, and making a second one would
        # cost two minutes for the same answer.
        clone = REPOSITORY
    else:
        if not shutil.which("make"):
            skip_or_fail("make is not installed")
        clone = fresh_checkout(tmp_path / "clone")
        assert not (clone / ".venv").exists()
        python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        result = subprocess.run(["make", "install", f"PYTHON={python}"], cwd=clone, env=env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]

    venv_python = clone / ".venv" / "bin" / "python"
    frozen = subprocess.run([str(venv_python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                            env=env, check=True).stdout.splitlines()
    installed = {}
    for line in frozen:
        if line.startswith(("-e ", "#")) or " @ " in line:
            continue  # the editable shared library (and pip's comment on it), below
        name, _, version = line.partition("==")
        installed[canonicalize_name(name)] = version
    installed.pop("pip")  # the venv's own installer, not a dependency
    environment = marker_environment(venv_python)
    expected = {name: pin.version for name, pin in pins.items() if pin.applies(environment)}
    assert installed == expected
    # The shared library is the checkout's, editable, so the code under test is the code in the tree.
    where = subprocess.run([str(venv_python), "-c", "import panoptes_network; print(panoptes_network.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout.strip()
    assert Path(where).resolve() == (clone / "shared" / "panoptes_network" / "__init__.py").resolve()
