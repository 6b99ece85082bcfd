"""Artifact rows in SQLite and the references that keep blobs alive (SPEC §2): storing, listing and
verifying. A blob lives in the CAS; its `artifacts` row says what it is and when it expires;
`artifact_refs` rows say who still needs it. Removal of what expired lives in `retention.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorruptBlob, NotFound
from .cas import CAS, tag, untag
from .sqlite_lib import sqlite_utils
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


@dataclass
class ArtifactInfo:
    sha256: str  # tagged
    kind: str | None
    bytes: int
    created_at: str | None
    expires_at: str | None
    original_name: str | None
    refs: int  # artifact_refs rows naming it
    present: bool  # the blob file exists


def iter_artifacts(db: sqlite_utils.Database, cas: CAS) -> Iterator[ArtifactInfo]:
    """Every artifact row, plus every stored blob that has no row (kind None), in digest order, as a
    stream (see `merged_with_rows`): memory stays flat however many blobs there are.

    `bytes` is the size recorded at ingest for a tracked blob (exact: the CAS stores those bytes under
    their digest), the file's size for an untracked one."""
    rows = db.execute(
        "SELECT a.sha256, a.kind, a.bytes, a.created_at, a.expires_at, a.original_name, "
        "(SELECT count(*) FROM artifact_refs r WHERE r.sha256 = a.sha256) AS refs "
        "FROM artifacts a ORDER BY a.sha256")
    for hexdigest, row, entry in merged_with_rows(rows, cas):
        if row is None:  # a blob nobody recorded
            yield ArtifactInfo(tag(hexdigest), None, entry_size(entry), None, None, None, 0, True)
        else:
            yield ArtifactInfo(tag(hexdigest), row[1], row[2] or 0, row[3], row[4], row[5], row[6], entry is not None)


def merged_with_rows(rows: Iterator[tuple], cas: CAS) -> Iterator[tuple[str, tuple | None, os.DirEntry | None]]:
    """(hex digest, row or None, blob directory entry or None) for every digest in `rows` (tuples whose
    first item is the hex digest, in ascending order) or in the CAS, in digest order: the two sorted
    streams are merged like two sorted files, one `sha256/<2>/` folder in memory at a time."""
    blobs = cas.iter_blobs()
    row, blob = next(rows, None), next(blobs, None)
    while row is not None or blob is not None:
        if blob is None or (row is not None and row[0] < blob[0]):
            yield row[0], row, None
            row = next(rows, None)
        elif row is None or blob[0] < row[0]:
            yield blob[0], None, blob[1]
            blob = next(blobs, None)
        else:
            yield row[0], row, blob[1]
            row, blob = next(rows, None), next(blobs, None)


@dataclass
class ArtifactListing:
    artifacts: list[ArtifactInfo]


def list_artifacts(db: sqlite_utils.Database, cas: CAS) -> ArtifactListing:
    """`iter_artifacts`, collected (for callers that want them all at once)."""
    return ArtifactListing(artifacts=list(iter_artifacts(db, cas)))


@dataclass
class CorruptItem:
    sha256: str
    path: str
    expected: str
    actual: str


@dataclass
class VerifyReport:
    checked: int
    corrupt: list[CorruptItem]
    missing: list[str]  # tagged digests with no blob file (asked for, or recorded in artifacts)
    ok: bool


def verify_blobs(db: sqlite_utils.Database, cas: CAS, digests: list[str] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Re-hash the given blobs (default: every stored blob, and every recorded one) and report each
    corrupt or missing one. Nothing is deleted. Raises InvalidInput for a malformed digest, before
    any hashing. `progress(done, total)` is called now and then on long checks."""
    if digests:
        wanted = sorted({untag(d) for d in digests})
        present = {h for h in wanted if cas.exists(h)}
    else:
        present = set(cas.iter_digests())
        wanted = sorted(present.union(r[0] for r in db.execute("SELECT sha256 FROM artifacts")))
    corrupt, missing = [], []
    for done, hexdigest in enumerate(wanted, 1):
        if progress and done % 5000 == 0:
            progress(done, len(wanted))
        if hexdigest not in present:
            missing.append(tag(hexdigest))
            continue
        try:
            cas.verify(hexdigest)
        except NotFound:  # removed since the walk saw it
            missing.append(tag(hexdigest))
        except CorruptBlob as err:
            corrupt.append(CorruptItem(sha256=tag(hexdigest), path=err.path or "",
                                       expected=tag(err.expected), actual=tag(err.actual)))
    return VerifyReport(checked=len(wanted), corrupt=corrupt, missing=missing,
                        ok=not corrupt and not missing)


__all__ = ["store_file", "store_bytes", "register", "add_ref", "tag", "RETENTION_DAYS", "blob_size", "entry_size",
           "iter_artifacts", "merged_with_rows", "list_artifacts", "ArtifactListing", "ArtifactInfo", "verify_blobs",
           "VerifyReport"]


def blob_size(cas: CAS, hexdigest: str) -> int:
    try:
        return cas.path_of(hexdigest).stat().st_size
    except FileNotFoundError:
        return 0


def entry_size(entry: os.DirEntry) -> int:
    """The size of a blob the CAS walk found (0 if it was removed since)."""
    try:
        return entry.stat().st_size
    except FileNotFoundError:
        return 0
