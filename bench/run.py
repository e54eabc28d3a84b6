"""``make bench``: run every benchmark in bench/, one after another, each rewriting its
own section of bench/RESULTS.md. ``bench/run.py NAME`` runs one (e.g. ``ingest``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SKIP = {"run.py", "common.py"}


def main(names: list[str]) -> int:
    scripts = sorted(path for path in BENCH.glob("*.py") if path.name not in SKIP)
    if names:
        scripts = [path for path in scripts if path.stem in names]
        missing = set(names) - {path.stem for path in scripts}
        if missing:
            print(f"no benchmark named {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
