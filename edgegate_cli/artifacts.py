"""Artifact rows in SQLite, references that keep blobs alive, and retention (SPEC §2)."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from .cas import CAS, tag
from .state import iso_after, utcnow

RETENTION_DAYS = 30


def store_file(db: sqlite_utils.Database, cas: CAS, path: Path | str, kind: str,
               original_name: str | None = None) -> str:
    """Ingest a file into the CAS and record it; return the hex digest."""
    hexdigest, size = cas.put_file(path)
    register(db, hexdigest, kind, size, original_name or Path(path).name)
    return hexdigest


def store_bytes(db: sqlite_utils.Database, cas: CAS, data: bytes, kind: str,
                original_name: str | None = None) -> str:
    """Ingest bytes into the CAS and record them; return the hex digest."""
    hexdigest, size = cas.put_bytes(data)
    register(db, hexdigest, kind, size, original_name)
    return hexdigest


def register(db: sqlite_utils.Database, hexdigest: str, kind: str, size: int,
             original_name: str | None) -> None:
    """Insert or refresh an artifact row; re-ingesting pushes its expiry out again."""
    now = utcnow()
    existing = db["artifacts"].count_where("sha256 = ?", [hexdigest])
    if existing:
        db["artifacts"].update(hexdigest, {"expires_at": iso_after(RETENTION_DAYS * 86400)})
    else:
        db["artifacts"].insert({"sha256": hexdigest, "kind": kind, "bytes": size, "created_at": now,
                                "expires_at": iso_after(RETENTION_DAYS * 86400),
                                "original_name": original_name})


def add_ref(db: sqlite_utils.Database, hexdigest: str, ref_kind: str, ref_id: str) -> None:
    """Record that `ref_kind`/`ref_id` (a run, bundle, pack or release) keeps this blob alive."""
    db["artifact_refs"].insert({"sha256": hexdigest, "ref_kind": ref_kind, "ref_id": ref_id,
                                "created_at": utcnow()}, ignore=True)


__all__ = ["store_file", "store_bytes", "register", "add_ref", "tag", "RETENTION_DAYS"]
