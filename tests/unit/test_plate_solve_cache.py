"""The tetra3rs database kept in the data directory: built once, then loaded by the next
process instead of built again; a cache file that is unreadable or made for other fields
is not used, and is built again rather than failing the solve."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from panoptes_network.solve import engines


def test_an_unreadable_cache_is_rebuilt_and_the_next_process_loads_it(tmp_path):
    path = engines.tetra3_cache_path(tmp_path)
    path.write_bytes(b"half a database" * 1000)  # as a crash mid-write (before the rename existed) left it

    started = time.perf_counter()
    database, how = engines.load_or_build_tetra3(tmp_path)
    build_seconds = time.perf_counter() - started
    assert how == "built"
    assert (database.min_fov_deg, database.max_fov_deg) == pytest.approx(engines.TETRA3_FOV_RANGE_DEG)
    kept = path.stat()
    assert kept.st_size > 1_000_000 and [p.name for p in tmp_path.iterdir()] == [path.name]  # no .part left

    # A second process (as a second plate-solve instance, or the next start) loads it.
    script = ("import sys, time; from pathlib import Path; from panoptes_network.solve import engines;"
              "started = time.perf_counter(); database, how = engines.load_or_build_tetra3(Path(sys.argv[1]));"
              "print(how, time.perf_counter() - started, database.num_patterns)")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr
    how, seconds, patterns = result.stdout.split("\n")[-2].split()
    assert how == "loaded" and int(patterns) == database.num_patterns
    assert float(seconds) < build_seconds
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino) == (kept.st_mtime_ns, kept.st_ino)  # read, not written again


def test_a_cache_made_for_other_fields_or_not_a_database_is_not_used(tmp_path, capsys):
    import tetra3rs

    path = engines.tetra3_cache_path(tmp_path)
    assert engines.tetra3_cached(path) is None  # none yet

    path.write_bytes(os.urandom(4096))
    assert engines.tetra3_cached(path) is None
    assert "ignoring unreadable tetra3rs cache" in capsys.readouterr().out

    # A real database, but for 40 degree fields (as a cache from another configuration would be).
    tetra3rs.SolverDatabase.generate_from_gaia(max_fov_deg=40.0).save_to_file(str(path))
    assert engines.tetra3_cached(path) is None
    assert "made for 40-40 degree fields, not 12-18" in capsys.readouterr().out
