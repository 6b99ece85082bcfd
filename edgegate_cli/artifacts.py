"""Artifact rows in SQLite, references that keep blobs alive, and retention (SPEC §2).

A blob lives in the CAS; its `artifacts` row says what it is and when it expires; `artifact_refs`
rows say who still needs it. `collect_garbage` removes what has expired and is no longer needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import sqlite_utils
from pydantic import BaseModel

from .cas import CAS, tag, untag
from .errors import CorruptBlob
from .state import iso_after, record_audit, utcnow

RETENTION_DAYS = 30
GRACE = timedelta(days=1)  # an untracked blob or temp file younger than this may be an ingest in flight

# An artifact_refs row keeps its blob only while its referrer exists. Bundles and releases have no
# table yet, so their references always keep; so does any kind this version does not know.
_LIVE_REF = """EXISTS (SELECT 1 FROM artifact_refs r WHERE r.sha256 = a.sha256 AND (
    r.ref_kind NOT IN ('run', 'probe', 'pack')
    OR (r.ref_kind = 'run' AND EXISTS (SELECT 1 FROM runs WHERE runs.id = r.ref_id))
    OR (r.ref_kind = 'probe' AND EXISTS (SELECT 1 FROM probe_runs pr WHERE pr.id = r.ref_id))
    OR (r.ref_kind = 'pack' AND EXISTS (SELECT 1 FROM promptpacks p
                                        WHERE p.pack_id || '@' || p.version = r.ref_id))))
  -- run_payloads rows point at artifacts with a foreign key: their blobs must stay
  OR EXISTS (SELECT 1 FROM run_payloads rp WHERE rp.sha256 = a.sha256)"""


def store_file(db: sqlite_utils.Database, cas: CAS, path: Path | str, kind: str,
               original_name: str | None = None) -> str:
    """Ingest a file into the CAS and record it; return the hex digest. InvalidInput if missing."""
    hexdigest, size = cas.put_file(path)
    register(db, hexdigest, kind, size, original_name or Path(path).name)
    if not cas.exists(hexdigest):  # a concurrent gc removed the blob this ingest deduplicated onto
        cas.put_file(path)
    return hexdigest


def store_bytes(db: sqlite_utils.Database, cas: CAS, data: bytes, kind: str,
                original_name: str | None = None) -> str:
    """Ingest bytes into the CAS and record them; return the hex digest."""
    hexdigest, size = cas.put_bytes(data)
    register(db, hexdigest, kind, size, original_name)
    if not cas.exists(hexdigest):  # see store_file
        cas.put_bytes(data)
    return hexdigest


def register(db: sqlite_utils.Database, hexdigest: str, kind: str, size: int,
             original_name: str | None) -> None:
    """Insert an artifact row, or push an existing one's expiry out again (kind and name are kept)."""
    # One statement, so two processes registering the same bytes cannot both try to insert.
    with db.atomic():
        db.execute(
            "INSERT INTO artifacts (sha256, kind, bytes, created_at, expires_at, original_name) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET expires_at = excluded.expires_at",
            [hexdigest, kind, size, utcnow(), iso_after(RETENTION_DAYS * 86400), original_name])


def add_ref(db: sqlite_utils.Database, hexdigest: str, ref_kind: str, ref_id: str) -> None:
    """Record that `ref_kind`/`ref_id` keeps this blob alive.

    ref_kind is 'run' (ref_id = runs.id), 'probe' (probe_runs.id), 'pack' (`<pack_id>@<version>`),
    'bundle' or 'release' (kept until those have tables).
    """
    db["artifact_refs"].insert({"sha256": hexdigest, "ref_kind": ref_kind, "ref_id": ref_id,
                                "created_at": utcnow()}, ignore=True)


class GcItem(BaseModel):
    sha256: str | None  # tagged `sha256:<hex>`; None for a temp file
    bytes: int
    kind: str | None
    original_name: str | None
    reason: Literal["expired", "untracked", "stale_tmp"]


class GcReport(BaseModel):
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
    for row in list(db.query(f"SELECT a.* {expired} ORDER BY a.sha256", [cutoff])):
        item = GcItem(sha256=tag(row["sha256"]), bytes=_size(cas, row["sha256"]), kind=row["kind"],
                      original_name=row["original_name"], reason="expired")
        if not dry_run:
            with _immediate(db):
                if not list(db.query(f"SELECT 1 {expired} AND a.sha256 = ?", [cutoff, row["sha256"]])):
                    continue  # re-ingested or referenced meanwhile
                db.execute("DELETE FROM artifact_refs WHERE sha256 = ?", [row["sha256"]])  # dead refs
                db.execute("DELETE FROM artifacts WHERE sha256 = ?", [row["sha256"]])
                item.bytes = cas.remove(row["sha256"])
                record_audit(db, "gc", "blob_removed", item.model_dump())
        removed.append(item)
    removed += _untracked(db, cas, now, dry_run) + _stale_tmp(db, cas, now, dry_run)
    kept = db.execute(f"SELECT count(*) FROM artifacts a WHERE a.expires_at < ? AND ({_LIVE_REF})",
                      [cutoff]).fetchone()[0]
    return GcReport(removed=removed, bytes_freed=sum(i.bytes for i in removed), kept_referenced=kept,
                    dry_run=dry_run)


def _untracked(db: sqlite_utils.Database, cas: CAS, now: datetime, dry_run: bool) -> list[GcItem]:
    items = []
    for hexdigest in list(cas.iter_digests()):
        if not _older_than_grace(cas.path_of(hexdigest), now) or _has_row(db, hexdigest):
            continue
        item = GcItem(sha256=tag(hexdigest), bytes=_size(cas, hexdigest), kind=None, original_name=None,
                      reason="untracked")
        if not dry_run:
            with _immediate(db):  # holding the write lock: no ingest can register it meanwhile
                if _has_row(db, hexdigest):
                    continue
                item.bytes = cas.remove(hexdigest)
                record_audit(db, "gc", "blob_removed", item.model_dump())
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
            record_audit(db, "gc", "tmp_removed", item.model_dump())
        items.append(item)
    return items


@contextmanager
def _immediate(db: sqlite_utils.Database) -> Iterator[None]:
    """A write transaction taken up front (BEGIN IMMEDIATE), so the re-check and the delete see the
    same state and a busy database waits on busy_timeout instead of failing on lock upgrade."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()


def _has_row(db: sqlite_utils.Database, hexdigest: str) -> bool:
    return db.execute("SELECT 1 FROM artifacts WHERE sha256 = ?", [hexdigest]).fetchone() is not None


def _older_than_grace(path: Path, now: datetime) -> bool:
    try:
        return now.timestamp() - path.stat().st_mtime > GRACE.total_seconds()
    except FileNotFoundError:
        return False


def _size(cas: CAS, hexdigest: str) -> int:
    try:
        return cas.path_of(hexdigest).stat().st_size
    except FileNotFoundError:
        return 0


class ArtifactInfo(BaseModel):
    sha256: str  # tagged
    kind: str | None
    bytes: int
    created_at: str | None
    expires_at: str | None
    original_name: str | None
    refs: int  # artifact_refs rows naming it
    present: bool  # the blob file exists


class ArtifactListing(BaseModel):
    artifacts: list[ArtifactInfo]


def list_artifacts(db: sqlite_utils.Database, cas: CAS) -> ArtifactListing:
    """Every artifact row, plus every stored blob that has no row (kind None), sorted by digest."""
    rows = {r["sha256"]: r for r in db.query(
        "SELECT a.*, (SELECT count(*) FROM artifact_refs r WHERE r.sha256 = a.sha256) AS refs "
        "FROM artifacts a")}
    stored = set(cas.iter_digests())
    out = []
    for hexdigest in sorted(set(rows) | stored):
        r = rows.get(hexdigest, {})
        out.append(ArtifactInfo(sha256=tag(hexdigest), kind=r.get("kind"),
                                bytes=_size(cas, hexdigest) if hexdigest in stored else r.get("bytes", 0),
                                created_at=r.get("created_at"), expires_at=r.get("expires_at"),
                                original_name=r.get("original_name"), refs=r.get("refs", 0),
                                present=hexdigest in stored))
    return ArtifactListing(artifacts=out)


class CorruptItem(BaseModel):
    sha256: str
    path: str
    expected: str
    actual: str


class VerifyReport(BaseModel):
    checked: int
    corrupt: list[CorruptItem]
    missing: list[str]  # tagged digests with no blob file (asked for, or recorded in artifacts)
    ok: bool


def verify_blobs(db: sqlite_utils.Database, cas: CAS, digests: list[str] | None = None) -> VerifyReport:
    """Re-hash the given blobs (default: every stored blob, and every recorded one) and report each
    corrupt or missing one. Nothing is deleted. Raises InvalidInput for a malformed digest, before
    any hashing."""
    if digests:
        wanted = sorted({untag(d) for d in digests})
    else:
        recorded = {r["sha256"] for r in db.query("SELECT sha256 FROM artifacts")}
        wanted = sorted(set(cas.iter_digests()) | recorded)
    corrupt, missing = [], []
    for hexdigest in wanted:
        if not cas.exists(hexdigest):
            missing.append(tag(hexdigest))
            continue
        try:
            cas.verify(hexdigest)
        except CorruptBlob as err:
            corrupt.append(CorruptItem(sha256=tag(hexdigest), path=err.path or "",
                                       expected=tag(err.expected), actual=tag(err.actual)))
    return VerifyReport(checked=len(wanted), corrupt=corrupt, missing=missing,
                        ok=not corrupt and not missing)


__all__ = ["store_file", "store_bytes", "register", "add_ref", "tag", "RETENTION_DAYS", "collect_garbage",
           "GcReport", "GcItem", "list_artifacts", "ArtifactListing",
           "ArtifactInfo", "verify_blobs", "VerifyReport"]
