"""Topics on one machine: a durable queue in ``DATA_DIR/queue.sqlite``.

Publishing stores one delivery per subscription of the topic (a topic without
subscriptions drops the message, as Pub/Sub does). Deliveries are leased before they
are pushed, like Pub/Sub's ack deadline: a worker that dies mid-delivery loses its
lease and another worker retries, so ``up`` and ``drain`` can run at the same time.
A lease names the process that holds it (:mod:`~panoptes_network.adapters.owners`), so
the lease of a process that is gone (killed, crashed) is taken back at once
(:meth:`LocalQueue.reclaim_dead_leases`) instead of at the end of the ack deadline.
A failed delivery is retried with exponential backoff; after ``max_attempts`` it is
dead-lettered with the last error.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from panoptes_network.adapters import owners
from panoptes_network.adapters.sqlite import ThreadLocalConnections
from panoptes_network.messages import utc_now_iso
from panoptes_network.ports.topics import Subscription, Topics

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    name TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    service TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    subscription TEXT NOT NULL,
    topic TEXT NOT NULL,
    data BLOB NOT NULL,
    attributes TEXT NOT NULL,
    publish_time TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_owner TEXT,
    lease_expires REAL,
    last_error TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt_at);
"""

PENDING, DONE, DEAD = "pending", "done", "dead"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try. Defaults suit a laptop; Pub/Sub's own are 10 s to 600 s."""

    max_attempts: int = 5
    min_backoff: float = 1.0
    max_backoff: float = 60.0
    ack_deadline: float = 600.0

    @classmethod
    def from_env(cls) -> DeliveryPolicy:
        env = os.environ
        return cls(
            max_attempts=int(env.get("PANOPTES_MAX_ATTEMPTS", cls.max_attempts)),
            min_backoff=float(env.get("PANOPTES_MIN_BACKOFF", cls.min_backoff)),
            max_backoff=float(env.get("PANOPTES_MAX_BACKOFF", cls.max_backoff)),
            ack_deadline=float(env.get("PANOPTES_ACK_DEADLINE", cls.ack_deadline)),
        )

    def backoff(self, attempts: int) -> float:
        return min(self.max_backoff, self.min_backoff * 2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class Delivery:
    id: int
    message_id: str
    subscription: str
    topic: str
    data: bytes
    attributes: dict[str, str]
    publish_time: str
    attempts: int
    lease_owner: str
    last_error: str | None = None  # of the attempt before this one

    @classmethod
    def from_row(cls, row) -> Delivery:
        return cls(
            id=row["id"],
            message_id=row["message_id"],
            subscription=row["subscription"],
            topic=row["topic"],
            data=bytes(row["data"]),
            attributes=json.loads(row["attributes"]),
            publish_time=row["publish_time"],
            attempts=row["attempts"],
            lease_owner=row["lease_owner"],
            last_error=row["last_error"],
        )


@dataclass(frozen=True)
class Lease:
    owner: str
    deliveries: int
    owner_gone: bool


@dataclass(frozen=True)
class QueueCounts:
    pending: int
    in_flight: int
    done: int
    dead: int


class LocalQueue(Topics):
    def __init__(self, data_dir: Path, subscriptions: Iterable[Subscription] = (), policy: DeliveryPolicy | None = None):
        self.db = ThreadLocalConnections(Path(data_dir) / "queue.sqlite", SCHEMA)
        self.policy = policy or DeliveryPolicy.from_env()
        subscriptions = list(subscriptions)
        if subscriptions:
            with self.db.transaction() as connection:
                connection.executemany(
                    "INSERT OR REPLACE INTO subscriptions (name, topic, service) VALUES (?, ?, ?)",
                    [(s.name, s.topic, s.service) for s in subscriptions],
                )

    # --- the topic port ---------------------------------------------------------------

    def _publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        message_id = uuid.uuid4().hex
        now = time.time()
        with self.db.transaction() as connection:
            names = [
                row["name"]
                for row in connection.execute("SELECT name FROM subscriptions WHERE topic = ?", (topic,))
            ]
            connection.executemany(
                "INSERT INTO deliveries (message_id, subscription, topic, data, attributes, publish_time,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(message_id, name, topic, data, json.dumps(attributes), utc_now_iso(), now) for name in names],
            )
        return message_id

    # --- delivery ----------------------------------------------------------------------

    def subscriptions(self) -> dict[str, Subscription]:
        rows = self.db.connection().execute("SELECT * FROM subscriptions")
        return {row["name"]: Subscription(row["name"], row["topic"], row["service"]) for row in rows}

    @staticmethod
    def new_worker_id() -> str:
        """The lease owner for this process: its pid and start time (see owners.py)."""
        return str(owners.current())

    def lease(self, worker_id: str) -> Delivery | None:
        """Take the next due delivery, or None. Expired leases are due again."""
        now = time.time()
        with self.db.transaction() as connection:
            row = connection.execute(
                "UPDATE deliveries SET lease_owner = ?, lease_expires = ?, attempts = attempts + 1"
                " WHERE id = (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?"
                " AND (lease_expires IS NULL OR lease_expires < ?) ORDER BY next_attempt_at, id LIMIT 1)"
                " RETURNING *",
                (worker_id, now + self.policy.ack_deadline, now, now),
            ).fetchone()
        return Delivery.from_row(row) if row else None

    def ack(self, delivery: Delivery) -> None:
        with self.db.transaction() as connection:
            connection.execute(
                "UPDATE deliveries SET state = 'done', lease_owner = NULL, lease_expires = NULL,"
                " finished_at = ? WHERE id = ? AND state = 'pending'",
                (time.time(), delivery.id),
            )

    def nack(self, delivery: Delivery, error: str) -> bool:
        """Record a failed attempt. True when that was the last one and it is now dead."""
        now = time.time()
        dead = delivery.attempts >= self.policy.max_attempts
        with self.db.transaction() as connection:
            if dead:
                connection.execute(
                    "UPDATE deliveries SET state = 'dead', lease_owner = NULL, lease_expires = NULL,"
                    " last_error = ?, finished_at = ? WHERE id = ? AND state = 'pending'",
                    (error, now, delivery.id),
                )
            else:
                connection.execute(
                    "UPDATE deliveries SET lease_owner = NULL, lease_expires = NULL, last_error = ?,"
                    " next_attempt_at = ? WHERE id = ? AND state = 'pending'",
                    (error, now + self.policy.backoff(delivery.attempts), delivery.id),
                )
        return dead

    def leases(self) -> list[Lease]:
        """Who holds the deliveries in flight, and whether that process is gone."""
        rows = self.db.connection().execute(
            "SELECT lease_owner, COUNT(*) AS deliveries FROM deliveries WHERE state = 'pending'"
            " AND lease_expires >= ? GROUP BY lease_owner ORDER BY lease_owner",
            (time.time(),),
        ).fetchall()
        return [Lease(row["lease_owner"], row["deliveries"], owners.is_gone(row["lease_owner"])) for row in rows]

    def reclaim_dead_leases(self) -> list[Lease]:
        """Make the deliveries leased by processes that are gone due again, now.

        The attempt they were on counts (as Pub/Sub counts a delivery that was never
        acked), so a message that kills every worker it reaches still ends dead-lettered.
        """
        gone = [lease for lease in self.leases() if lease.owner_gone]
        if gone:
            with self.db.transaction() as connection:
                connection.executemany(
                    "UPDATE deliveries SET lease_owner = NULL, lease_expires = NULL, last_error = ?"
                    " WHERE state = 'pending' AND lease_owner = ?",
                    [(f"the delivering process ({owners.Owner.parse(lease.owner).describe()}) died",
                      lease.owner) for lease in gone],
                )
        return gone

    def replay(self, since_iso: str = "") -> int:
        """Deliver again what was delivered (like seeking a Pub/Sub subscription back in time)."""
        with self.db.transaction() as connection:
            cursor = connection.execute(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, lease_owner = NULL,"
                " lease_expires = NULL, finished_at = NULL WHERE state = 'done' AND publish_time >= ?",
                (time.time(), since_iso),
            )
            return cursor.rowcount

    def counts(self) -> QueueCounts:
        now = time.time()
        row = self.db.connection().execute(
            "SELECT"
            " SUM(state = 'pending' AND (lease_expires IS NULL OR lease_expires < ?)) AS pending,"
            " SUM(state = 'pending' AND lease_expires >= ?) AS in_flight,"
            " SUM(state = 'done') AS done, SUM(state = 'dead') AS dead FROM deliveries",
            (now, now),
        ).fetchone()
        return QueueCounts(*(int(row[key] or 0) for key in ("pending", "in_flight", "done", "dead")))

    def seconds_until_next_due(self) -> float | None:
        """None when nothing is pending at all; 0 when something is due now."""
        now = time.time()
        row = self.db.connection().execute(
            "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_expires, 0))) AS due FROM deliveries"
            " WHERE state = 'pending'",
        ).fetchone()
        if row["due"] is None:
            return None
        return max(0.0, row["due"] - now)

    def has_unfinished(self) -> bool:
        return self.db.connection().execute(
            "SELECT 1 FROM deliveries WHERE state = 'pending' LIMIT 1"
        ).fetchone() is not None

    def dead(self) -> list[dict]:
        rows = self.db.connection().execute(
            "SELECT message_id, subscription, topic, attempts, last_error, finished_at FROM deliveries"
            " WHERE state = 'dead' ORDER BY finished_at"
        )
        return [dict(row) for row in rows]
