"""The source a service is deployed from: its folder, the shared library, one requirements.txt.

Cloud Functions and Cloud Run build from one directory. ``stage`` writes it:

    SERVICE/*             the service's own files (main.py, README.md, Dockerfile ...)
    panoptes_network/     the shared library, importable beside main.py
    requirements.txt      from requirements.lock: the exact versions, with hashes, of
                          shared/pyproject.toml's dependencies, the service's own and
                          everything those need

so the deployed service imports the code and the versions of the packages the tests
imported, and nothing else of the repository is uploaded.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from panoptes_network.stack import lock
from panoptes_network.stack.services import SERVICES, repository_root

SHARED_PACKAGE = "panoptes_network"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", ".DS_Store")


class StagingError(ValueError):
    pass


def service_folder(service: str, root: Path | None = None) -> Path:
    return (root or repository_root()) / service


def shared_folder(root: Path | None = None) -> Path:
    return (root or repository_root()) / "shared"


def missing_reason(service: str, root: Path | None = None) -> str | None:
    """Why ``service`` cannot be staged from this checkout, or None."""
    if service not in SERVICES:
        return f"unknown service {service!r}"
    main = service_folder(service, root) / "main.py"
    if not main.is_file():
        return f"{service} has no {service}/main.py in this checkout"
    return None


def shared_requirements(root: Path | None = None) -> list[str]:
    pyproject = tomllib.loads((shared_folder(root) / "pyproject.toml").read_text())
    return list(pyproject["project"]["dependencies"])


def merge_requirements(*groups: list[str]) -> list[str]:
    """One line per package (and environment marker), specifiers of every mention combined."""
    merged: dict[tuple[str, str], Requirement] = {}
    for group in groups:
        for line in group:
            try:
                requirement = Requirement(line)
            except InvalidRequirement as error:
                raise StagingError(f"invalid requirement {line!r}: {error}") from None
            if requirement.url:
                raise StagingError(f"{line!r}: direct references cannot be merged")
            key = (canonicalize_name(requirement.name), str(requirement.marker or ""))
            if key in merged:
                known = merged[key]
                known.specifier = SpecifierSet(str(known.specifier & requirement.specifier))
                known.extras |= requirement.extras
            else:
                merged[key] = requirement
    return [str(requirement) for requirement in merged.values()]


def requirements_for(service: str, root: Path | None = None) -> list[str]:
    own = service_folder(service, root) / "requirements.txt"
    try:
        return merge_requirements(shared_requirements(root), lock.requirement_lines(own) if own.is_file() else [])
    except lock.LockError as error:
        raise StagingError(str(error)) from None


def locked_requirements(service: str, root: Path | None = None) -> list[lock.Pin]:
    """The pins of requirements.lock that ``service`` installs: what it names and what that needs."""
    try:
        return lock.pins_for(requirements_for(service, root), lock.read(root), f"{service} (with the shared library)")
    except lock.LockError as error:
        raise StagingError(str(error)) from None


def stage(service: str, destination: Path, root: Path | None = None) -> Path:
    """Write the deployable source of ``service`` into ``destination`` (absent or empty)."""
    reason = missing_reason(service, root)
    if reason:
        raise StagingError(reason)
    pins = locked_requirements(service, root)  # before anything is written: an unlocked requirement stops here
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise StagingError(f"{destination} is not empty; staging writes into a new directory")
    shutil.copytree(service_folder(service, root), destination, ignore=IGNORED, dirs_exist_ok=True)
    if (destination / SHARED_PACKAGE).exists():
        raise StagingError(f"{service}/{SHARED_PACKAGE} would hide the shared library")
    shutil.copytree(shared_folder(root) / SHARED_PACKAGE, destination / SHARED_PACKAGE, ignore=IGNORED)
    (destination / "requirements.txt").write_text(
        f"# Staged by bin/deploy from {lock.LOCK_FILE}: shared/pyproject.toml's dependencies,\n"
        f"# {service}/requirements.txt and what they need, at the locked versions and hashes.\n"
        + "\n".join(pin.render() for pin in pins) + "\n"
    )
    return destination
