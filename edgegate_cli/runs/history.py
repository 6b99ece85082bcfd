"""Run history as data, for `runs list` and `runs show`."""

from __future__ import annotations

import json

from ..store.runs import get_run, list_runs, run_events
from ..store.workspace import Workspace

_SUMMARY = ("id", "pipeline", "backend", "status", "verdict", "error_code", "model_name", "model_sha256",
            "created_at", "finished_at")


def summarize_runs(ws: Workspace, *, pipeline: str | None = None, limit: int = 20) -> list[dict]:
    """The newest `limit` runs (optionally of one pipeline), as summaries."""
    return [{k: r[k] for k in _SUMMARY} for r in list_runs(ws.db, pipeline=pipeline, limit=limit)]


def describe_run(ws: Workspace, run_id: str) -> dict:
    """One run in full: summary, events, metrics per device, gate results, payload digests."""
    row = get_run(ws.db, run_id)
    evaluation = json.loads(row["gates_eval_json"]) if row["gates_eval_json"] else None
    payloads = [{"device": p["device"], "repeat_index": p["repeat_index"], "warmup": bool(p["warmup"]),
                 "sha256": p["sha256"], **({"role": p["role"]} if p.get("role") else {})}
                for p in ws.db["run_payloads"].rows_where("run_id = ?", [row["id"]], order_by="device, repeat_index")]
    return {
        **{k: row[k] for k in _SUMMARY}, "run_id": row["id"], "error_detail": row["error_detail"],
        "pipeline_path": row["pipeline_path"], "devices_list": json.loads(row["devices_json"] or "[]"),
        "model": json.loads(row["model_json"]) if row["model_json"] else None,
        "inputs": json.loads(row["inputs_json"]) if row["inputs_json"] else None,
        "events": [{"status": e["status"], "at": e["at"], "detail": e["detail"]} for e in run_events(ws.db, row["id"])],
        "devices": json.loads(row["metrics_json"]) if row["metrics_json"] else {},
        "gates": evaluation["gates"] if evaluation else [],
        "payloads": payloads,
    }
