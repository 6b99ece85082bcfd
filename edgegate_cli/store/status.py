"""What `edgegate status` reports, as data."""

from __future__ import annotations

from .state import schema_version
from .workspace import Workspace


def describe_status(ws: Workspace) -> dict:
    """Return home path and source, schema version, CAS blob count and bytes, run count, active run."""
    from .runs import active_run

    digests = list(ws.cas.iter_digests())
    active = active_run(ws.db)
    return {
        "home": str(ws.home.path),
        "home_source": ws.home.source,
        "schema_version": schema_version(ws.db),
        "cas_blobs": len(digests),
        "cas_bytes": sum(ws.cas.path_of(d).stat().st_size for d in digests),
        "runs": ws.db["runs"].count,
        "active_run": active["id"] if active else None,
    }
