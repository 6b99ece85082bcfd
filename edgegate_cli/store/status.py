"""What `edgegate status` reports, as data."""

from __future__ import annotations

from .artifacts import entry_size
from .state import schema_version
from .workspace import Workspace


def describe_status(ws: Workspace) -> dict:
    """Return home path and source, schema version, CAS blob count and bytes, run count, active run.

    The store's figures count the blob files on disk (one directory walk, no stat per blob); a blob's
    size comes from its artifact row, recorded at ingest, and only an untracked blob is stat-ed."""
    from .runs import active_run

    recorded = dict(ws.db.execute("SELECT sha256, bytes FROM artifacts"))  # table order: no index walk
    blobs = size = 0
    for hexdigest, entry in ws.cas.iter_blobs(ordered=False):
        blobs += 1
        known = recorded.get(hexdigest)
        size += known if known is not None else entry_size(entry)
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
