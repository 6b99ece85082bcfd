"""Probing (SPEC §4): run a backend's probe models, store capabilities and the metric mapping."""

from __future__ import annotations

import json
import uuid

from pydantic import BaseModel

from ..backends.base import Progress, sdk_output_to_stderr
from ..backends.registry import get_backend
from ..canonical import canonical_json
from ..spec.schemas import validate
from ..store.artifacts import add_ref, store_bytes
from ..store.state import record_audit
from ..store.workspace import Workspace


class ProbeReport(BaseModel):
    probe_run_id: str
    backend: str
    capabilities: dict
    mapping: dict
    payload_sha256: list[str]


def probe_backend(ws: Workspace, backend_name: str, progress: Progress, *, backend=None) -> ProbeReport:
    """Run `backend_name`'s probe, store raw payloads in the CAS, and record capabilities and mapping.

    Both documents are validated against their schemas before they are stored.
    """
    backend = backend or get_backend(backend_name, ws=ws)
    probe_run_id = "probe-" + uuid.uuid4().hex[:12]
    ws.db["probe_runs"].insert({"id": probe_run_id, "backend": backend_name, "status": "running",
                                "created_at": ws.db.now()})
    try:
        with sdk_output_to_stderr():
            outcome = backend.probe(probe_run_id, progress)
    except BaseException:
        ws.db["probe_runs"].update(probe_run_id, {"status": "error", "finished_at": ws.db.now()})
        raise
    validate(outcome.capabilities, "workspace_capabilities", f"{backend_name} capabilities")
    validate(outcome.mapping, "metric_mapping", f"{backend_name} metric mapping")
    digests = []
    with ws.db.atomic():
        for p in outcome.payloads:
            digest = store_bytes(ws.db, ws.cas, canonical_json(p.data), "probe_raw",
                                 f"{probe_run_id}-{p.repeat_index}.json")
            add_ref(ws.db, digest, "probe", probe_run_id)
            digests.append(digest)
        account = outcome.mapping.get("account")
        for table, doc in (("capabilities", outcome.capabilities), ("metric_mappings", outcome.mapping)):
            data = canonical_json(doc)
            text = data.decode("utf-8")
            digest = store_bytes(ws.db, ws.cas, data, table, f"{probe_run_id}-{table}.json")
            add_ref(ws.db, digest, "probe", probe_run_id)
            ws.db[table].insert({"backend": backend_name, "account": account, "probe_run_id": probe_run_id,
                                 "json": text, "sha256": digest, "created_at": ws.db.now()})
        ws.db["probe_runs"].update(probe_run_id, {"status": "done", "finished_at": ws.db.now(),
                                                  "payloads_json": json.dumps(digests)})
        record_audit(ws.db, "probe", "probe_completed", {"backend": backend_name, "probe_run_id": probe_run_id})
    return ProbeReport(probe_run_id=probe_run_id, backend=backend_name, capabilities=outcome.capabilities,
                       mapping=outcome.mapping, payload_sha256=digests)


def current_with_digest(ws: Workspace, table: str, backend: str) -> tuple[dict, str] | None:
    """The newest stored capabilities or mapping document for `backend` and its CAS digest, or None."""
    rows = list(ws.db[table].rows_where("backend = ?", [backend], order_by="id desc", limit=1))
    return (json.loads(rows[0]["json"]), rows[0]["sha256"]) if rows else None
