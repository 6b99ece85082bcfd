"""Artifact rows in SQLite and the references that keep blobs alive (SPEC §2): storing, listing and
verifying. A blob lives in the CAS; its `artifacts` row says what it is and when it expires;
`artifact_refs` rows say who still needs it. Removal of what expired lives in `retention.py`.
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils
from pydantic import BaseModel

from ..errors import CorruptBlob
from .cas import CAS, tag, untag
from .state import iso_after

RETENTION_DAYS = 30

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
            [hexdigest, kind, size, db.now(), iso_after(db, RETENTION_DAYS * 86400), original_name])


def add_ref(db: sqlite_utils.Database, hexdigest: str, ref_kind: str, ref_id: str) -> None:
    """Record that `ref_kind`/`ref_id` keeps this blob alive.

    ref_kind is 'run' (ref_id = runs.id), 'probe' (probe_runs.id), 'pack' (`<pack_id>@<version>`),
    'release' (`<name>@<version>`, kept while the release is not deleted) or 'bundle' (always kept).
    """
    db["artifact_refs"].insert({"sha256": hexdigest, "ref_kind": ref_kind, "ref_id": ref_id,
                                "created_at": db.now()}, ignore=True)


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
                                bytes=blob_size(cas, hexdigest) if hexdigest in stored else r.get("bytes", 0),
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


__all__ = ["store_file", "store_bytes", "register", "add_ref", "tag", "RETENTION_DAYS", "blob_size",
           "list_artifacts", "ArtifactListing", "ArtifactInfo", "verify_blobs", "VerifyReport"]


def blob_size(cas: CAS, hexdigest: str) -> int:
    try:
        return cas.path_of(hexdigest).stat().st_size
    except FileNotFoundError:
        return 0
