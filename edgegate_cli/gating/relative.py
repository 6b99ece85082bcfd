"""The decision of a relative gate (SPEC §6 step 6): is the candidate worse than its baseline?

A relative gate fails only when **both** hold:
1. the candidate's median is worse than the baseline's by more than `max_regression_pct`, in the
   metric's bad direction (`METRICS[m].better == "lower"`: up is worse, e.g. latency;
   `"higher"`: down is worse, e.g. throughput, correctness, output_cosine);
2. a one-sided Mann-Whitney U test on the per-iteration samples, in that same direction, gives
   p < `alpha` (0.01 by default).

Everything here is pure: the caller finds the baseline (last passed run, a run id or a bundle) and
passes both runs' per-iteration samples, pooled over the measurement repeats.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from ..errors import InvalidInput
from ..measure.metrics import METRICS
from ..spec.pipeline import check_max_regression_pct
from .statistics import mann_whitney_u_greater

DEFAULT_ALPHA = 0.01


class RelativeResult(BaseModel):
    """One relative gate on one device: the numbers behind the decision and the rule applied."""

    metric: str
    status: Literal["pass", "fail", "skipped"]
    code: str | None = None  # NO_BASELINE when skipped
    better: Literal["lower", "higher"]
    max_regression_pct: float
    alpha: float
    candidate_median: float | None = None
    baseline_median: float | None = None
    ratio: float | None = None  # candidate_median / baseline_median (None if the baseline median is 0)
    change_pct: float | None = None  # signed change of the median, (ratio - 1) * 100: + means it went up
    regression_pct: float | None = None  # change in the bad direction: + means worse
    p_value: float | None = None  # one-sided, in the bad direction
    u_statistic: float | None = None
    n_candidate: int = 0
    n_baseline: int = 0
    baseline_run_id: str | None = None
    baseline_bundle_sha256: str | None = None
    rule: str
    reason: str


def _better(metric: str) -> Literal["lower", "higher"]:
    if metric not in METRICS:
        raise InvalidInput(f"relative gate: unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}",
                           field="metric")
    return METRICS[metric].better


STATISTICS = {"median": "median", "p25": "25th percentile"}


def describe_rule(metric: str, max_regression_pct: float, alpha: float = DEFAULT_ALPHA, *,
                  statistic: str = "median") -> str:
    """The rule a relative gate on `metric` applies, in one sentence (`statistic`: median or p25)."""
    worse = "rises" if _better(metric) == "lower" else "falls"
    side = "greater" if worse == "rises" else "less"
    return (f"fail if the {STATISTICS[statistic]} {metric} {worse} by more than {max_regression_pct:g} % against "
            f"the baseline and a one-sided Mann-Whitney U test (candidate {side}) gives p < {alpha:g}")


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise InvalidInput(f"alpha: {alpha!r} is out of range; it must be between 0 and 1 (exclusive)",
                           field="alpha")
    return float(alpha)


def _regression(candidate: float, baseline: float, better: str) -> tuple[float | None, float | None, bool]:
    """(ratio, change_pct, worse_in_direction) — ratio/change are None when the baseline median is 0."""
    if baseline == 0:
        worse = candidate > 0 if better == "lower" else candidate < 0
        return None, None, worse
    ratio = candidate / baseline
    change = (candidate - baseline) / abs(baseline) * 100
    return ratio, change, (change > 0 if better == "lower" else change < 0)


def evaluate_relative(metric: str, candidate_samples: Sequence[float], baseline_samples: Sequence[float],
                      max_regression_pct: float, alpha: float = DEFAULT_ALPHA, *,
                      candidate_median: float | None = None, baseline_median: float | None = None,
                      baseline_run_id: str | None = None,
                      baseline_bundle_sha256: str | None = None, statistic: str = "median") -> RelativeResult:
    """Decide a relative gate on `metric` from both runs' per-iteration samples; return a RelativeResult.

    The medians compared are those of the pooled samples unless `candidate_median`/`baseline_median`
    are given (e.g. the gated value, the median of the per-repeat medians, so the report agrees with the
    absolute gates). The test always uses the samples. Status is `pass` or `fail` (see the module doc).
    A baseline median of 0 gives no ratio; then any move in the bad direction counts as exceeding
    the threshold and the test decides. With `statistic="p25"` the values compared are the pooled
    samples' 25th percentiles instead (given medians are ignored), as bench/decision_quality.py proposes.

    Raises InvalidInput for an unknown metric, `max_regression_pct` outside (0, 1000), `alpha` outside
    (0, 1), or empty/non-finite samples.
    """
    better = _better(metric)
    max_regression_pct = check_max_regression_pct(max_regression_pct)
    alpha = _check_alpha(alpha)
    cand = [float(v) for v in candidate_samples]
    base = [float(v) for v in baseline_samples]
    # The test validates the samples (empty, NaN, inf) before any median is taken.
    if better == "lower":
        u, p = mann_whitney_u_greater(cand, base)
    else:
        u, p = mann_whitney_u_greater([-v for v in cand], [-v for v in base])
    if statistic == "p25":
        from ..measure.mapping import percentile

        c_med, b_med = percentile(cand, 25), percentile(base, 25)
    else:
        c_med = statistics.median(cand) if candidate_median is None else float(candidate_median)
        b_med = statistics.median(base) if baseline_median is None else float(baseline_median)
    ratio, change, worse = _regression(c_med, b_med, better)
    regression = None if change is None else (change if better == "lower" else -change)
    exceeds = worse if regression is None else regression > max_regression_pct
    significant = p < alpha
    status = "fail" if exceeds and significant else "pass"
    return RelativeResult(
        metric=metric, status=status, better=better, max_regression_pct=max_regression_pct, alpha=alpha,
        candidate_median=c_med, baseline_median=b_med, ratio=ratio, change_pct=change, regression_pct=regression,
        p_value=p, u_statistic=u, n_candidate=len(cand), n_baseline=len(base), baseline_run_id=baseline_run_id,
        baseline_bundle_sha256=baseline_bundle_sha256,
        rule=describe_rule(metric, max_regression_pct, alpha, statistic=statistic),
        reason=_reason(c_med, b_med, change, regression, exceeds, significant, p, max_regression_pct, alpha,
                       "p25" if statistic == "p25" else "median"),
    )


def _reason(c_med: float, b_med: float, change: float | None, regression: float | None, exceeds: bool,
            significant: bool, p: float, limit: float, alpha: float, word: str = "median") -> str:
    moved = f"n/a (baseline {word} is 0)" if change is None else f"{change:+.1f} %"
    head = f"{word} {c_med:.4g} vs baseline {b_med:.4g} ({moved}), p = {p:.2g}"
    if exceeds and significant:
        return f"{head}: worse by more than {limit:g} % and significant (p < {alpha:g}): regression"
    if exceeds:
        return f"{head}: worse by more than {limit:g} % but not significant (p >= {alpha:g}): passes"
    if regression is not None and regression > 0:
        return f"{head}: worse by {regression:.1f} %, within the {limit:g} % allowed"
    return f"{head}: not worse than the baseline"


def skipped_no_baseline(metric: str, max_regression_pct: float, alpha: float = DEFAULT_ALPHA, *,
                        detail: str | None = None, n_candidate: int = 0,
                        candidate_median: float | None = None, statistic: str = "median") -> RelativeResult:
    """The result of a relative gate with no baseline to compare against: `skipped`, code NO_BASELINE.

    `detail` says where the baseline was looked for (e.g. "no passed run of pipeline quickstart on
    local:cpu"). Validates `metric`, `max_regression_pct` and `alpha` like `evaluate_relative`.
    The caller turns this into an error under `--require-baseline`.
    """
    better = _better(metric)
    max_regression_pct = check_max_regression_pct(max_regression_pct)
    alpha = _check_alpha(alpha)
    why = detail or "no baseline run to compare against yet"
    return RelativeResult(metric=metric, status="skipped", code="NO_BASELINE", better=better,
                          max_regression_pct=max_regression_pct, alpha=alpha, candidate_median=candidate_median,
                          n_candidate=n_candidate,
                          rule=describe_rule(metric, max_regression_pct, alpha, statistic=statistic),
                          reason=f"NO_BASELINE: {why}; the gate was not evaluated")
