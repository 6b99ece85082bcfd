"""Deterministic gate evaluation (SPEC §6 steps 1–5): a pure function of metrics, gates and policy.

Metrics come from `mapping.compute_metrics` (median over repeats, CV, sample counts); this module
applies the flake rule, the missing-metric rule and the comparison, and derives the verdict.
"""

from __future__ import annotations

import operator
from typing import Literal

from pydantic import BaseModel

from .mapping import MetricValue
from .metrics import flake_threshold
from .pipeline import Gate, RunPolicy

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


class GateResult(BaseModel):
    gate: str  # label, e.g. "latency_ms <= 12.5"
    metric: str
    op: str
    threshold: float
    device: str
    required: bool
    status: Literal["pass", "fail", "skipped", "error"]
    value: float | None = None
    unit: str = ""
    cv: float | None = None
    cv_limit: float | None = None
    repeats: int = 0
    samples: int = 0
    per_repeat: list[float] = []
    code: str | None = None  # FLAKY_METRIC, MISSING_REQUIRED_METRIC, UNAVAILABLE, FLAKY
    reason: str


class Evaluation(BaseModel):
    verdict: Literal["passed", "failed", "error"]
    error_code: str | None = None
    error_detail: str | None = None
    gates: list[GateResult]


def _evaluate_one(gate: Gate, device: str, m: MetricValue | None, policy: RunPolicy) -> GateResult:
    base = dict(gate=gate.label, metric=gate.metric, op=gate.op, threshold=gate.value, device=device,
                required=gate.required, unit=m.unit if m else "")
    if m is None or not m.available or m.value is None:
        why = (m.reason if m else None) or "the backend did not report it"
        if gate.required:
            return GateResult(**base, status="error", code="MISSING_REQUIRED_METRIC",
                              reason=f"{gate.metric} unavailable on {device}: {why}")
        return GateResult(**base, status="skipped", code="UNAVAILABLE", reason=f"unavailable: {why}")
    stats = dict(value=m.value, cv=m.cv, repeats=m.repeats, samples=m.samples, per_repeat=m.per_repeat)
    limit = flake_threshold(gate.metric, policy.flake.model_dump())
    if limit is not None and m.cv is not None and m.cv > limit:
        why = f"CV {m.cv:.3f} over {m.repeats} repeats exceeds the flake limit {limit:g}"
        if gate.required:
            return GateResult(**base, **stats, cv_limit=limit, status="error", code="FLAKY_METRIC", reason=why)
        return GateResult(**base, **stats, cv_limit=limit, status="skipped", code="FLAKY", reason=why)
    ok = OPS[gate.op](m.value, gate.value)
    rel = "meets" if ok else "does not meet"
    return GateResult(**base, **stats, cv_limit=limit, status="pass" if ok else "fail",
                      reason=f"median {m.value:.4g} {m.unit} {rel} {gate.op} {gate.value:g}")


def evaluate_gates(metrics: dict[str, dict[str, MetricValue]], gates: list[Gate], policy: RunPolicy,
                   devices: list[str]) -> Evaluation:
    """Evaluate every gate on every device it applies to; return per-gate results and the verdict.

    Verdict: `error` if a required gate errored (flaky or missing metric), else `failed` if a
    required gate failed, else `passed`. Optional gates that fail are reported but do not fail the run.
    """
    results = []
    for gate in gates:
        for device in devices:
            if gate.device and gate.device != device:
                continue
            results.append(_evaluate_one(gate, device, metrics.get(device, {}).get(gate.metric), policy))
    errors = [r for r in results if r.required and r.status == "error"]
    if errors:
        first = errors[0]
        return Evaluation(verdict="error", error_code=first.code, gates=results,
                          error_detail=f"{first.gate} on {first.device}: {first.reason}")
    failed = any(r.required and r.status == "fail" for r in results)
    return Evaluation(verdict="failed" if failed else "passed", gates=results)


def required_metrics(gates: list[Gate]) -> set[str]:
    return {g.metric for g in gates if g.required}


def verdict_from_payloads(payloads: dict[str, list[dict]], mapping: dict, gates: list[Gate], policy: RunPolicy,
                          devices: list[str], provided: set[str],
                          ) -> tuple[dict[str, dict[str, MetricValue]], Evaluation]:
    """The verdict as a pure function of (raw measurement payloads, mapping, gates, policy) — SPEC §6.

    `payloads` maps device → its measurement repeats' payloads (warmup excluded). `run` and
    `gate check` both call this, so a stored verdict can always be re-derived from its evidence.
    """
    from .mapping import compute_metrics

    metrics = {device: compute_metrics(payloads.get(device, []), mapping, provided=provided) for device in devices}
    return metrics, evaluate_gates(metrics, gates, policy, devices)
