"""SQLite connections the local adapters share: WAL, a long busy timeout, one per thread.

Several processes (``up``, ``drain``, their delivery workers) open the same files at
once; WAL lets readers run beside the one writer and ``BEGIN IMMEDIATE`` serialises
writers without deadlock. Writers in one process also queue on a lock of their own:
SQLite's busy handler waits by sleeping (1, 2, 5, 10 ms and longer), so threads that
met the write lock there would idle long after it was free.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

BUSY_TIMEOUT_SECONDS = 60.0


class ThreadLocalConnections:
    def __init__(self, path: Path, schema: str):
        self.path = Path(path)
        self._schema = schema
        self._local = threading.local()
        self._pid = os.getpid()
        self._writer = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection().executescript(schema)

    def connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a forked child must not reuse the parent's handles
            self._local = threading.local()
            self._pid = os.getpid()
            self._writer = threading.Lock()
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: the write lock is taken up front."""
        connection = self.connection()
        if connection.in_transaction:  # nested use joins the outer transaction
            yield connection
            return
        with self._writer:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
