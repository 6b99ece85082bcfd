"""Deterministic gate evaluation (SPEC §6 steps 1–5): a pure function of metrics, gates and policy.

Metrics come from `mapping.compute_metrics` (median over repeats, CV, sample counts); this module
applies the flake rule, the missing-metric rule and the comparison, and derives the verdict.
"""

from __future__ import annotations

import operator
from typing import Literal

from pydantic import BaseModel, model_serializer

from ..errors import Verdict
from ..measure.mapping import MetricValue
from ..measure.metrics import flake_threshold
from ..spec.pipeline import Gate, RunPolicy

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
    code: str | None = None  # FLAKY_METRIC, MISSING_REQUIRED_METRIC, UNAVAILABLE, FLAKY, NO_BASELINE
    reason: str
    # Relative gates only (threshold = max_regression_pct, op "<="; value = the candidate's median):
    baseline: str | None = None  # what was asked for: last-passed, a run id, a bundle path
    baseline_source: str | None = None  # pinned, last-passed, run, bundle
    baseline_run_id: str | None = None
    baseline_bundle_sha256: str | None = None
    baseline_median: float | None = None
    ratio: float | None = None
    p_value: float | None = None
    max_regression_pct: float | None = None
    statistic: str | None = None  # median (default) or p25: what baseline_median and ratio compare
    candidate_statistic: float | None = None  # the candidate's compared value (= value for median)
    n_candidate: int | None = None
    n_baseline: int | None = None
    rule: str | None = None
    # Issue 11 (left out of the JSON when unset, so results stored before it re-derive byte for byte):
    baseline_mode: str | None = None  # paired | recorded: which baseline samples a relative gate compared with
    baseline_mode_reason: str | None = None  # why that mode (e.g. why paired measurement was not possible)
    host: dict | None = None  # timing gates: how starved of CPU the repeats were (gating.noise.HostNoise)

    @model_serializer(mode="wrap")
    def _omit_unset_additions(self, handler):
        data = handler(self)
        for key in ("baseline_mode", "baseline_mode_reason", "host"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class BaselineEvidence(BaseModel):
    """What a relative gate compares against on one device: the baseline run's measurement payloads and
    the mapping they are read through, or why there is none (`missing`)."""

    source: str  # pinned, last-passed, run, bundle
    run_id: str | None = None
    bundle_sha256: str | None = None
    payloads: list[dict] = []
    mapping: dict | None = None
    missing: str | None = None  # set when there is no baseline: NO_BASELINE, with this detail
    # Paired measurement (SPEC §6 item 7); `mode` None: a record from before it (compared as recorded).
    mode: str | None = None  # paired when the baseline's model was measured again in this run, else recorded
    paired_reason: str | None = None  # how it was paired, or why it could not be
    paired_payloads: list[dict] = []  # the baseline model's measurement repeats in this run (warmup excluded)


def baseline_key(gate: Gate, device: str) -> str:
    """Key of a relative gate's baseline in the `baselines` dict: its baseline spec and the device."""
    return f"{gate.baseline}@{device}"


class Evaluation(BaseModel):
    verdict: Verdict
    error_code: str | None = None
    error_detail: str | None = None
    gates: list[GateResult]


def _evaluate_one(gate: Gate, device: str, m: MetricValue | None, policy: RunPolicy,
                  relative: tuple[list[dict], dict, BaselineEvidence | None] | None = None,
                  noise=None) -> GateResult:
    base = dict(gate=gate.label, metric=gate.metric, op=gate.op, threshold=gate.value, device=device,
                required=gate.required, unit=m.unit if m else "")
    if gate.relative:
        base.update(op="<=", threshold=gate.max_regression_pct, max_regression_pct=gate.max_regression_pct,
                    baseline=gate.baseline)
    if m is None or not m.available or m.value is None:
        why = (m.reason if m else None) or "the backend did not report it"
        if gate.required:
            return GateResult(**base, status="error", code="MISSING_REQUIRED_METRIC",
                              reason=f"{gate.metric} unavailable on {device}: {why}")
        return GateResult(**base, status="skipped", code="UNAVAILABLE", reason=f"unavailable: {why}")
    stats = dict(value=m.value, cv=m.cv, repeats=m.repeats, samples=m.samples, per_repeat=m.per_repeat)
    limit = flake_threshold(gate.metric, policy.flake.model_dump())
    if gate.relative and (relative is None or relative[2] is None or relative[2].missing):
        return _evaluate_relative(gate, m, base, stats, limit, relative)  # NO_BASELINE: nothing to decide on
    baseline_noise = _paired_noise(gate, relative, policy) if gate.relative else None
    noisy = _noisy(gate, noise, baseline_noise)
    if noisy is not None:
        host, why = noisy
        if gate.required:
            return GateResult(**base, **stats, cv_limit=limit, host=host, status="error", code="NOISY_HOST", reason=why)
        return GateResult(**base, **stats, cv_limit=limit, host=host, status="skipped", code="NOISY", reason=why)
    host = _host(gate, noise, baseline_noise)
    if limit is not None and m.cv is not None and m.cv > limit:
        why = f"CV {m.cv:.3f} over {m.repeats} repeats exceeds the flake limit {limit:g}"
        if gate.relative and baseline_noise is not None:
            # Paired: both sides met the same host, repeat by repeat, so the spread is shared and the one-sided
            # test already weighs it (a spread this wide cannot make a regression significant). The host's
            # starvation is NOISY_HOST's to judge, above; the CV flake rule does not apply.
            paired = _evaluate_relative(gate, m, base, {**stats, "host": host}, limit, relative)
            return paired.model_copy(update={"reason": f"{paired.reason} ({why}; decided by the paired test)"})
        sides = {OPS[gate.op](v, gate.value) for v in m.per_repeat} if not gate.relative else set()
        if len(sides) == 1 and len(m.per_repeat) == m.repeats:
            # Every repeat on the same side of the threshold: the spread cannot change the outcome, so an
            # absolute gate far from its limit (0.27 ms against 250 ms) is decided however noisy the host.
            ok = sides.pop()
            span = f"{min(m.per_repeat):.4g}-{max(m.per_repeat):.4g} {m.unit}"
            return GateResult(**base, **stats, cv_limit=limit, host=host, status="pass" if ok else "fail",
                              reason=f"every repeat ({span}) {'meets' if ok else 'does not meet'} {gate.op} "
                                     f"{gate.value:g}; {why}, which cannot change that")
        if gate.required:
            return GateResult(**base, **stats, cv_limit=limit, host=host, status="error", code="FLAKY_METRIC",
                              reason=why)
        return GateResult(**base, **stats, cv_limit=limit, host=host, status="skipped", code="FLAKY", reason=why)
    if gate.relative:
        return _evaluate_relative(gate, m, base, {**stats, "host": host}, limit, relative)
    ok = OPS[gate.op](m.value, gate.value)
    rel = "meets" if ok else "does not meet"
    return GateResult(**base, **stats, cv_limit=limit, host=host, status="pass" if ok else "fail",
                      reason=f"median {m.value:.4g} {m.unit} {rel} {gate.op} {gate.value:g}")


def _paired_noise(gate: Gate, relative, policy: RunPolicy):
    """The starvation of the paired baseline repeats this relative gate compares with, if it compares with any."""
    from .noise import host_noise
    from .paired import PAIRED, baseline_side

    _payloads, mapping, evidence = relative or ([], {}, None)
    if evidence is None or evidence.missing:
        return None
    mode, _why, payloads, _mapping = baseline_side(gate, evidence, mapping)
    return host_noise(payloads, policy.noisy_host) if mode == PAIRED else None


def _host(gate: Gate, noise, baseline_noise) -> dict | None:
    from .noise import is_timing

    if not is_timing(gate.metric) or noise is None or not noise.assessed:
        return None
    return {**noise.summary(), **({"baseline": baseline_noise.summary()} if baseline_noise is not None else {})}


def _noisy(gate: Gate, noise, baseline_noise) -> tuple[dict | None, str] | None:
    """(host summary, reason) when a timing gate's repeats were starved too often to decide on, else None."""
    from .noise import is_timing, noisy_reason

    if not is_timing(gate.metric):
        return None
    why = noisy_reason(noise, baseline_noise)
    return None if why is None else (_host(gate, noise, baseline_noise), f"NOISY_HOST: {why}")


def _evaluate_relative(gate: Gate, m: MetricValue, base: dict, stats: dict, limit: float | None,
                       relative: tuple[list[dict], dict, BaselineEvidence | None] | None) -> GateResult:
    """SPEC §6 step 6 on one device: candidate vs baseline medians and the one-sided MWU test, against the
    paired baseline repeats of this run where there are some (item 7), else the recorded ones."""
    from ..measure.mapping import compute_metrics
    from ..measure.samples import iteration_samples
    from .paired import baseline_side, default_statistic
    from .relative import evaluate_relative, skipped_no_baseline

    payloads, mapping, evidence = relative or ([], {}, None)
    candidate = iteration_samples(gate.metric, payloads, mapping) if mapping else []
    found = dict(baseline_source=evidence.source if evidence else None,
                 baseline_run_id=evidence.run_id if evidence else None,
                 baseline_bundle_sha256=evidence.bundle_sha256 if evidence else None)
    mode, why, base_payloads, base_mapping = (None, None, [], {}) if evidence is None or evidence.missing else \
        baseline_side(gate, evidence, mapping)
    found.update(baseline_mode=mode, baseline_mode_reason=why)
    statistic = gate.statistic or default_statistic(mode)
    samples = iteration_samples(gate.metric, base_payloads, base_mapping) if base_payloads else []
    if not samples or not candidate:
        detail = (evidence.missing if evidence and evidence.missing else
                  "no baseline was resolved for this gate" if evidence is None else
                  f"baseline run {evidence.run_id} has no per-iteration samples of {gate.metric} on {base['device']}"
                  if candidate else f"this run has no per-iteration samples of {gate.metric}")
        r = skipped_no_baseline(gate.metric, gate.max_regression_pct, detail=detail, n_candidate=len(candidate),
                                candidate_median=m.value, statistic=statistic)
        return GateResult(**base, **stats, **found, cv_limit=limit, status="skipped", code="NO_BASELINE",
                          reason=r.reason, rule=r.rule, n_candidate=len(candidate))
    # The baseline's gated value (median of its per-repeat values), as the candidate's, so medians agree.
    bm = compute_metrics(base_payloads, base_mapping, provided={"reference_outputs"}).get(gate.metric)
    r = evaluate_relative(gate.metric, candidate, samples, gate.max_regression_pct, candidate_median=m.value,
                          baseline_median=bm.value if bm and bm.available else None,
                          baseline_run_id=evidence.run_id, baseline_bundle_sha256=evidence.bundle_sha256,
                          statistic=statistic)
    return GateResult(**base, **stats, **found, cv_limit=limit, status=r.status, reason=r.reason, rule=r.rule,
                      statistic=statistic, candidate_statistic=r.candidate_median,
                      baseline_median=r.baseline_median, ratio=r.ratio, p_value=r.p_value,
                      n_candidate=r.n_candidate, n_baseline=r.n_baseline)


def evaluate_gates(metrics: dict[str, dict[str, MetricValue]], gates: list[Gate], policy: RunPolicy,
                   devices: list[str], *, payloads: dict[str, list[dict]] | None = None, mapping: dict | None = None,
                   baselines: dict[str, BaselineEvidence] | None = None) -> Evaluation:
    """Evaluate every gate on every device it applies to; return per-gate results and the verdict.

    Relative gates also need the candidate's `payloads` (device → measurement payloads), the `mapping`
    and `baselines` (keyed by `baseline_key(gate, device)`); a relative gate without its baseline is
    `skipped` with code NO_BASELINE. Verdict: `error` if a required gate errored (flaky or missing
    metric), else `failed` if a required gate failed, else `passed`. Optional gates that fail are
    reported but do not fail the run.
    """
    from .noise import host_noise

    noise = {d: host_noise(p, policy.noisy_host) for d, p in (payloads or {}).items()}
    results = []
    for gate in gates:
        for device in devices:
            if gate.device and gate.device != device:
                continue
            relative = ((payloads or {}).get(device, []), mapping or {},
                        (baselines or {}).get(baseline_key(gate, device))) if gate.relative else None
            results.append(_evaluate_one(gate, device, metrics.get(device, {}).get(gate.metric), policy, relative,
                                         noise.get(device)))
    errors = [r for r in results if r.required and r.status == "error"]
    if errors:
        first = errors[0]
        return Evaluation(verdict=Verdict.ERROR, error_code=first.code, gates=results,
                          error_detail=f"{first.gate} on {first.device}: {first.reason}")
    failed = any(r.required and r.status == "fail" for r in results)
    return Evaluation(verdict=Verdict.FAILED if failed else Verdict.PASSED, gates=results)


def verdict_from_payloads(payloads: dict[str, list[dict]], mapping: dict, gates: list[Gate], policy: RunPolicy,
                          devices: list[str], provided: set[str], *,
                          baselines: dict[str, BaselineEvidence] | None = None,
                          ) -> tuple[dict[str, dict[str, MetricValue]], Evaluation]:
    """The verdict as a pure function of (raw measurement payloads, mapping, gates, policy) — SPEC §6.

    `payloads` maps device → its measurement repeats' payloads (warmup excluded). `baselines` holds
    the baseline evidence of relative gates (see `evaluate_gates`). `run` and `gate check` both call
    this, so a stored verdict can always be re-derived from its evidence.
    """
    from ..measure.mapping import compute_metrics

    metrics = {device: compute_metrics(payloads.get(device, []), mapping, provided=provided) for device in devices}
    return metrics, evaluate_gates(metrics, gates, policy, devices, payloads=payloads, mapping=mapping,
                                   baselines=baselines)
