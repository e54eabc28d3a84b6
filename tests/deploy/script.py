"""Reading bin/deploy's --dry-run output back into commands, as the shell would split them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from panoptes_network.config import NAME_VARIABLES

REPOSITORY = Path(__file__).resolve().parents[2]
DEPLOY = REPOSITORY / "bin" / "deploy"
QUIET = " >/dev/null 2>&1"


MARKER_ENVIRONMENT = """
import json, os, platform, sys
print(json.dumps({
    "implementation_name": sys.implementation.name, "os_name": os.name, "sys_platform": sys.platform,
    "platform_machine": platform.machine(), "platform_system": platform.system(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "python_full_version": platform.python_version(),
}))
"""


def marker_environment(python: str | Path) -> dict[str, str]:
    """What environment markers see in ``python``'s environment (a venv's, not this process's)."""
    printed = subprocess.run([str(python), "-c", MARKER_ENVIRONMENT], capture_output=True, text=True, check=True)
    return json.loads(printed.stdout)


def clean_environment(**extra: str) -> dict[str, str]:
    """This machine's environment without any setting that would change the names or the policy."""
    drop = set(NAME_VARIABLES.values()) | {"GOOGLE_CLOUD_REGION", "PUBSUB_EMULATOR_HOST",
                                           "STORAGE_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"}
    env = {key: value for key, value in os.environ.items() if key not in drop and not key.startswith("PANOPTES_")}
    return {**env, **extra}


@dataclass
class Command:
    argv: list[str]
    role: str = "run"  # run | check | create | update | capture | probe | when-printed
    variable: str | None = None

    @property
    def flags(self) -> dict[str, list[str]]:
        """``--name=value`` (or bare ``--name``) options; a repeated option keeps every value."""
        found: dict[str, list[str]] = {}
        for argument in self.argv:
            if argument.startswith("--"):
                name, _, value = argument[2:].partition("=")
                found.setdefault(name, []).append(value)
        return found

    def flag(self, name: str) -> str:
        values = self.flags.get(name)
        assert values is not None, f"--{name} missing from {shlex.join(self.argv)}"
        assert len(values) == 1, f"--{name} given {len(values)} times"
        return values[0]

    @property
    def positional(self) -> list[str]:
        return [argument for argument in self.argv if not argument.startswith("--")]


@dataclass
class Script:
    text: str
    notes: list[str] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    def find(self, *prefix: str, role: str | None = None) -> list[Command]:
        return [c for c in self.commands if c.argv[:len(prefix)] == list(prefix) and (role is None or c.role == role)]

    def one(self, *prefix: str, role: str | None = None) -> Command:
        found = self.find(*prefix, role=role)
        assert len(found) == 1, f"{len(found)} commands start with {' '.join(prefix)} (role {role})"
        return found[0]

    def index(self, command: Command) -> int:
        return next(i for i, c in enumerate(self.commands) if c is command)


def parse(text: str) -> Script:
    script = Script(text)
    joined = text.replace("\\\n", " ")
    joined = re.sub(r"\|\|\n\s*", "|| ", joined)
    lines = [line.strip() for line in joined.splitlines() if line.strip()]
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            script.notes.append(line[1:].strip())
        elif line.startswith("if ") and line.endswith("; then"):
            check = line[3:-len("; then")]
            assert check.endswith(QUIET), line
            assert lines[i + 2] == "else" and lines[i + 4] == "fi", lines[i:i + 5]
            script.commands += [Command(shlex.split(check[:-len(QUIET)]), "check"),
                                Command(shlex.split(lines[i + 1]), "update"),
                                Command(shlex.split(lines[i + 3]), "create")]
            i += 4
        elif match := re.fullmatch(r'\[ -z "\$\((.*)\)" \] \|\| (.*)', line):
            script.commands += [Command(shlex.split(match.group(1)), "probe"),
                                Command(shlex.split(match.group(2)), "when-printed")]
        elif " || " in line:
            check, create = line.split(" || ")
            assert check.endswith(QUIET), line
            script.commands += [Command(shlex.split(check[:-len(QUIET)]), "check"),
                                Command(shlex.split(create), "create")]
        elif match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=\$\((.*)\)", line):
            script.commands.append(Command(shlex.split(match.group(2)), "capture", match.group(1)))
        else:
            script.commands.append(Command(shlex.split(line)))
        i += 1
    return script


def run_deploy(*arguments: str, env: dict[str, str] | None = None, check: bool = True,
               timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(DEPLOY), *arguments], capture_output=True, text=True, env=env, timeout=timeout,
                            cwd=REPOSITORY)
    if check:
        assert result.returncode == 0, f"bin/deploy {' '.join(arguments)} failed:\n{result.stderr}"
    return result


def dry_run(*arguments: str, env: dict[str, str] | None = None) -> Script:
    return parse(run_deploy(*arguments, "--dry-run", env=env).stdout)
