"""Retention (SPEC §2): artifacts expire after 30 days unless something kept still references them;
`collect_garbage` removes expired, unreferenced blobs, untracked blobs and stale temp files.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from .artifacts import blob_size, entry_size
from .cas import CAS, tag
from .sqlite_lib import sqlite_utils
from .state import record_audit

GRACE = timedelta(days=1)  # an untracked blob or temp file younger than this may be an ingest in flight

# An artifact_refs row keeps its blob only while its referrer exists: a release ('NAME@VERSION') while
# its row is not deleted. Bundles have no table of their own, so their references always keep; so does
# any kind this version does not know.
_LIVE_REF = """EXISTS (SELECT 1 FROM artifact_refs r WHERE r.sha256 = a.sha256 AND (
    r.ref_kind NOT IN ('run', 'probe', 'pack', 'release')
    OR (r.ref_kind = 'run' AND EXISTS (SELECT 1 FROM runs WHERE runs.id = r.ref_id))
    OR (r.ref_kind = 'probe' AND EXISTS (SELECT 1 FROM probe_runs pr WHERE pr.id = r.ref_id))
    OR (r.ref_kind = 'pack' AND EXISTS (SELECT 1 FROM promptpacks p
                                        WHERE p.pack_id || '@' || p.version = r.ref_id))
    OR (r.ref_kind = 'release' AND EXISTS (SELECT 1 FROM releases rel WHERE rel.deleted_at IS NULL
                                           AND rel.name || '@' || rel.version = r.ref_id))))
  -- run_payloads rows point at artifacts with a foreign key: their blobs must stay
  OR EXISTS (SELECT 1 FROM run_payloads rp WHERE rp.sha256 = a.sha256)"""


@dataclass
class GcItem:
    sha256: str | None  # tagged `sha256:<hex>`; None for a temp file
    bytes: int
    kind: str | None
    original_name: str | None
    reason: Literal["expired", "untracked", "stale_tmp"]


@dataclass
class GcReport:
    removed: list[GcItem]
    bytes_freed: int
    kept_referenced: int  # expired artifacts kept because a live run, probe, pack, bundle or release needs them
    dry_run: bool


def collect_garbage(db: sqlite_utils.Database, cas: CAS, *, now: datetime | None = None,
                    dry_run: bool = False) -> GcReport:
    """Remove expired, unreferenced blobs (file and row together), untracked blobs and stale temp
    files older than a day; return what was (or, with dry_run, would be) removed.

    Each removal is its own write transaction that re-checks the condition and records an audit
    event, so a concurrent ingest or a crash never leaves a row without its reason. A naive `now`
    is taken as UTC. Raises nothing of its own; OSError from the filesystem propagates.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    cutoff = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    expired = f"FROM artifacts a WHERE a.expires_at < ? AND NOT ({_LIVE_REF})"
    removed: list[GcItem] = []
    # sorted here, not by SQL: ORDER BY would walk the whole primary-key index and look up every row
    for row in sorted(db.query(f"SELECT a.* {expired}", [cutoff]), key=lambda r: r["sha256"]):
        item = GcItem(sha256=tag(row["sha256"]), bytes=blob_size(cas, row["sha256"]), kind=row["kind"],
                      original_name=row["original_name"], reason="expired")
        if not dry_run:
            with db.atomic():  # BEGIN IMMEDIATE: the re-check and the delete see one state
                if not list(db.query(f"SELECT 1 {expired} AND a.sha256 = ?", [cutoff, row["sha256"]])):
                    continue  # re-ingested or referenced meanwhile
                db.execute("DELETE FROM artifact_refs WHERE sha256 = ?", [row["sha256"]])  # dead refs
                db.execute("DELETE FROM artifacts WHERE sha256 = ?", [row["sha256"]])
                item.bytes = cas.remove(row["sha256"])
                record_audit(db, "gc", "blob_removed", asdict(item))
        removed.append(item)
    removed += _untracked(db, cas, now, dry_run) + _stale_tmp(db, cas, now, dry_run)
    kept = db.execute(f"SELECT count(*) FROM artifacts a WHERE a.expires_at < ? AND ({_LIVE_REF})",
                      [cutoff]).fetchone()[0]
    return GcReport(removed=removed, bytes_freed=sum(i.bytes for i in removed), kept_referenced=kept,
                    dry_run=dry_run)


def _untracked(db: sqlite_utils.Database, cas: CAS, now: datetime, dry_run: bool) -> list[GcItem]:
    # One query for the digests that have rows, then a stat only for blobs without one (for their age).
    tracked = {r[0] for r in db.execute("SELECT sha256 FROM artifacts")}
    items = []
    untracked = sorted(((h, e) for h, e in cas.iter_blobs(ordered=False) if h not in tracked),
                       key=lambda found: found[0])
    for hexdigest, entry in untracked:
        if not _older_than_grace(entry, now):
            continue
        item = GcItem(sha256=tag(hexdigest), bytes=entry_size(entry), kind=None, original_name=None,
                      reason="untracked")
        if not dry_run:
            with db.atomic():  # BEGIN IMMEDIATE: no ingest can register it meanwhile
                if _has_row(db, hexdigest):
                    continue
                item.bytes = cas.remove(hexdigest)
                record_audit(db, "gc", "blob_removed", asdict(item))
        items.append(item)
    return items


def _stale_tmp(db: sqlite_utils.Database, cas: CAS, now: datetime, dry_run: bool) -> list[GcItem]:
    items = []
    for path in list(cas.iter_tmp()):
        if not _older_than_grace(path, now):
            continue
        item = GcItem(sha256=None, bytes=path.stat().st_size, kind=None,
                      original_name=f"tmp/{path.name}", reason="stale_tmp")
        if not dry_run:
            path.unlink(missing_ok=True)
            record_audit(db, "gc", "tmp_removed", asdict(item))
        items.append(item)
    return items


def _has_row(db: sqlite_utils.Database, hexdigest: str) -> bool:
    return db.execute("SELECT 1 FROM artifacts WHERE sha256 = ?", [hexdigest]).fetchone() is not None


def _older_than_grace(path: Path | os.DirEntry, now: datetime) -> bool:
    try:
        return now.timestamp() - path.stat().st_mtime > GRACE.total_seconds()
    except FileNotFoundError:
        return False
