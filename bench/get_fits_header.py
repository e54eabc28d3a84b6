"""Benchmark get-fits-header's read: range reads of the header only, against downloading
the whole object and calling ``astropy.io.fits.getheader``.

    .venv/bin/python bench/get_fits_header.py [--repeat 15] [--no-gcs]

Files: a full-size frame generated here (5208x3476 uint16, sky-like noise and stars,
the header of the real plate-solved POCS frame) as ``.fits`` and as ``.fits.fz``
compressed by the shared ``fits.compress`` (cached in bench/data/), plus the real small
frames from ../shared/data/pocs. Backends: the local bucket (files) and, unless
``--no-gcs`` or it is missing, fake-gcs-server through the Google client (HTTP on
loopback: a round trip costs something, as on Cloud Storage, only far less).

- ours: ``fits.read_header`` over ``bucket.read_range``, then ``header_as_json``
  (what the service does, minus HTTP);
- anchor: ``bucket.read(path)`` then ``astropy.io.fits.getheader`` on the bytes (the
  image's HDU: 1 for ``.fits.fz``), then the same ``header_as_json``.

Both sides run alternately in the same process, after one warm-up each. Writes the
"## get-fits-header" section of bench/RESULTS.md (only that section).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits as astropy_fits

REPOSITORY = Path(__file__).resolve().parents[1]
DATA = REPOSITORY / "bench" / "data"
POCS = Path(os.environ.get("PANOPTES_TEST_DATA", REPOSITORY.parent / "shared" / "data" / "pocs"))
WIDTH, HEIGHT = 5208, 3476
PREFIX = "PAN001/14d3bd/20160909T081152/"

sys.path.insert(0, str(REPOSITORY / "shared"))
sys.path.insert(0, str(REPOSITORY / "bench"))
from common import scratch, use_local_backend, write_section  # noqa: E402
from panoptes_network import fits  # noqa: E402


def full_size_frames() -> tuple[Path, Path]:
    """The generated full-size .fits and its .fits.fz, made once and cached."""
    plain, packed = DATA / "full-size.fits", DATA / "full-size.fits.fz"
    if plain.exists() and packed.exists():
        return plain, packed
    DATA.mkdir(parents=True, exist_ok=True)
    header = astropy_fits.getheader(POCS / "solved.fits.fz", 1)  # a real POCS header: WCS, COMMENT, HISTORY
    rng = np.random.default_rng(20160909)
    sky = rng.normal(2048, 12, size=(HEIGHT, WIDTH))
    for _ in range(3000):  # stars: bright Gaussian spots
        y, x = rng.integers(8, HEIGHT - 8), rng.integers(8, WIDTH - 8)
        yy, xx = np.mgrid[-6:7, -6:7]
        sky[y - 6 : y + 7, x - 6 : x + 7] += rng.uniform(200, 20000) * np.exp(-(xx**2 + yy**2) / 4.0)
    image = np.clip(sky, 0, 65535).astype(np.uint16)
    hdu = astropy_fits.PrimaryHDU(image)
    layout = set(hdu.header) | {"XTENSION", "PCOUNT", "GCOUNT", "EXTNAME"}  # this image's own, kept
    cards = list(hdu.header.cards) + [card for card in header.cards if card.keyword not in layout]
    hdu = astropy_fits.PrimaryHDU(image, header=astropy_fits.Header(cards))
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    plain.write_bytes(buffer.getvalue())
    packed.write_bytes(fits.compress(buffer.getvalue()).data)
    return plain, packed


class CountingBucket:
    """A bucket whose read_range calls are counted (the port's own adapters underneath)."""

    def __init__(self, bucket):
        self.bucket = bucket
        self.reads = 0

    def read_range(self, path: str, start: int, end: int) -> bytes:
        self.reads += 1
        return self.bucket.read_range(path, start, end)


@dataclass
class Row:
    backend: str
    name: str
    size: int
    header_end: int
    reads: int
    bytes_read: int
    ours_ms: float
    anchor_ms: float


def header_extent(data: bytes) -> tuple[int, int]:
    with astropy_fits.open(io.BytesIO(data)) as hdus:
        index = 1 if len(hdus) > 1 and isinstance(hdus[1], astropy_fits.CompImageHDU) else 0
        return index, hdus[index].fileinfo()["datLoc"]


def measure(bucket, name: str, path: str, data: bytes, repeat: int, backend: str) -> Row:
    hdu, header_end = header_extent(data)
    counting = CountingBucket(bucket)

    def ours():
        read = fits.read_header(lambda start, end: counting.read_range(path, start, end))
        return fits.header_as_json(read.header), read

    def anchor():
        whole = bucket.read(path)
        return fits.header_as_json(astropy_fits.getheader(io.BytesIO(whole), hdu))

    ours_header, read = ours()
    assert ours_header == anchor(), f"{name}: the two sides disagree on the header"  # warm-up and check
    ours_times, anchor_times = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        ours()
        ours_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        anchor()
        anchor_times.append(time.perf_counter() - started)
    return Row(backend, name, len(data), header_end, read.reads, read.bytes_read,
               1000 * statistics.median(ours_times), 1000 * statistics.median(anchor_times))


def start_fake_gcs():
    """fake-gcs-server on a free loopback port, storage only; None if it is not installed."""
    from panoptes_network.stack.emulators import EmulatorError, _wait_http, fake_gcs_binary, free_port

    try:
        binary = fake_gcs_binary()
    except EmulatorError as error:
        print(f"fake-gcs-server unavailable ({error}); local backend only", file=sys.stderr)
        return None, None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = scratch("bench-gcs-") / "fake-gcs.log"
    process = subprocess.Popen([str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
                                "-external-url", url, "-backend", "memory", "-log-level", "error"],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait_http(f"{url}/storage/v1/b", process, "fake-gcs-server", log)
    return process, url


def buckets(use_gcs: bool):
    """(backend name, Bucket) for each backend, through panoptes_network.runtime."""
    from panoptes_network import runtime
    from panoptes_network.config import Settings

    use_local_backend(scratch("bench-local-"))
    yield "local", runtime.bucket(Settings.from_env().raw_bucket)
    if not use_gcs:
        return
    process, url = start_fake_gcs()
    if process is None:
        return
    try:
        os.environ.update({"PANOPTES_BACKEND": "gcp", "STORAGE_EMULATOR_HOST": url, "GOOGLE_CLOUD_PROJECT": "bench"})
        runtime.reset()
        settings = Settings.from_env()
        from panoptes_network.adapters.gcs_bucket import storage_client

        storage_client(settings.project).create_bucket(settings.raw_bucket)
        yield "fake-gcs-server", runtime.bucket(settings.raw_bucket, settings)
    finally:
        process.terminate()
        process.wait(10)


def kib(size: int) -> str:
    return f"{size / 1024:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-gcs", action="store_true", help="the local backend only")
    arguments = parser.parse_args()
    if not (POCS / "solved.fits.fz").is_file():
        sys.exit(f"the POCS frames are not at {POCS} (set PANOPTES_TEST_DATA)")

    plain, packed = full_size_frames()
    files = [(plain.name, plain.read_bytes()), (packed.name, packed.read_bytes())]
    files += [(name, (POCS / name).read_bytes()) for name in ("tiny.fits", "solved.fits.fz")]
    rows: list[Row] = []
    for backend, bucket in buckets(not arguments.no_gcs):
        for name, data in files:
            bucket.write(PREFIX + name, data)
            rows.append(measure(bucket, name, PREFIX + name, data, arguments.repeat, backend))
            print(f"{backend:16} {name:22} reads={rows[-1].reads} bytes={rows[-1].bytes_read:>8} "
                  f"ours={rows[-1].ours_ms:8.2f} ms anchor={rows[-1].anchor_ms:8.2f} ms", file=sys.stderr)

    import astropy

    lines = [
        "## get-fits-header",
        "",
        f"astropy {astropy.__version__}. `bench/get_fits_header.py --repeat {arguments.repeat}`: median of "
        f"{arguments.repeat} runs each, ours and the anchor alternated in one process. Ours: "
        "`fits.read_header` over `bucket.read_range` + `header_as_json`. Anchor: `bucket.read` (the whole "
        "object) + `astropy.io.fits.getheader` + the same `header_as_json`. full-size = generated "
        f"{WIDTH}x{HEIGHT} uint16 with the plate-solved POCS header; `.fits.fz` by `fits.compress` (RICE_1). "
        "Header = bytes up to the image's data section.",
        "",
        "| backend | file | file (KiB) | header (KiB) | reads | read (KiB) | read / file "
        "| ours (ms) | anchor (ms) | anchor / ours |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.backend} | {row.name} | {kib(row.size)} | {kib(row.header_end)} | {row.reads} | "
            f"{kib(row.bytes_read)} | {row.bytes_read / row.size:.2%} | {row.ours_ms:.2f} | {row.anchor_ms:.2f} | "
            f"{row.anchor_ms / row.ours_ms:.1f}x |"
        )
    full = [row for row in rows if row.name == packed.name]
    summary = "; ".join(f"{row.backend}: {row.reads} reads, {kib(row.bytes_read)} KiB of {kib(row.size)} KiB, "
                        f"{row.anchor_ms / row.ours_ms:.0f}x faster than the anchor" for row in full)
    lines += ["", f"Full-size `.fits.fz`: {summary}.", ""]
    write_section("get-fits-header", "get-fits-header", "\n".join(lines[2:]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
