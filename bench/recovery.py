"""Crash recovery of the local stack (issue #11), beside its anchor in the same run.

``up`` is killed with ``kill -9`` (its whole process group) while its delivery worker
holds a compress-fits lease; then a fresh ``drain`` finishes the queue. The anchor is the
same ``drain`` over the same frames with no crash before it. The difference is what the
crash costs; without taking back the dead worker's lease it would be at least the ack
deadline (``PANOPTES_ACK_DEADLINE``, 600 s).

Run with ``make bench`` or ``.venv/bin/python bench/recovery.py [--frames N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import POCS, median, scratch, table, use_local_backend, write_section  # noqa: E402

SEQUENCE = "PAN001/14d3bd/20160909T081152"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "panoptes_network.stack.cli", *args]


def upload_frames(data_dir: Path, frames: int) -> None:
    from panoptes_network import runtime
    from panoptes_network.config import settings

    use_local_backend(data_dir)
    raw = runtime.bucket(settings().raw_bucket)
    data = (POCS / "tiny.fits").read_bytes()
    for second in range(frames):
        raw.write(f"{SEQUENCE}/20160909T0813{second:02d}.fits", data)


def timed_drain(data_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(cli("drain", "--data-dir", str(data_dir), "--workers", "1"), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def kill_up_holding_a_lease(data_dir: Path, frames: int) -> None:
    from panoptes_network import runtime

    environment = {**os.environ, "PANOPTES_HANG_AT": "compress-fits:read"}
    up = subprocess.Popen(cli("up", "--data-dir", str(data_dir), "--port", "0", "--workers", "1",
                              "--no-demo-prompt"), env=environment, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue = runtime.topics()
    try:
        deadline = time.monotonic() + 300
        while not (queue.counts().done >= frames and queue.leases()):  # every frame routed, a compress held
            if up.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("up never took a compress-fits delivery")
            time.sleep(0.05)
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
    if not all(lease.owner_gone for lease in queue.leases()):
        raise RuntimeError("the killed worker's lease is not seen as gone")


def checked(data_dir: Path, frames: int) -> None:
    from panoptes_network import runtime

    observation = runtime.documents().get("observations", SEQUENCE.replace("/", "_"))
    if not observation or observation["num_images"] != frames:
        raise RuntimeError(f"expected {frames} images recorded, found {observation}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not (POCS / "tiny.fits").exists():
        print(f"the POCS frames are not at {POCS}", file=sys.stderr)
        return 2
    plain, recovered = [], []
    for run in range(args.repeat):  # interleaved, so that load changes touch both alike
        data_dir = scratch("panoptes-bench-recovery-") / "plain"
        upload_frames(data_dir, args.frames)
        plain.append(timed_drain(data_dir))
        checked(data_dir, args.frames)

        data_dir = data_dir.parent / "killed"
        upload_frames(data_dir, args.frames)
        kill_up_holding_a_lease(data_dir, args.frames)
        recovered.append(timed_drain(data_dir))
        checked(data_dir, args.frames)
    def runs(values: list[float]) -> str:
        return ", ".join(f"{value:.2f}" for value in values)

    rows = [
        ["`drain` after `kill -9` of `up` mid-compress", f"{median(recovered):.2f}", runs(recovered)],
        ["`drain` of the same frames, no crash (anchor)", f"{median(plain):.2f}", runs(plain)],
    ]
    body = (
        f"{args.frames} frames (`tiny.fits` under {args.frames} image times) uploaded to the raw bucket; median of "
        f"{args.repeat} interleaved runs, each `drain --workers 1` a fresh process (its start-up included). "
        "In the crash run, `up --workers 1` had routed every frame and held the first "
        "compress-fits lease when its process group was killed with SIGKILL; the drain takes that lease back "
        "as it starts. Every run ends with all frames recorded once.\n\n"
        + table(["run", "median wall (s)", "each run (s)"], rows)
        + f"\n\nThe crash costs **{median(recovered) - median(plain):+.2f} s** against the anchor; "
        "without taking the lease back, the drain would wait out the 600 s ack deadline first."
    )
    write_section("crash-recovery", "Crash recovery of the local stack", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
