"""Metric mappings (SPEC §4): derive them from probe payloads, and read metrics through them.

A mapping says, per canonical metric, where in one raw payload its samples live (a JSONPath),
how they reduce to one value per repeat, and the scale to the canonical unit. `run` never
hard-codes a payload path: it reads metrics only through the mapping stored by `probe`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from functools import cache

from pydantic import BaseModel

from .metrics import METRICS, P90_MIN_SAMPLES, POOLED


class MetricValue(BaseModel):
    """One metric on one device: the gated value and the evidence behind it."""

    metric: str
    unit: str
    available: bool
    value: float | None = None  # median of per-repeat values (or the pooled statistic)
    per_repeat: list[float] = []
    cv: float | None = None  # sample stdev / mean of per-repeat values
    repeats: int = 0
    samples: int = 0  # raw samples behind the value (iterations pooled over repeats)
    reason: str | None = None  # why unavailable


@cache
def _compiled(path: str):
    from jsonpath_ng import parse

    return parse(path)


def find_values(payload: dict, path: str) -> list:
    """Every value `path` matches in `payload`, lists flattened one level."""
    out = []
    for match in _compiled(path).find(payload):
        value = match.value
        out.extend(value if isinstance(value, list) else [value])
    return out


def _numbers(values: Iterable) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def reduce_values(values: list, source: dict) -> float | None:
    """One number from the matched values under `source.reduce`, scaled; None if nothing usable."""
    how = source["reduce"]
    scale = float(source.get("scale", 1.0))
    if how == "case_median_mean":  # within one repeat: the mean score over its cases
        scores = [float(v["score"]) for v in values if isinstance(v, dict) and isinstance(v.get("score"), int | float)]
        return sum(scores) / len(scores) if scores else None
    if how == "fraction_equal":
        if not values:
            return None
        return sum(1 for v in values if v == source.get("equals")) / len(values)
    nums = _numbers(values)
    if not nums:
        return None
    if how == "value":
        if len(nums) != 1:
            return None
        result = nums[0]
    elif how == "p90":
        result = percentile(nums, 90)
    else:
        result = {"median": statistics.median, "mean": statistics.fmean, "min": min, "max": max,
                  "sum": sum}[how](nums)
    return result * scale


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method), without importing numpy."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def derive_mapping(backend: str, probe_payloads: list[dict], candidates: dict[str, dict], *,
                   unavailable: dict[str, str], probe_run_id: str, created_at: str,
                   payload_format: str, account: str | None = None) -> dict:
    """Build a mapping document from real probe payloads.

    `candidates` maps metric → {"source": {...}} or {"derive": {...}} (plus optional "requires").
    A source metric is available when it was extracted from at least one payload and stable when
    from at least two (SPEC §4). Metrics in neither dict are recorded unavailable.
    """
    metrics: dict[str, dict] = {}
    for name, cand in candidates.items():
        entry = {"unit": METRICS[name].unit, **{k: v for k, v in cand.items() if k != "min_runs"}}
        if "source" in cand:
            seen = sum(1 for p in probe_payloads
                       if reduce_values(find_values(p, cand["source"]["path"]), cand["source"]) is not None)
            entry.update(available=seen >= 1, stable=seen >= 2, seen_in_runs=seen)
            if not seen:
                entry["reason"] = f"{cand['source']['path']} was not found in any probe payload"
        metrics[name] = entry
    for name, cand in candidates.items():  # derived metrics inherit their source's standing
        if "derive" in cand:
            base = metrics.get(cand["derive"]["from"], {})
            metrics[name].update(available=bool(base.get("available")), stable=bool(base.get("stable")),
                                 seen_in_runs=base.get("seen_in_runs", 0))
    for name in METRICS:
        if name not in metrics:
            metrics[name] = {"unit": METRICS[name].unit, "available": False, "stable": False,
                             "seen_in_runs": 0, "reason": unavailable.get(name, f"{backend} does not report it")}
    return {"schema_version": 1, "backend": backend, "account": account, "payload_format": payload_format,
            "probe_run_id": probe_run_id, "created_at": created_at, "probe_runs": len(probe_payloads),
            "metrics": dict(sorted(metrics.items()))}


def _stats(metric: str, unit: str, per_repeat: list[float], samples: int) -> MetricValue:
    mean = statistics.fmean(per_repeat)
    cv = None  # undefined for a single repeat
    if len(per_repeat) > 1:
        cv = statistics.stdev(per_repeat) / mean if mean else 0.0
    return MetricValue(metric=metric, unit=unit, available=True, value=statistics.median(per_repeat),
                       per_repeat=per_repeat, cv=cv, repeats=len(per_repeat), samples=samples)


def compute_metrics(payloads: list[dict], mapping: dict, *,
                    provided: set[str] = frozenset()) -> dict[str, MetricValue]:
    """Metrics for one device from its measurement payloads (warmup already excluded).

    `provided` names what the run supplies for metrics with a `requires` (e.g. reference_outputs).
    """
    out: dict[str, MetricValue] = {}
    for name, entry in mapping["metrics"].items():
        unit = entry["unit"]
        if not entry.get("available"):
            out[name] = MetricValue(metric=name, unit=unit, available=False, reason=entry.get("reason"))
        elif entry.get("requires") and entry["requires"] not in provided:
            out[name] = MetricValue(metric=name, unit=unit, available=False,
                                    reason=f"needs {entry['requires']} in the pipeline's model section")
        elif "source" in entry:
            out[name] = _from_source(name, unit, entry["source"], payloads)
    for name, entry in mapping["metrics"].items():
        if entry.get("available") and "derive" in entry:
            out[name] = _derived(name, entry, out)
    return dict(sorted(out.items()))


def _from_source(name: str, unit: str, source: dict, payloads: list[dict]) -> MetricValue:
    if source["reduce"] == "case_median_mean":
        return _case_median_mean(name, unit, payloads, source)
    if name in POOLED:
        nums = _numbers(v for p in payloads for v in find_values(p, source["path"]))
        if len(nums) < P90_MIN_SAMPLES:
            return MetricValue(metric=name, unit=unit, available=False, samples=len(nums),
                               reason=f"{len(nums)} samples; needs at least {P90_MIN_SAMPLES}")
        return MetricValue(metric=name, unit=unit, available=True, repeats=len(payloads),
                           value=reduce_values(nums, source), samples=len(nums))
    per_repeat, samples = [], 0
    for p in payloads:
        values = find_values(p, source["path"])
        v = reduce_values(values, source)
        if v is not None:
            per_repeat.append(v)
            samples += max(1, len(values))
    if not per_repeat:
        return MetricValue(metric=name, unit=unit, available=False,
                           reason=f"{source['path']} missing from this run's payloads")
    return _stats(name, unit, per_repeat, samples)


def _case_median_mean(name: str, unit: str, payloads: list[dict], source: dict) -> MetricValue:
    """SPEC §6 step 4: per case the median score over repeats, then the mean over cases."""
    by_case: dict[str, list[float]] = {}
    per_repeat = []
    for p in payloads:
        cases = [c for c in find_values(p, source["path"]) if isinstance(c, dict) and "case_id" in c]
        for c in cases:
            by_case.setdefault(str(c["case_id"]), []).append(float(c.get("score") or 0.0))
        if cases:
            per_repeat.append(reduce_values(cases, source))
    if not by_case:
        return MetricValue(metric=name, unit=unit, available=False,
                           reason=f"{source['path']} missing from this run's payloads")
    value = statistics.fmean(statistics.median(v) for v in by_case.values())
    return MetricValue(metric=name, unit=unit, available=True, value=value, per_repeat=per_repeat,
                       cv=None, repeats=len(per_repeat), samples=sum(len(v) for v in by_case.values()))


def _derived(name: str, entry: dict, computed: dict[str, MetricValue]) -> MetricValue:
    base = computed.get(entry["derive"]["from"])
    if base is None or not base.available or not base.per_repeat or any(v <= 0 for v in base.per_repeat):
        return MetricValue(metric=name, unit=entry["unit"], available=False,
                           reason=f"derived from {entry['derive']['from']}, which is unavailable")
    # reciprocal_ms_to_per_s: per-repeat throughput = 1000 / per-repeat latency.
    per_repeat = [1000.0 / v for v in base.per_repeat]
    return _stats(name, entry["unit"], per_repeat, base.samples)
