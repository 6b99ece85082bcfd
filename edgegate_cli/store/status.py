"""What `edgegate status` reports, as data."""

from __future__ import annotations

from .artifacts import entry_size, merged_with_rows
from .state import schema_version
from .workspace import Workspace


def describe_status(ws: Workspace) -> dict:
    """Return home path and source, schema version, CAS blob count and bytes, run count, active run.

    The store's figures count the blob files on disk (one directory walk, no stat per blob); a blob's
    size comes from its artifact row, recorded at ingest, and only an untracked blob is stat-ed."""
    from .runs import active_run

    blobs = size = 0
    rows = ws.db.execute("SELECT sha256, bytes FROM artifacts ORDER BY sha256")
    for _hexdigest, row, entry in merged_with_rows(rows, ws.cas):
        if entry is not None:
            blobs += 1
            size += row[1] if row is not None and row[1] is not None else entry_size(entry)
    active = active_run(ws.db)
    return {
        "home": str(ws.home.path),
        "home_source": ws.home.source,
        "schema_version": schema_version(ws.db),
        "cas_blobs": blobs,
        "cas_bytes": size,
        "runs": ws.db.execute("SELECT count(*) FROM runs").fetchone()[0],
        "active_run": active["id"] if active else None,
    }
