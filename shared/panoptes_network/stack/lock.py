"""requirements.lock: the one set of exact versions, with hashes, that every install takes.

``make lock`` writes it with ``uv pip compile`` from shared/pyproject.toml (with its
``lookup`` extra), requirements-dev.txt and every service's requirements.txt: one version
of each package for every Python from 3.11, with the hashes of PyPI's files. ``make
install`` installs it, and ``bin/deploy`` stages each service's requirements.txt from it
(:func:`pins_for`): the pins of what the service names and, following the lock's
``# via`` annotations, of everything those need.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from panoptes_network.stack.services import SERVICES, repository_root

LOCK_FILE = "requirements.lock"
DEV_REQUIREMENTS = "requirements-dev.txt"
SHARED_PYPROJECT = Path("shared") / "pyproject.toml"
REFRESH = "run `make lock` (README: Dependencies)"


class LockError(ValueError):
    pass


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    marker: str  # "" for every environment
    hashes: tuple[str, ...]
    # Canonical names of the locked packages that need it, or the inputs ("-r FILE", "panoptes-network (...)").
    required_by: frozenset[str]
    index: str = ""  # where uv found it ("# from ...")

    def requirement(self) -> str:
        return f"{self.name}=={self.version}" + (f" ; {self.marker}" if self.marker else "")

    def render(self) -> str:
        return " \\\n    ".join([self.requirement(), *(f"--hash={digest}" for digest in self.hashes)])

    def applies(self, environment: dict[str, str] | None = None) -> bool:
        return not self.marker or Requirement(f"x ; {self.marker}").marker.evaluate(environment)


def parse(text: str) -> dict[str, Pin]:
    """The pins of a ``uv pip compile --generate-hashes`` output, by canonical name."""
    entries: list[dict] = []
    in_via = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().removesuffix("\\").strip()
        if not line or (raw.startswith("#") and not entries):  # the header
            continue
        if not raw[0].isspace():
            try:
                requirement = Requirement(line)
            except InvalidRequirement as error:
                raise LockError(f"{LOCK_FILE}:{number}: {error}") from None
            pinned = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            if len(pinned) != 1 or len(requirement.specifier) != 1:
                raise LockError(f"{LOCK_FILE}:{number}: {line!r} is not one exact version")
            entries.append({"name": canonicalize_name(requirement.name), "version": pinned[0],
                            "marker": str(requirement.marker or ""), "hashes": [], "via": set(), "index": ""})
            in_via = False
        elif not entries:
            raise LockError(f"{LOCK_FILE}:{number}: {line!r} belongs to no requirement")
        elif line.startswith("--hash="):
            entries[-1]["hashes"].append(line.removeprefix("--hash="))
        elif line.startswith("# via"):
            first = line.removeprefix("# via").strip()
            if first:
                entries[-1]["via"].add(first)
            in_via = not first
        elif line.startswith("# from "):
            entries[-1]["index"] = line.removeprefix("# from ").strip()
            in_via = False
        elif in_via and line.startswith("#"):
            entries[-1]["via"].add(line.lstrip("#").strip())
    pins: dict[str, Pin] = {}
    for entry in entries:
        if entry["name"] in pins:
            raise LockError(f"{LOCK_FILE} has two versions of {entry['name']} ({pins[entry['name']].version}, "
                            f"{entry['version']}); the tests run one: lock one for every Python")
        via = frozenset(item if item.startswith("-r ") or " " in item else canonicalize_name(item)
                        for item in entry["via"])
        pins[entry["name"]] = Pin(entry["name"], entry["version"], entry["marker"], tuple(entry["hashes"]),
                                  via, entry["index"])
    return pins


def read(root: Path | None = None) -> dict[str, Pin]:
    path = (root or repository_root()) / LOCK_FILE
    if not path.is_file():
        raise LockError(f"{path} is missing; {REFRESH}")
    return parse(path.read_text())


def closure(pins: dict[str, Pin], names: Iterable[str]) -> list[Pin]:
    """The pins of ``names`` and of everything they need, in the lock's (alphabetical) order."""
    needs: dict[str, set[str]] = {name: set() for name in pins}
    for pin in pins.values():
        for dependent in pin.required_by:
            if dependent in needs:
                needs[dependent].add(pin.name)
    wanted: set[str] = set()
    todo = [canonicalize_name(name) for name in names]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(needs.get(name, ()))
    return [pin for name, pin in pins.items() if name in wanted]


def unlocked(requirements: Iterable[str], pins: dict[str, Pin], source: str) -> list[str]:
    """Why the lock does not satisfy ``requirements`` (one reason each), empty when it does."""
    reasons = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue  # not for the Pythons the lock is for
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            reasons.append(f"{source} names {requirement.name}, which {LOCK_FILE} lacks")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            reasons.append(f"{source} asks for {line!r}; {LOCK_FILE} has {pin.name}=={pin.version}")
    return reasons


def pins_for(requirements: list[str], pins: dict[str, Pin], source: str) -> list[Pin]:
    """The locked pins an install of ``requirements`` needs; LockError if the lock lacks one."""
    reasons = unlocked(requirements, pins, source)
    if reasons:
        raise LockError("; ".join(reasons) + f": {REFRESH}")
    return closure(pins, (Requirement(line).name for line in requirements))


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a plain requirements file: no pip options, comments dropped."""
    lines = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise LockError(f"{path}:{number}: pip options ({line.split()[0]}) are not allowed here; "
                            "list plain requirements")
        lines.append(line)
    return lines


def inputs(root: Path | None = None) -> dict[str, list[str]]:
    """What the lock is made from, by source: the shared library (its extras and build too),
    the dev requirements and each service's requirements.txt present in the checkout."""
    root = root or repository_root()
    pyproject = tomllib.loads((root / SHARED_PYPROJECT).read_text())
    found = {
        f"{SHARED_PYPROJECT} dependencies": list(pyproject["project"]["dependencies"]),
        f"{SHARED_PYPROJECT} build-system": list(pyproject["build-system"]["requires"]),
        DEV_REQUIREMENTS: requirement_lines(root / DEV_REQUIREMENTS),
    }
    for extra, requirements in pyproject["project"].get("optional-dependencies", {}).items():
        found[f"{SHARED_PYPROJECT} [{extra}]"] = list(requirements)
    for service in SERVICES:
        path = root / service / "requirements.txt"
        if path.is_file():
            found[f"{service}/requirements.txt"] = requirement_lines(path)
    return found


def stale(root: Path | None = None) -> list[str]:
    """Every requirement of the repository that requirements.lock does not satisfy."""
    pins = read(root)
    return [reason for source, requirements in inputs(root).items()
            for reason in unlocked(requirements, pins, source)]
