"""What every benchmark shares: the machine line, a full-size frame, and RESULTS.md.

Each benchmark rewrites only its own section of RESULTS.md, between
``<!-- begin NAME -->`` and ``<!-- end NAME -->``, so they can run one at a time.
"""

from __future__ import annotations

import atexit
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from astropy.io import fits

BENCH = Path(__file__).resolve().parent
REPOSITORY = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
DATA = BENCH / "data"
POCS = Path(os.environ.get("PANOPTES_TEST_DATA", REPOSITORY.parent / "shared" / "data" / "pocs"))
FULL_SHAPE = (3476, 5208)  # rows, columns: a Canon EOS 100D frame


def scratch(prefix: str) -> Path:
    """A temporary folder, removed when the process exits (benchmark data is large)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def use_local_backend(data_dir: Path) -> None:
    """Point panoptes_network at the local backend in ``data_dir``, emulators or not."""
    from panoptes_network import runtime

    os.environ.update({"PANOPTES_BACKEND": "local", "PANOPTES_DATA_DIR": str(data_dir)})
    for name in runtime.EMULATOR_VARIABLES:
        os.environ.pop(name, None)
    runtime.reset()


LOCAL_LABEL = "local (SQLite, files)"
GCP_LABEL = "gcp (Firestore emulator, fake-gcs-server)"


def on_each_backend(measure, not_run, prefix: str) -> None:
    """``measure(label)`` on the local backend in a scratch data directory, then on the gcp
    backend against emulators started for it; ``not_run(reason)`` when they cannot start
    (no gcloud or Java here)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        use_local_backend(work)
        measure(LOCAL_LABEL)
        from panoptes_network.stack.emulators import EmulatorError, Emulators

        try:
            with Emulators(project="panoptes-bench") as emulators:
                os.environ.update(emulators.environment)
                os.environ["PANOPTES_BACKEND"] = "gcp"
                from google.cloud import pubsub_v1
                from panoptes_network import runtime
                from panoptes_network.config import settings
                from panoptes_network.stack.gcp import ensure_buckets, ensure_topic
                from panoptes_network.wiring import subscriptions

                runtime.reset()
                current = settings()
                ensure_buckets(current)
                # Topics without subscriptions: what a handler publishes is accepted and dropped.
                publisher = pubsub_v1.PublisherClient()
                for subscription in subscriptions(current):
                    ensure_topic(publisher, publisher.topic_path(current.project, subscription.topic))
                measure(GCP_LABEL)
        except EmulatorError as error:
            not_run(str(error))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}"


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def full_frame(path: Path, seed: int = 1) -> Path:
    """A full-size uint16 frame with stars and noise and a POCS header (cached in bench/data)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, columns = FULL_SHAPE
    image = rng.normal(2048, 30, FULL_SHAPE)
    size = 11
    y, x = np.mgrid[:size, :size] - size // 2
    for _ in range(4000):
        row, column = rng.integers(size, rows - size), rng.integers(size, columns - size)
        flux, width = rng.uniform(200, 40000), rng.uniform(1.2, 2.5)
        image[row - 5 : row + 6, column - 5 : column + 6] += flux * np.exp(-(x**2 + y**2) / (2 * width**2))
    image = np.clip(image, 0, 65535).astype(np.uint16)
    header = fits.getheader(POCS / "tiny.fits") if (POCS / "tiny.fits").exists() else fits.Header()
    for keyword in ("NAXIS1", "NAXIS2", "CHECKSUM", "DATASUM"):
        header.remove(keyword, ignore_missing=True)
    fits.PrimaryHDU(image, header=header).writeto(path)
    return path


def timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def median(values) -> float:
    return statistics.median(values)


_MEASURE = (
    "import resource, subprocess, sys;"
    "subprocess.run(sys.argv[1:], check=True);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss_mib(command: list[str], env: dict | None = None) -> tuple[float, float]:
    """Run a command in a fresh process; return (wall seconds, its peak resident memory in MiB)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, env=env,
                            check=True)
    wall = time.perf_counter() - started
    return wall, int(result.stdout.strip().splitlines()[-1]) / 1024


def write_section(name: str, title: str, body: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"<!-- begin {name} -->\n## {title}\n\nMeasured {stamp} on {machine()}; "
               f"load average before the run: {load_average()}.\n\n{body.strip()}\n<!-- end {name} -->")
    text = RESULTS.read_text() if RESULTS.exists() else (
        "# Benchmark results\n\nWritten by `make bench` (each script in bench/ rewrites its own section). "
        "Every row puts our path beside its anchor, measured in the same run on the same data.\n")
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
