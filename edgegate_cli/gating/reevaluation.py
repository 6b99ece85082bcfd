"""Re-deriving a stored run's verdict from its evidence alone (SPEC §6): raw payloads in the CAS,
the mapping snapshot the run used, and its gates and policy."""

from __future__ import annotations

import json

from pydantic import BaseModel

from ..errors import InvalidInput, VerificationFailed
from ..measure.mapping import MetricValue
from ..spec.pipeline import Gate, RunPolicy
from ..store.runs import get_run
from ..store.workspace import Workspace
from .baselines import load_recorded_baselines
from .evaluate import Evaluation, verdict_from_payloads


class CaseDetail(BaseModel):
    """One PromptPack case on one device: what was expected, what came out, how it scored."""

    device: str
    case_id: str
    median_score: float
    expected: dict | None = None
    outputs: list[str]  # distinct outputs over the measurement repeats
    detail: str | None = None
    error: str | None = None


class Reevaluation(BaseModel):
    run_id: str
    pipeline: str
    stored_verdict: str | None
    verdict: str
    agrees: bool
    mismatches: list[str]  # gate@device whose status differs from the stored one
    evaluation: Evaluation
    devices: dict[str, dict[str, MetricValue]]
    cases: list[CaseDetail] = []


def reevaluate_run(ws: Workspace, run_id: str, *, verify_blobs: bool = True) -> Reevaluation:
    """Recompute a run's metrics and verdict from its stored raw payloads and compare.

    Raises NotFound for an unknown run, InvalidInput for a run that never reached collection.
    Payload blobs are re-hashed (CorruptBlob on tampering) unless verify_blobs is False. Relative gates
    are re-derived from the baseline evidence the run recorded (its mapping and payload digests).
    """
    run = get_run(ws.db, run_id)
    if not run["mapping_sha256"] or not ws.db["run_payloads"].count_where("run_id = ?", [run["id"]]):
        raise InvalidInput(f"run {run['id']} ended {run['status']} ({run['error_code']}) before measuring; "
                           "there is nothing to re-evaluate")
    mapping = json.loads(ws.cas.read_bytes(run["mapping_sha256"], verify=verify_blobs))
    devices = json.loads(run["devices_json"])
    payloads: dict[str, list[dict]] = {d: [] for d in devices}
    for row in ws.db["run_payloads"].rows_where("run_id = ? and warmup = 0 and role is null", [run["id"]],
                                                order_by="device, repeat_index"):
        payloads[row["device"]].append(json.loads(ws.cas.read_bytes(row["sha256"], verify=verify_blobs)))
    gates = [Gate(**g) for g in json.loads(run["gates_json"])]
    policy = RunPolicy(**json.loads(run["policy_json"]))
    pipeline_doc = json.loads(run["pipeline_json"] or "{}")
    provided = {"reference_outputs"} if (pipeline_doc.get("model") or {}).get("reference_outputs") else set()
    baselines = load_recorded_baselines(ws, json.loads(run["baselines_json"]), verify=verify_blobs) \
        if run.get("baselines_json") else None
    metrics, evaluation = verdict_from_payloads(payloads, mapping, gates, policy, devices, provided,
                                                baselines=baselines)
    stored = json.loads(run["gates_eval_json"]) if run["gates_eval_json"] else None
    mismatches = []
    if stored:
        before = {(g["gate"], g["device"]): g["status"] for g in stored["gates"]}
        mismatches = [f"{g.gate}@{g.device}" for g in evaluation.gates if before.get((g.gate, g.device)) != g.status]
    return Reevaluation(run_id=run["id"], pipeline=run["pipeline"], stored_verdict=run["verdict"],
                        verdict=evaluation.verdict, agrees=(run["verdict"] == evaluation.verdict and not mismatches),
                        mismatches=mismatches, evaluation=evaluation, devices=metrics,
                        cases=case_details(payloads, _pack_cases(ws, run, verify_blobs)))


def _pack_cases(ws: Workspace, run: dict, verify_blobs: bool) -> dict[str, dict]:
    inputs = json.loads(run["inputs_json"] or "{}")
    if not str(inputs.get("source", "")).startswith("promptpack "):
        return {}
    pack = json.loads(ws.cas.read_bytes(inputs["sha256"], verify=verify_blobs))
    return {c["case_id"]: c for c in pack["cases"]}


def case_details(payloads: dict[str, list[dict]], pack_cases: dict[str, dict]) -> list[CaseDetail]:
    """Per device and case: median score over repeats, expected check, distinct outputs (GenAI runs)."""
    import statistics

    out = []
    for device, repeats in payloads.items():
        by_case: dict[str, list[dict]] = {}
        for p in repeats:
            for case in p.get("cases") or []:
                by_case.setdefault(case["case_id"], []).append(case)
        for case_id, results in by_case.items():
            last = results[-1]
            out.append(CaseDetail(
                device=device, case_id=case_id,
                median_score=statistics.median(float(r.get("score") or 0.0) for r in results),
                expected=(pack_cases.get(case_id) or {}).get("expected"),
                outputs=list(dict.fromkeys(r.get("output", "") for r in results)),
                detail=last.get("detail"), error=last.get("error")))
    return out


def require_agreement(result: Reevaluation) -> Reevaluation:
    """Return `result` when the recomputed verdict agrees with the stored one; else raise VerificationFailed."""
    if not result.agrees:
        raise VerificationFailed(f"run {result.run_id}: recomputed verdict {result.verdict} disagrees with the "
                                 f"stored {result.stored_verdict} (gates: {', '.join(result.mismatches) or 'none'})")
    return result
