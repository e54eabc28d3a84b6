"""Benchmark plate-solve on full-size simulated frames: the service path against
astrometry.net's ``solve-field`` with scale hints.

    .venv/bin/python bench/plate_solve.py [--fields 8]

The frames are the first ``--fields`` of the solver test's fields (tests/sky_fields.py),
rendered by the sky simulator (5208x3476 RGGB, no WCS), each stored as a ``.fits.fz`` in a
local-backend raw bucket and as a plain ``.fits`` for solve-field. Both sides are judged
against the simulator's true WCS at 100 points over the frame (corners included).

- service path: ``solve_object`` as the plate-solve service runs it: download the frame,
  calibrate, detect, solve (tetra3rs), refine the TAN-SIP fit, write the WCS file and the
  documents. Its tetra3rs database is built before the timing, as the Docker image ships
  it, and one frame is solved untimed first, as a running instance is warm.
- anchor: ``solve-field --scale-units arcsecperpix --scale-low 9.27 --scale-high 11.33
  --downsample 2`` (our detection also works on 2x2 super-pixels) with the installed
  Tycho-2 index, its own SIP fit (order 2), no plots, no new FITS.

Rewrites only its own section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))  # for tests.sky_fields, the fields the solver test uses

from common import scratch, table, use_local_backend, write_section  # noqa: E402

GOAL = 0.25  # service wall / solve-field wall
SCALE = 10.3
SEQUENCE = "PAN001/14d3bd/20240601T080000"


def solve_field(path: Path, work: Path) -> tuple[float, object | None]:
    from astropy.io import fits
    from astropy.wcs import WCS

    command = ["solve-field", str(path), "--dir", str(work), "--overwrite", "--no-plots", "--new-fits", "none",
               "--scale-units", "arcsecperpix", "--scale-low", f"{SCALE * 0.9:.2f}", "--scale-high",
               f"{SCALE * 1.1:.2f}", "--downsample", "2", "--cpulimit", "120", "--corr", "none", "--match", "none",
               "--rdls", "none", "--index-xyls", "none", "--solved", "none", "--temp-axy"]
    started, cpu_before = time.perf_counter(), _children_cpu()
    subprocess.run(command, capture_output=True, check=False)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    solution = work / (path.stem + ".wcs")
    return wall, cpu, (WCS(fits.getheader(solution)) if solution.exists() else None)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=6)
    arguments = parser.parse_args()
    if not shutil.which("solve-field"):
        print("solve-field is not installed (apt-get install astrometry.net astrometry-data-tycho2-10-19)",
              file=sys.stderr)
        return 1

    from astropy.io import fits

    from panoptes_network import fits as panoptes_fits
    from panoptes_network import runtime
    from panoptes_network.config import settings
    from panoptes_network.pipeline.platesolve import solve_object
    from panoptes_network.simulator import simulate_frame
    from panoptes_network.solve.engines import tetra3_database
    from tests.sky_fields import FIELDS, grid_error_arcsec

    work = scratch("plate-solve-bench-")
    use_local_backend(work / "data")
    current = settings()
    tetra3_database(None)  # built once per process, outside the timing
    # A running instance has its imports, catalog and index loaded: warm them up untimed.
    from panoptes_network.solve import solve_bytes

    solve_bytes(simulate_frame(FIELDS[-1].spec()).to_fits_bytes(), "warm-up")
    raw = runtime.bucket(current.raw_bucket, current)

    rows, ours, theirs = [], [], []
    for number, field in enumerate(FIELDS[: arguments.fields]):
        simulated = simulate_frame(field.spec())
        plain = simulated.to_fits_bytes()
        bucket_path = f"{SEQUENCE}/20240601T08{number:02d}00.fits.fz"
        raw.write(bucket_path, panoptes_fits.compress(plain).data)
        local = work / f"field{number}.fits"
        local.write_bytes(plain)
        shape = simulated.data.shape

        started, cpu_before = time.perf_counter(), _own_cpu()
        outcome = solve_object(bucket_path, current)
        our_wall, our_cpu = time.perf_counter() - started, _own_cpu() - cpu_before
        our_error = None
        if outcome["outcome"] == "solved":
            stored = runtime.bucket(current.processed_bucket, current).read(outcome["wcs_path"])
            from astropy.wcs import WCS

            our_error = grid_error_arcsec(WCS(fits.Header.fromstring(stored[:2880 * 8].decode("ascii", "replace"))),
                                          simulated.truth.wcs, shape)
        their_wall, their_cpu, their_wcs = solve_field(local, work / f"solve-field-{number}")
        their_error = grid_error_arcsec(their_wcs, simulated.truth.wcs, shape) if their_wcs is not None else None
        ours.append((our_wall, our_cpu, our_error))
        theirs.append((their_wall, their_cpu, their_error))

        def cell(error):
            return "unsolved" if error is None else f"{np.median(error):.2f} / {error.max():.2f}"

        rows.append([field.name, f"{our_wall:.2f} / {our_cpu:.2f}", cell(our_error), f"{their_wall:.2f} / {their_cpu:.2f}",
                     cell(their_error)])
        print(rows[-1], flush=True)

    def summary(results):
        solved = [error for _, _, error in results if error is not None]
        every = np.concatenate(solved) if solved else np.array([np.nan])
        return (float(np.median([wall for wall, _, _ in results])), float(np.median([cpu for _, cpu, _ in results])),
                len(solved), float(np.median(every)), float(np.max(every)))

    our_wall, our_cpu, our_solved, our_median, our_worst = summary(ours)
    their_wall, their_cpu, their_solved, their_median, their_worst = summary(theirs)
    count = len(rows)
    body = (
        f"{count} full-size simulated frames (5208x3476 RGGB, tests/sky_fields.py: poles, galactic plane, sparse "
        "fields, rotated cameras, cloud), each solved once by each side. Error: distance between the solution and "
        "the simulator's true WCS at 100 points over the frame, corners included (median / worst, arcsec). The "
        "service path downloads the .fits.fz, calibrates, detects, solves with tetra3rs, refines the TAN-SIP fit "
        "to every matched Gaia star and writes the WCS and documents; solve-field gets the plain .fits, "
        "scale hints of 10.3\" +-10% and --downsample 2.\n\n"
        + table(["field", "service wall / CPU (s)", "service error (\")", "solve-field wall / CPU (s)",
                 "solve-field error (\")"], rows)
        + "\n\n"
        + table(["path", "solved", "median wall (s)", "median CPU (s)", "median error (\")", "worst error (\")"], [
            ["plate-solve service path", f"{our_solved}/{count}", f"{our_wall:.2f}", f"{our_cpu:.2f}",
             f"{our_median:.2f}", f"{our_worst:.2f}"],
            ["`solve-field` with scale hints (anchor)", f"{their_solved}/{count}", f"{their_wall:.2f}",
             f"{their_cpu:.2f}", f"{their_median:.2f}", f"{their_worst:.2f}"],
        ])
        + f"\n\nRatio of median wall times: **{our_wall / their_wall:.2f}x** solve-field's; of CPU times "
        f"**{our_cpu / their_cpu:.2f}x** (goal <= {GOAL}x, at equal or better accuracy). Both sides run one process "
        "on one core; on a machine shared with other work, CPU time is the steadier measure of their cost."
    )
    write_section("plate-solve", "plate-solve against solve-field", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
