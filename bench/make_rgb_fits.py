"""Benchmark make-rgb-fits on a full-size frame: the service path against bare rawpy.

    .venv/bin/python bench/make_rgb_fits.py [--rounds 5] [--repeat 4]

Both sides work on the same generated DNG (5208x3476, 12-bit RGGB, cached in
bench/data/) with the network's default options, each in fresh processes (so a peak RSS
is its side's own), alternated. A process times its first run apart from the others: a
service instance runs many frames, so the steady state is what the goal is judged on,
and the first request of a fresh process is reported beside it.

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
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))  # for tests.dng, the DNG writer the tests use

from common import DATA, REPOSITORY, scratch, table, use_local_backend, write_section  # noqa: E402

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
    for _ in range(1 + repeat):
        start, cpu = time.perf_counter(), time.process_time()
        with rawpy.imread(str(FRAME)) as raw:
            image = raw.postprocess(**arguments)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        del image
    return _result(walls, cpus, baseline)


def _result(walls: list[float], cpus: list[float], baseline: float) -> dict:
    """The first run of a fresh process apart from the rest (the steady state)."""
    return {"first_wall": walls[0], "first_cpu": cpus[0], "walls": walls[1:], "cpus": cpus[1:],
            "baseline_mib": baseline, "peak_mib": peak_rss_mib()}


def case_service(repeat: int, overrides: dict, redeliver: bool) -> dict:
    use_local_backend(scratch("bench-rgb-"))
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
    for _ in range(1 + repeat):
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
    return _result(walls, cpus, baseline)


def run_child(case: str, repeat: int, overrides: dict) -> dict:
    command = [sys.executable, __file__, "--child", case, "--repeat", str(repeat), "--options", json.dumps(overrides)]
    # The handler logs one JSON line per delivery on stdout; the result is the last line.
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPOSITORY)
    if done.returncode != 0:
        raise SystemExit(f"{case} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per side (default 5)")
    parser.add_argument("--repeat", type=int, default=4, help="steady-state runs per process after its first (default 4)")
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

    # Alternate the two sides, a process at a time, so that the load of a shared machine
    # falls on both alike.
    runs: dict[str, list[dict]] = {"bare": [], "service": []}
    for _ in range(args.rounds):
        for case in runs:
            runs[case].append(run_child(case, args.repeat, {}))
    redelivered = [run_child("redelivered", args.repeat, {}) for _ in range(2)]
    full = {"half_size": False}
    bare_full, service_full = run_child("bare", 0, full), run_child("service", 0, full)

    def steady(results: list[dict]) -> tuple[float, float, float, float, float]:
        walls = [wall for result in results for wall in result["walls"]]
        cpus = [cpu for result in results for cpu in result["cpus"]]
        return (statistics.median(walls), min(walls), statistics.median(cpus), max(r["peak_mib"] for r in results),
                min(r["baseline_mib"] for r in results))

    def first(results: list[dict]) -> tuple[float, float, float, float, float]:
        walls, cpus = [r["first_wall"] for r in results], [r["first_cpu"] for r in results]
        return (statistics.median(walls), min(walls), statistics.median(cpus), max(r["peak_mib"] for r in results),
                min(r["baseline_mib"] for r in results))

    bare, service = steady(runs["bare"]), steady(runs["service"])
    bare_first, service_first = first(runs["bare"]), first(runs["service"])
    full_bare, full_service = first([bare_full]), first([service_full])
    rows = [  # (case, its anchor, measurements)
        ("bare `rawpy.imread(path).postprocess(...)` (anchor)", bare, bare),
        ("service: push -> bucket read -> decode -> 3 FITS planes written", bare, service),
        ("bare, first run of a fresh process", bare_first, bare_first),
        ("service, first request of a fresh process", bare_first, service_first),
        ("service, redelivered (planes already there, nothing written)", bare, steady(redelivered)),
        ("bare, `half_size: false` (full-resolution AAHD), 1 run", full_bare, full_bare),
        ("service, `half_size: false` (full-resolution AAHD), 1 run", full_bare, full_service),
    ]
    ratio, ratio_of_fastest, ratio_first = service[0] / bare[0], service[1] / bare[1], service_first[0] / bare_first[0]
    import rawpy

    body = "\n".join([
        f"One full-size frame (5208x3476 12-bit RGGB DNG, {size_mib:.1f} MiB), rawpy {rawpy.__version__} "
        f"(LibRaw {'.'.join(map(str, rawpy.libraw_version))}), the network's default options (AAHD, half size, "
        f"16 bit, gamma 1, no auto-bright) unless said. Each side runs in {args.rounds} fresh processes, "
        f"alternated; each process times its first run apart, then {args.repeat} more (the steady state a "
        "running service is in). The service case POSTs a push envelope to make-rgb-fits' own Flask app on the "
        "local backend (data directory on this machine's disk): bucket read, checks, decode, EXIF, three "
        "headers, three FITS planes encoded and written (deleted between runs, untimed). Peak RSS is the "
        "process's whole peak (VmHWM), Python and imports included; baseline is its RSS before the timed runs. "
        "Each row is compared with the bare row of its kind (steady, first run, `half_size: false`).",
        "",
        table(["case", "wall median (s)", "wall min (s)", "median / anchor", "CPU median (s)", "peak RSS (MiB)",
               "baseline RSS (MiB)"],
              [[name, f"{median:.3f}", f"{fastest:.3f}", f"{median / anchor[0]:.2f}x", f"{cpu:.3f}",
                f"{peak:.0f}", f"{baseline:.0f}"] for name, anchor, (median, fastest, cpu, peak, baseline) in rows]),
        "",
        f"Service / anchor in the steady state: **{ratio:.2f}x** on the median wall, {ratio_of_fastest:.2f}x on "
        f"the fastest runs (goal <= {GOAL}x: {'met' if ratio <= GOAL else 'not met'}); first runs of fresh "
        f"processes: {ratio_first:.2f}x. Peak RSS of the service with the default options: "
        f"**{service[3]:.0f} MiB** of a {CLOUD_RUN_MEMORY_MIB} MiB Cloud Run instance; with `half_size: false`: "
        f"{service_full['peak_mib']:.0f} MiB.",
    ])
    write_section("make-rgb-fits", "make-rgb-fits against bare rawpy", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
