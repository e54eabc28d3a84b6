"""Benchmark the sky simulator: full-size frames rendered, and a simulated frame beside a real one.

    .venv/bin/python bench/simulator.py [--repeat 3]

Speed: ``simulate_frame`` on full-size frames of three fields (a sparse high-latitude
field, an exoplanet host's field, and the crowded Milky Way in Cygnus) and on the
demo's cut-out, with the night's conditions computed beforehand as the sequence helper
does (astropy's Moon and Sun, once a night, are timed apart). Anchor: the one step no
renderer can skip, drawing the frame's Gaussian noise (``standard_normal``, float32,
one value per pixel), timed in the same run.

Realism: the real ``unsolved.fits`` (a 700 x 700 cut-out of the KIC 8462852 field,
2016-09-09) beside a simulated frame of the same field, time, site and size: sources
``sep`` finds on the green super-pixels at 5 sigma, their median FWHM, the sky and its
noise per channel.

Rewrites only its own section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import POCS, median, table, write_section  # noqa: E402

FIELDS = (
    ("sparse, high latitude (Pegasus, RA 345, Dec +20)", 345.0, 20.0),
    ("HD 189733's field (RA 300.2, Dec +22.7)", 300.18, 22.71),
    ("Milky Way, Cygnus (KIC 8462852)", 301.56, 44.46),
)
WHEN = datetime(2024, 8, 10, 9, 0, tzinfo=timezone.utc)  # Mauna Loa, 23:00 local: all three fields up
REAL_WHEN = datetime(2016, 9, 9, 8, 12, 26, tzinfo=timezone.utc)


def _spec(ra: float, dec: float, when: datetime, **options):
    from panoptes_network.simulator import FrameSpec, conditions, site_for
    from panoptes_network.simulator.frame import mount_position

    spec = FrameSpec(ra=ra, dec=dec, time=when, **options)
    started = time.perf_counter()
    sky = conditions(site_for(spec.unit_id), [when], *mount_position(spec))[0]
    return FrameSpec(ra=ra, dec=dec, time=when, conditions=sky, **options), time.perf_counter() - started


def _wall_and_cpu(function, repeat: int) -> tuple[float, float]:
    """Medians of wall seconds and of CPU seconds (every thread of this process)."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return median(walls), median(cpus)


def speed(repeat: int) -> str:
    from panoptes_network.demo import FRAME_SHAPE
    from panoptes_network.simulator import simulate_frame

    rng = np.random.default_rng(0)
    anchor, anchor_cpu = _wall_and_cpu(lambda: rng.standard_normal((3476, 5208), dtype=np.float32), repeat)
    rows, astropy_seconds = [], []
    cases = [(name, ra, dec, {}) for name, ra, dec in FIELDS]
    cases.append((f"demo cut-out {FRAME_SHAPE[1]}x{FRAME_SHAPE[0]}, {FIELDS[1][0]}", FIELDS[1][1], FIELDS[1][2],
                   {"width": FRAME_SHAPE[1], "height": FRAME_SHAPE[0]}))
    for name, ra, dec, options in cases:
        spec, seconds = _spec(ra, dec, WHEN, **options)
        astropy_seconds.append(seconds)
        first = time.perf_counter()
        frame = simulate_frame(spec)  # reads and indexes the catalog the first time: timed apart
        first = time.perf_counter() - first
        wall, cpu = _wall_and_cpu(lambda: simulate_frame(spec), repeat)
        stars = frame.truth.stars
        size = f"{spec.width}x{spec.height}"
        full = spec.width == 5208
        rows.append([name, size, f"{int(stars['catalog'].sum()):,}", f"{int((~stars['catalog']).sum()):,}",
                     f"{first:.2f}", f"**{wall:.2f}**", f"{cpu:.2f}",
                     f"{wall / anchor:.1f}x / {cpu / anchor_cpu:.1f}x" if full else "-"])
    body = table(["field", "pixels", "catalog stars", "faint stars (G 10-13)", "first frame (s)",
                  "render wall (s)", "render CPU (s)", "of the anchor (wall / CPU)"], rows)
    return (f"{body}\n\nAnchor: drawing a full frame's Gaussian noise alone, {anchor:.2f} s wall, "
            f"{anchor_cpu:.2f} s CPU (medians of {repeat}). CPU time is the one to read on a shared machine: "
            f"wall time there is mostly waiting for a core. "
            f"Render: median of {repeat} after a first frame; the conditions (astropy: sidereal time, Moon, Sun, "
            f"the pointing's altitude) took {median(astropy_seconds):.2f} s a frame apart from the render, once "
            f"per night in `sequence_specs`. Goal: a full frame with ~2000 catalog stars plus faint ones in a "
            f"couple of seconds on an idle machine; on a loaded one compare the ratio to the anchor.")


def _sep_figures(pixels: np.ndarray) -> dict:
    import sep

    green = np.ascontiguousarray((pixels[0::2, 1::2] + pixels[1::2, 0::2]) / 2)
    background = sep.Background(green)
    sources = sep.extract(green - background.back(), 5, err=background.globalrms)
    fwhm = 2.355 * np.sqrt((sources["a"] ** 2 + sources["b"] ** 2) / 2) * 2  # super-pixels to pixels
    channels = [pixels[0::2, 0::2], pixels[0::2, 1::2], pixels[1::2, 0::2], pixels[1::2, 1::2]]
    level = [float(np.median(c)) for c in channels]
    spread = [float(1.4826 * np.median(np.abs(c - np.median(c)))) for c in channels]
    return {"sources": len(sources), "fwhm": float(np.median(fwhm)), "level": level, "spread": spread,
            "brightest": float(np.percentile(sources["flux"], 99))}


def realism() -> str:
    from astropy.io import fits

    from panoptes_network.simulator import simulate_frame

    real = fits.getdata(POCS / "unsolved.fits").astype(float)
    header = fits.getheader(POCS / "unsolved.fits")
    # unsolved.fits solved by solve-field here: centre 303.2101, +46.0192, up 89.3 deg E of N.
    spec, _ = _spec(303.2101, 46.0192, REAL_WHEN, width=real.shape[1], height=real.shape[0], seed=1, rotation_deg=89.3,
                    exptime=float(header["EXPTIME"]), mount=(header["RA-MNT"], header["DEC-MNT"]))
    simulated = simulate_frame(spec).data.astype(float)
    figures = {"real unsolved.fits": _sep_figures(real), "simulated, same field and time": _sep_figures(simulated)}
    rows = [[name, f["sources"], f"{f['fwhm']:.1f}", " / ".join(f"{v:.0f}" for v in f["level"]),
             " / ".join(f"{v:.1f}" for v in f["spread"]), f"{f['brightest']:,.0f}"] for name, f in figures.items()]
    return table(["frame (700x700)", "sep sources (5 sigma, green 2x2)", "median FWHM (px)",
                  "median ADU R / G1 / G2 / B", "robust rms ADU R / G1 / G2 / B", "99th pct source flux"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    body = "### Speed\n\n" + speed(args.repeat) + "\n\n### Beside a real frame\n\n" + realism()
    write_section("simulator", "Sky simulator: full-size frames", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
