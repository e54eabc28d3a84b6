"""Benchmark make-rgb-fits on a full-size frame: the service path against bare rawpy.

    .venv/bin/python bench/make_rgb_fits.py [--repeat 8]

Both sides work on the same generated DNG (5208x3476, 12-bit RGGB, cached in
bench/data/) with the network's default options, each in its own fresh process so its
peak RSS is its own:

- anchor: ``rawpy.imread(path).postprocess(**options)`` and nothing else;
- service: a Pub/Sub push envelope POSTed to make-rgb-fits' own Flask app on the local
  backend: read the raw from the bucket, check it, decode, read the EXIF, build three
  headers, encode three FITS planes and write them (the planes are deleted between
  runs, outside the timing, so every run writes them);
- service, redelivered: the same message again, the planes already there.

Also, once each: both sides with ``half_size: false`` (full-resolution AAHD), the
heaviest option a message can ask for, for the memory it needs.

Rewrites only its own section of bench/RESULTS.md (``make bench`` runs every benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))  # for tests.dng, the DNG writer the tests use

from common import DATA, REPOSITORY, table, write_section  # noqa: E402

FRAME = DATA / "full-size.dng"
RAW_PATH = "PAN001/14d3bd/20180216T110623/20180216T112430.cr2"
GOAL = 1.3  # service wall / bare wall
CLOUD_RUN_MEMORY_MIB = 1024


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def peak_rss_mib() -> float:
    # VmHWM, not getrusage's ru_maxrss: a child inherits its parent's ru_maxrss across
    # fork and exec, and the parent here has just made a full-size frame.
    return _status_mib("VmHWM")


def current_rss_mib() -> float:
    return _status_mib("VmRSS")


# --- the cases, each run in a child process -------------------------------------------------


def case_bare(repeat: int, overrides: dict) -> dict:
    import rawpy

    from panoptes_network.pipeline.rgb import to_rawpy, validate_options

    arguments = to_rawpy(validate_options(overrides))
    baseline = current_rss_mib()
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        with rawpy.imread(str(FRAME)) as raw:
            image = raw.postprocess(**arguments)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        del image
    return {"walls": walls, "cpus": cpus, "baseline_mib": baseline, "peak_mib": peak_rss_mib()}


def case_service(repeat: int, overrides: dict, redeliver: bool) -> dict:
    os.environ["PANOPTES_BACKEND"] = "local"
    os.environ["PANOPTES_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-rgb-")
    for name in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        os.environ.pop(name, None)
    from panoptes_network import runtime
    from panoptes_network.config import settings
    from panoptes_network.messages import encode_push_envelope
    from panoptes_network.stack.services import load_app

    config = settings()
    runtime.bucket(config.raw_bucket, config).write(RAW_PATH, FRAME.read_bytes())
    rgb_bucket = runtime.bucket(config.rgb_bucket, config)
    client = load_app("make-rgb-fits").test_client()
    payload = {"bucket_path": RAW_PATH, **({"rawpy_options": overrides} if overrides else {})}

    def deliver() -> dict:
        response = client.post("/", json=encode_push_envelope(payload))
        body = response.get_json()
        if response.status_code != 200 or "dead_lettered" in body:
            raise SystemExit(f"make-rgb-fits failed: {response.status_code} {body}")
        return body

    if redeliver:
        deliver()  # the planes are there from now on
    baseline = current_rss_mib()
    walls, cpus = [], []
    for _ in range(repeat):
        if not redeliver:
            for info in list(rgb_bucket.list()):
                rgb_bucket.delete(info.name)
        start, cpu = time.perf_counter(), time.process_time()
        body = deliver()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        expected = 0 if redeliver else 3
        if body["written"] != expected:
            raise SystemExit(f"expected {expected} planes written, got {body}")
    return {"walls": walls, "cpus": cpus, "baseline_mib": baseline, "peak_mib": peak_rss_mib()}


def run_child(case: str, repeat: int, overrides: dict) -> dict:
    command = [sys.executable, __file__, "--child", case, "--repeat", str(repeat), "--options", json.dumps(overrides)]
    # The handler logs one JSON line per delivery on stdout; the result is the last line.
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPOSITORY)
    if done.returncode != 0:
        raise SystemExit(f"{case} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=8, help="timed runs per case (default 8)")
    parser.add_argument("--child", choices=("bare", "service", "redelivered"), help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = json.loads(args.options)
    if args.child:
        if args.child == "bare":
            result = case_bare(args.repeat, overrides)
        else:
            result = case_service(args.repeat, overrides, redeliver=args.child == "redelivered")
        print(json.dumps(result))
        return 0

    if not FRAME.is_file():
        from tests.dng import full_size_dng

        DATA.mkdir(parents=True, exist_ok=True)
        FRAME.write_bytes(full_size_dng())
    size_mib = FRAME.stat().st_size / 2**20

    # Alternate the two sides, two runs at a time, so that the load of a shared machine
    # falls on both alike.
    runs: dict[str, list[dict]] = {"bare": [], "service": []}
    for _ in range((args.repeat + 1) // 2):
        for case in runs:
            runs[case].append(run_child(case, 2, {}))
    redelivered = run_child("redelivered", args.repeat, {})
    full = {"half_size": False}
    bare_full, service_full = run_child("bare", 1, full), run_child("service", 1, full)

    def summary(results: list[dict]) -> tuple[float, float, float, float, float]:
        walls = [wall for result in results for wall in result["walls"]]
        cpus = [cpu for result in results for cpu in result["cpus"]]
        return (statistics.median(walls), min(walls), statistics.median(cpus), max(r["peak_mib"] for r in results),
                min(r["baseline_mib"] for r in results))

    bare, service = summary(runs["bare"]), summary(runs["service"])
    rows = [
        ("bare `rawpy.imread(path).postprocess(...)` (anchor)", *summary(runs["bare"])),
        ("service: push -> bucket read -> decode -> 3 FITS planes written", *summary(runs["service"])),
        ("service, redelivered (planes already there, nothing written)", *summary([redelivered])),
        ("bare, `half_size: false` (full-resolution AAHD), 1 run", *summary([bare_full])),
        ("service, `half_size: false` (full-resolution AAHD), 1 run", *summary([service_full])),
    ]
    ratio, ratio_of_fastest = service[0] / bare[0], service[1] / bare[1]
    import rawpy

    body = "\n".join([
        f"One full-size frame (5208x3476 12-bit RGGB DNG, {size_mib:.1f} MiB), rawpy {rawpy.__version__} "
        f"(LibRaw {'.'.join(map(str, rawpy.libraw_version))}), the network's default options (AAHD, half size, "
        f"16 bit, gamma 1, no auto-bright) unless said; `--repeat {args.repeat}`, each case in fresh processes, "
        "the two main cases alternated two runs at a time. The service case POSTs a push envelope to "
        "make-rgb-fits' own Flask app on the local backend: bucket read, checks, decode, EXIF, three headers, "
        "three FITS planes encoded and written (deleted between runs, untimed). Peak RSS is the process's "
        "whole peak (VmHWM), Python and imports included; baseline is its RSS before the timed runs.",
        "",
        table(["case", "wall median (s)", "wall min (s)", "median / anchor", "CPU median (s)", "peak RSS (MiB)",
               "baseline RSS (MiB)"],
              [[name, f"{median:.3f}", f"{fastest:.3f}", f"{median / bare[0]:.2f}x", f"{cpu:.3f}", f"{peak:.0f}",
                f"{baseline:.0f}"] for name, median, fastest, cpu, peak, baseline in rows]),
        "",
        f"Service / anchor: **{ratio:.2f}x** on the median wall, {ratio_of_fastest:.2f}x on the fastest runs "
        f"(goal <= {GOAL}x: {'met' if ratio <= GOAL else 'not met'}). Peak RSS of the service with the default "
        f"options: **{service[3]:.0f} MiB** of a {CLOUD_RUN_MEMORY_MIB} MiB Cloud Run instance; with "
        f"`half_size: false`: {summary([service_full])[3]:.0f} MiB.",
    ])
    write_section("make-rgb-fits", "make-rgb-fits against bare rawpy", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
