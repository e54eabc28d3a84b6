"""What the local backend takes back from processes that are gone (issue #11): leases,
finalize notifications committed but not sent, temporary files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from panoptes_network.adapters import owners
from panoptes_network.adapters.local_bucket import OWNER_SEPARATOR, LocalStorage
from panoptes_network.adapters.local_queue import DeliveryPolicy, LocalQueue
from panoptes_network.ports.topics import Subscription


def dead_owner() -> owners.Owner:
    """The name of a process that ran here and has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return owners.Owner(process.pid, 0, socket.gethostname())


def test_an_owner_is_gone_only_when_that_is_certain():
    me = owners.current()
    assert str(me) == f"{os.getpid()}-{me.started}@{socket.gethostname()}"
    assert owners.Owner.parse(str(me)) == me
    assert not owners.is_gone(me) and not owners.is_gone(str(me))
    assert owners.is_gone(dead_owner())
    if os.path.exists("/proc/self/stat"):  # the pid is alive, but it is another process now
        assert owners.is_gone(owners.Owner(me.pid, me.started + 1, me.host))
    assert not owners.is_gone(owners.Owner(dead_owner().pid, 0, "another-host"))  # cannot know
    assert not owners.is_gone("host:123:abcdef")  # a lease taken by an older version


def test_leases_of_a_process_that_is_gone_are_taken_back_at_once(tmp_path):
    queue = LocalQueue(tmp_path, [Subscription("sub", "topic", "service")], DeliveryPolicy(ack_deadline=600))
    queue.publish("topic", {"n": 1})
    queue.publish("topic", {"n": 2})
    dead = str(dead_owner())
    killed = queue.lease(dead)
    held = queue.lease(queue.new_worker_id())  # this process: alive
    assert killed and held and queue.lease("anyone") is None

    assert [(lease.owner, lease.deliveries, lease.owner_gone) for lease in queue.leases()] == sorted(
        [(dead, 1, True), (str(owners.current()), 1, False)])
    assert [lease.owner for lease in queue.reclaim_dead_leases()] == [dead]
    again = queue.lease("another worker")
    assert again.message_id == killed.message_id and again.attempts == 2
    assert again.last_error == f"the delivering process (process {owners.Owner.parse(dead).pid} on " \
                               f"{socket.gethostname()}) died"
    assert queue.reclaim_dead_leases() == []  # the live process keeps its lease


def test_temporary_files_of_writers_that_are_gone_are_removed_on_start_up(tmp_path):
    storage = LocalStorage(tmp_path)
    dead = f"{dead_owner()}{OWNER_SEPARATOR}"
    (storage.tmp / f"{dead}tmpab12").write_bytes(b"x" * 1000)  # a write interrupted by a kill
    (storage.tmp / f"{dead}local-file-cd34").mkdir()
    (storage.tmp / f"{dead}local-file-cd34" / "frame.fits").write_bytes(b"x")
    (storage.tmp / f"{storage.temp_prefix()}tmpef56").write_bytes(b"being written")  # a live writer's
    old, recent = storage.tmp / "tmp_old_unnamed", storage.tmp / "tmp_new_unnamed"  # from older versions
    old.write_bytes(b"x")
    recent.write_bytes(b"x")
    an_hour_ago = time.time() - 3700
    os.utime(old, (an_hour_ago, an_hour_ago))

    LocalStorage(tmp_path)
    assert sorted(entry.name for entry in storage.tmp.iterdir()) == [
        f"{storage.temp_prefix()}tmpef56", "tmp_new_unnamed"]


def notifying_storage(tmp_path, hook):
    return LocalStorage(tmp_path, on_finalize=lambda bucket: hook if bucket == "raw" else None)


def test_a_notification_that_could_not_be_sent_is_sent_by_recovery_exactly_once(tmp_path):
    sent, failures = [], ["the queue was unreachable"]

    def hook(info):
        if failures:
            raise OSError(failures.pop())
        sent.append(info)

    storage = notifying_storage(tmp_path, hook)
    with pytest.raises(OSError):
        storage.bucket("raw").write("a/b.fits", b"data", content_type="application/fits")
    written = storage.bucket("raw").info("a/b.fits")  # committed all the same
    assert sent == []
    assert storage.send_orphaned_notifications() == 1
    assert [(info.name, info.generation, info.size, info.content_type) for info in sent] == [
        ("a/b.fits", written.generation, 4, "application/fits")]
    assert storage.send_orphaned_notifications() == 0


def test_recovery_leaves_alone_a_notification_its_live_writer_is_sending(tmp_path):
    recovered = []
    storage = notifying_storage(tmp_path, lambda info: recovered.append(storage.send_orphaned_notifications()))
    storage.bucket("raw").write("a/b.fits", b"data")
    storage.bucket("other").write("a/b.fits", b"data")  # no hook, no outbox row
    assert recovered == [0]
    assert storage.db.connection().execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
