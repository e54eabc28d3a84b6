"""``panoptes-network reconcile``: objects and documents checked per second, locally and on
the emulators, beside its anchor (listing the same bucket and querying the same two
collections, without comparing anything): the least any reconcile must read."""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from pathlib import Path

from common import on_each_backend, table, write_section

SEQUENCES = 20


def populate(frames: int) -> None:
    """``frames`` recorded frames (a small .fits.fz each, its images document) over SEQUENCES
    observations with the right counts: a clean data set, where every object and document is
    read and compared."""
    from concurrent.futures import ThreadPoolExecutor

    from panoptes_network import runtime
    from panoptes_network.config import settings
    from panoptes_network.ids import parse_bucket_path

    current = settings()
    bucket, documents = runtime.bucket(current.raw_bucket), runtime.documents()

    def one(index: int) -> None:
        name = (f"PAN{1 + index % SEQUENCES:03d}/14d3bd/20180216T110000/"
                f"20180216T{12 + index // 3600:02d}{index // 60 % 60:02d}{index % 60:02d}.fits.fz")
        bucket.write(name, b"SIMPLE  =                    T")
        path = parse_bucket_path(name)
        documents.set("images", path.image_id, {"bucket_path": name, "sequence_id": path.sequence_id,
                                                "exptime": 120.0})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(frames)))
    for sequence in range(SEQUENCES):
        count = len(range(sequence, frames, SEQUENCES))
        documents.set("observations", f"PAN{1 + sequence:03d}_14d3bd_20180216T110000",
                      {"num_images": count, "total_exptime": 120.0 * count})


def measure(label: str, frames: int, repeat: int) -> list:
    from panoptes_network import reconcile, runtime
    from panoptes_network.config import settings

    populate(frames)
    current = settings()

    def ours() -> int:
        report = reconcile.reconcile(current, min_age=timedelta(0))
        assert not report.gaps, report.gaps[:3]
        return report.checked

    def anchor() -> int:
        documents = runtime.documents()
        return (sum(1 for _ in runtime.bucket(current.raw_bucket).list()) + len(documents.query("observations"))
                + len(documents.query("images")))

    times = {"ours": [], "anchor": []}
    checked = 0
    for _ in range(repeat):  # interleaved, so a busy moment of the machine hits both alike
        for name, function in (("ours", ours), ("anchor", anchor)):
            started = time.perf_counter()
            checked = function()
            times[name].append(time.perf_counter() - started)
    ours_s, anchor_s = sorted(times["ours"])[repeat // 2], sorted(times["anchor"])[repeat // 2]
    return [label, f"{checked:,}", f"{ours_s:.2f}", f"{checked / ours_s:,.0f}", f"{anchor_s:.2f}",
            f"{checked / anchor_s:,.0f}", f"{ours_s / anchor_s:.2f}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    on_each_backend(lambda label: rows.append(measure(label, args.frames, args.repeat)),
                    lambda reason: rows.append(["gcp (emulators)", f"not run: {reason}", "", "", "", "", ""]),
                    "bench-reconcile-")
    write_section("reconcile", "reconcile: objects and documents checked per second", (
        f"{args.frames} recorded frames (a .fits.fz each and its `images` document) over {SEQUENCES} observations "
        f"with the right counts, so nothing to fix and everything compared; median of {args.repeat} interleaved "
        "runs of `reconcile.reconcile` (list the raw bucket, query observations and images, run every check). "
        "Anchor: the same listing and the same two queries, comparing nothing.\n\n"
        + table(["backend", "checked", "reconcile (s)", "checked/s", "anchor (s)", "anchor checked/s",
                 "reconcile / anchor"], rows)))
    print(Path(__file__).with_name("RESULTS.md").read_text().split("<!-- begin reconcile -->")[1])


if __name__ == "__main__":
    main()
