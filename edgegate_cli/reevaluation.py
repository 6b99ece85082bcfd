"""Re-deriving a stored run's verdict from its evidence alone (SPEC §6): raw payloads in the CAS,
the mapping snapshot the run used, and its gates and policy."""

from __future__ import annotations

import json

from pydantic import BaseModel

from .errors import InvalidInput
from .gating import Evaluation, verdict_from_payloads
from .mapping import MetricValue
from .pipeline import Gate, RunPolicy
from .runs import get_run
from .workspace import Workspace


class Reevaluation(BaseModel):
    run_id: str
    pipeline: str
    stored_verdict: str | None
    verdict: str
    agrees: bool
    mismatches: list[str]  # gate@device whose status differs from the stored one
    evaluation: Evaluation
    devices: dict[str, dict[str, MetricValue]]
    events: list[dict] = []


def reevaluate_run(ws: Workspace, run_id: str, *, verify_blobs: bool = True) -> Reevaluation:
    """Recompute a run's metrics and verdict from its stored raw payloads and compare.

    Raises NotFound for an unknown run, InvalidInput for a run that never reached collection.
    Payload blobs are re-hashed (CorruptBlob on tampering) unless verify_blobs is False.
    """
    run = get_run(ws.db, run_id)
    if not run["mapping_sha256"] or not ws.db["run_payloads"].count_where("run_id = ?", [run["id"]]):
        raise InvalidInput(f"run {run['id']} ended {run['status']} ({run['error_code']}) before measuring; "
                           "there is nothing to re-evaluate")
    mapping = json.loads(ws.cas.read_bytes(run["mapping_sha256"], verify=verify_blobs))
    devices = json.loads(run["devices_json"])
    payloads: dict[str, list[dict]] = {d: [] for d in devices}
    for row in ws.db["run_payloads"].rows_where("run_id = ? and warmup = 0", [run["id"]],
                                                order_by="device, repeat_index"):
        payloads[row["device"]].append(json.loads(ws.cas.read_bytes(row["sha256"], verify=verify_blobs)))
    gates = [Gate(**g) for g in json.loads(run["gates_json"])]
    policy = RunPolicy(**json.loads(run["policy_json"]))
    pipeline_doc = json.loads(run["pipeline_json"] or "{}")
    provided = {"reference_outputs"} if (pipeline_doc.get("model") or {}).get("reference_outputs") else set()
    metrics, evaluation = verdict_from_payloads(payloads, mapping, gates, policy, devices, provided)
    stored = json.loads(run["gates_eval_json"]) if run["gates_eval_json"] else None
    mismatches = []
    if stored:
        before = {(g["gate"], g["device"]): g["status"] for g in stored["gates"]}
        mismatches = [f"{g.gate}@{g.device}" for g in evaluation.gates if before.get((g.gate, g.device)) != g.status]
    return Reevaluation(run_id=run["id"], pipeline=run["pipeline"], stored_verdict=run["verdict"],
                        verdict=evaluation.verdict, agrees=(run["verdict"] == evaluation.verdict and not mismatches),
                        mismatches=mismatches, evaluation=evaluation, devices=metrics)
