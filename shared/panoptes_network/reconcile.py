"""Reconcile: what fell between the raw bucket and the documents, and the fix for each.

After an outage (or any lost event) three kinds of gap can remain:

- ``never_compressed``: a ``.fits`` still in the raw bucket (its finalize event was lost
  or dead-lettered);
- ``not_recorded``: a ``.fits.fz`` without its ``images`` document;
- ``count_mismatch``: an observation whose ``num_images`` (or ``total_exptime``)
  disagrees with the images recorded for it.

``--fix`` closes exactly those: counts are recomputed first, each in a transaction that
gives up if the observation changed since it was read (record-image ran meanwhile; the
next run looks again); then each file is routed again as image-uploaded routes a
finalize event, so the pipeline compresses or records it. Every fix is what an
at-least-once delivery may do anyway, so reconcile is safe on a schedule and beside a
running pipeline. Files younger than ``min_age`` are left alone: they may be in flight.

A new kind of gap is one function in :data:`CHECKS` and its fix in :data:`FIXES` (the
plate-solve service will add ``never_plate_solved`` there).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from panoptes_network import runtime
from panoptes_network.config import Settings
from panoptes_network.ids import BucketPath, InvalidPathError, parse_bucket_path
from panoptes_network.messages import StorageObject
from panoptes_network.pipeline import routing
from panoptes_network.ports.bucket import ObjectInfo
from panoptes_network.ports.documents import Transaction

NEVER_COMPRESSED, NOT_RECORDED, COUNT_MISMATCH = "never_compressed", "not_recorded", "count_mismatch"
DEFAULT_MIN_AGE = timedelta(minutes=15)  # past Pub/Sub's retries of a frame still in flight


@dataclass(frozen=True)
class Gap:
    kind: str
    subject: str  # a bucket path, or an observation id
    detail: str


@dataclass
class Snapshot:
    """What one run read: the raw bucket, then the observations, then the images (that order
    is what makes a count read here safe to compare; see fix_counts)."""

    settings: Settings
    objects: list[ObjectInfo]
    observations: dict[str, dict[str, Any]]
    images: dict[str, dict[str, Any]]
    cutoff: datetime  # objects updated after this are in flight, not gaps
    images_by_observation: dict[str, list[dict[str, Any]]] = field(init=False)
    settled_frames: list[tuple[ObjectInfo, BucketPath]] = field(init=False)  # parsed once: it costs

    def __post_init__(self):
        self.images_by_observation = defaultdict(list)
        for image in self.images.values():
            self.images_by_observation[image.get("sequence_id")].append(image)
        self.settled_frames = []
        for info in self.objects:
            if (info.updated and info.updated > self.cutoff) or not info.name.lower().endswith((".fits", ".fz")):
                continue
            try:
                path = parse_bucket_path(info.name)
            except InvalidPathError:
                continue  # image-uploaded quarantines those
            if not path.is_legacy:
                self.settled_frames.append((info, path))

    @property
    def checked(self) -> int:
        return len(self.objects) + len(self.observations) + len(self.images)

    def settled_objects(self, file_types: tuple[str, ...]):
        """(object, parsed path) of the FITS files older than the cutoff, of these types."""
        return [(info, path) for info, path in self.settled_frames if path.file_type in file_types]


def read(settings: Settings, min_age: timedelta = DEFAULT_MIN_AGE) -> Snapshot:
    documents = runtime.documents(settings)
    objects = list(runtime.bucket(settings.raw_bucket, settings).list())
    observations = {doc.id: doc.data for doc in documents.query("observations")}
    images = {doc.id: doc.data for doc in documents.query("images")}
    return Snapshot(settings, objects, observations, images, datetime.now(timezone.utc) - min_age)


# --- checks ------------------------------------------------------------------------------


def never_compressed(snapshot: Snapshot) -> list[Gap]:
    names = {info.name for info in snapshot.objects}
    return [Gap(NEVER_COMPRESSED, info.name,
                "its .fits.fz exists; the .fits was not deleted" if info.name + ".fz" in names
                else "no .fits.fz made from it")
            for info, _ in snapshot.settled_objects((".fits",))]


def not_recorded(snapshot: Snapshot) -> list[Gap]:
    return [Gap(NOT_RECORDED, info.name, f"no images/{path.image_id}")
            for info, path in snapshot.settled_objects((".fits.fz", ".fz")) if path.image_id not in snapshot.images]


def _counts(images: list[dict[str, Any]]) -> tuple[int, float]:
    return len(images), sum(image.get("exptime") or 0.0 for image in images)


def count_mismatch(snapshot: Snapshot) -> list[Gap]:
    gaps = []
    for sequence_id, observation in snapshot.observations.items():
        count, exptime = _counts(snapshot.images_by_observation.get(sequence_id, []))
        stored_count, stored_exptime = observation.get("num_images"), observation.get("total_exptime") or 0.0
        if stored_count != count or not math.isclose(stored_exptime, exptime, rel_tol=1e-9, abs_tol=1e-6):
            gaps.append(Gap(COUNT_MISMATCH, sequence_id,
                            f"num_images {stored_count}, total_exptime {stored_exptime:g}; "
                            f"images recorded: {count}, {exptime:g} s"))
    return gaps


CHECKS: list[Callable[[Snapshot], list[Gap]]] = [never_compressed, not_recorded, count_mismatch]


# --- fixes -------------------------------------------------------------------------------


def fix_count(snapshot: Snapshot, gap: Gap) -> str:
    """Set the observation's counts from its images, unless it changed since it was read:
    the images were read after it, so an image recorded meanwhile changed it too."""
    seen = snapshot.observations[gap.subject]
    count, exptime = _counts(snapshot.images_by_observation.get(gap.subject, []))

    def recount(transaction: Transaction) -> bool:
        current = transaction.get("observations", gap.subject)
        if current is None or (current.get("num_images"), current.get("total_exptime")) != (
                seen.get("num_images"), seen.get("total_exptime")):
            return False
        transaction.set("observations", gap.subject, {"num_images": count, "total_exptime": exptime}, merge=True)
        return True

    if runtime.documents(snapshot.settings).run_transaction(recount):
        return f"num_images = {count}, total_exptime = {exptime:g}"
    return "changed while reconciling; left for the next run"


def route_again(snapshot: Snapshot, gap: Gap) -> str:
    """Do what image-uploaded does with the object's finalize event (publish it to its topic)."""
    info = next(info for info in snapshot.objects if info.name == gap.subject)
    outcome = routing.route_object(StorageObject(info.bucket, info.name, info.generation, info.size,
                                                 info.content_type), snapshot.settings)
    return f"{outcome['outcome']} to {outcome.get('topic') or outcome.get('destination', '?')}"


FIXES: dict[str, Callable[[Snapshot, Gap], str]] = {
    COUNT_MISMATCH: fix_count, NEVER_COMPRESSED: route_again, NOT_RECORDED: route_again}
FIX_ORDER = (COUNT_MISMATCH, NEVER_COMPRESSED, NOT_RECORDED)  # counts before the events that add to them


@dataclass(frozen=True)
class Report:
    checked: int  # objects and documents read
    gaps: list[Gap]
    fixed: list[tuple[Gap, str]]


def reconcile(settings: Settings, *, fix: bool = False, min_age: timedelta = DEFAULT_MIN_AGE) -> Report:
    snapshot = read(settings, min_age)
    gaps = [gap for check in CHECKS for gap in check(snapshot)]
    fixed = []
    if fix:
        order = {kind: index for index, kind in enumerate(FIX_ORDER)}
        for gap in sorted(gaps, key=lambda gap: order.get(gap.kind, len(order))):
            fixed.append((gap, FIXES[gap.kind](snapshot, gap)))
    return Report(snapshot.checked, gaps, fixed)


def summary(report: Report) -> dict[str, Any]:
    """A report as the scheduled endpoint answers it (and logs it)."""
    kinds: dict[str, int] = defaultdict(int)
    for gap in report.gaps:
        kinds[gap.kind] += 1
    return {"checked": report.checked, "gaps": dict(kinds), "fixed": len(report.fixed),
            "left_for_next_run": sum("next run" in outcome for _, outcome in report.fixed)}
