"""Health analysis of a baked stage (SPEC §10.4): four outcomes, pass | fail | inconclusive | error.

Inputs are the agents' Prometheus /metrics (prometheus-client's parser): per {name, version} the
inference latency histogram, inferences and errors. A snapshot is taken when the bake starts; the window
is the difference at analysis time, so only inferences of the bake count.

- candidate: the stage's devices, their counters for the new release, over the window;
- baseline: the control cohort — target devices still on the previous release, same window — when one
  reports data, else the same stage devices' previous-release counters before the update (the snapshot).

Latency samples are approximated from histogram buckets (each observation at its bucket's midpoint, the
last bucket at its lower edge): median and p90 are compared, and a regression counts only if it exceeds
the band (latency_pct AND latency_abs_ms) **and** the one-sided Mann-Whitney test (gating/statistics.py)
is significant at alpha. Errors: a rate above error_rate (with at least 3 errors) fails.
Too few samples on either side (min_samples) is inconclusive — "no data" is never healthy. A device whose
metrics cannot be read makes the analysis `error`.
"""

from __future__ import annotations

import math

Counters = dict  # {"name@version": {"buckets": {le: cumulative}, "count": n, "errors": n}}


def parse_metrics(text: str) -> Counters:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if "name" not in s.labels or "version" not in s.labels:
                continue
            key = f"{s.labels['name']}@{s.labels['version']}"
            entry = out.setdefault(key, {"buckets": {}, "count": 0, "errors": 0})
            if s.name == "edgegate_agent_inference_latency_seconds_bucket":
                entry["buckets"][s.labels["le"]] = s.value
            elif s.name == "edgegate_agent_inference_latency_seconds_count":
                entry["count"] = s.value
            elif s.name == "edgegate_agent_inference_errors_total":
                entry["errors"] = s.value
    return out


def window(now: Counters, before: Counters | None, release: str) -> dict:
    """The counters of `release` accumulated since `before`."""
    cur = now.get(release, {"buckets": {}, "count": 0, "errors": 0})
    old = (before or {}).get(release, {"buckets": {}, "count": 0, "errors": 0})
    return {"buckets": {le: v - old["buckets"].get(le, 0) for le, v in cur["buckets"].items()},
            "count": cur["count"] - old["count"], "errors": cur["errors"] - old["errors"]}


def merge(windows: list[dict]) -> dict:
    out = {"buckets": {}, "count": 0, "errors": 0}
    for w in windows:
        out["count"] += w["count"]
        out["errors"] += w["errors"]
        for le, v in w["buckets"].items():
            out["buckets"][le] = out["buckets"].get(le, 0) + v
    return out


def samples(w: dict, cap: int = 4000) -> list[float]:
    """Approximate latency samples (ms) from cumulative buckets, scaled down to at most `cap` values."""
    edges = sorted(((math.inf if le == "+Inf" else float(le)), v) for le, v in w["buckets"].items())
    out, lower, prev = [], 0.0, 0.0
    total = w["count"] or 1
    scale = min(1.0, cap / total)
    for upper, cum in edges:
        n = int(round((cum - prev) * scale))
        value = lower if math.isinf(upper) else (lower + upper) / 2
        out += [value * 1000] * n
        lower, prev = (upper if not math.isinf(upper) else lower), cum
    return out


def _quantile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def judge(candidate: dict, baseline: dict, th, *, baseline_kind: str) -> dict:
    """The outcome and every number it rests on (what `rollout explain` prints)."""
    from ..gating.statistics import mann_whitney_u_greater

    cand, base = sorted(samples(candidate)), sorted(samples(baseline))
    numbers = {"baseline": baseline_kind, "candidate_inferences": int(candidate["count"]),
               "candidate_errors": int(candidate["errors"]), "baseline_inferences": int(baseline["count"]),
               "baseline_errors": int(baseline["errors"]), "rules": {
                   "latency": f"median or p90 up > {th.latency_pct:g}% and > {th.latency_abs_ms:g} ms, "
                              f"Mann-Whitney p < {th.alpha:g}",
                   "errors": f"error rate > {th.error_rate:.0%}", "min_samples": th.min_samples}}
    attempts = candidate["count"] + candidate["errors"]
    if attempts and candidate["errors"] >= 3 and candidate["errors"] / attempts > th.error_rate:
        numbers["error_rate"] = candidate["errors"] / attempts
        return {"outcome": "fail", "reason": "ERROR_RATE", "numbers": numbers}
    if len(cand) < th.min_samples or len(base) < th.min_samples:
        return {"outcome": "inconclusive", "reason": "NO_DATA", "numbers": numbers}
    c50, c90, b50, b90 = _quantile(cand, .5), _quantile(cand, .9), _quantile(base, .5), _quantile(base, .9)
    _, p = mann_whitney_u_greater(cand, base, method="asymptotic")
    numbers.update(candidate_p50_ms=c50, candidate_p90_ms=c90, baseline_p50_ms=b50, baseline_p90_ms=b90,
                   p_value=p)
    band = [(c, b) for c, b in ((c50, b50), (c90, b90))
            if c > b * (1 + th.latency_pct / 100) and c - b > th.latency_abs_ms]
    numbers["latency_change_pct"] = (c50 / b50 - 1) * 100 if b50 else None
    if band and p < th.alpha:
        return {"outcome": "fail", "reason": "LATENCY_REGRESSION", "numbers": numbers}
    return {"outcome": "pass", "reason": "HEALTHY", "numbers": numbers}
