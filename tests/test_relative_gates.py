"""Relative gate decisions (SPEC §6 step 6): worse by more than the threshold AND significant."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from edgegate_cli.errors import InvalidInput
from edgegate_cli.gating.relative import evaluate_relative, skipped_no_baseline


def _samples(median: float, n: int = 150, spread: float = 0.02, seed: int = 0) -> list[float]:
    """`n` iterations around `median` with a small multiplicative spread (tight noise)."""
    rng = np.random.default_rng(seed)
    return (median * np.exp(rng.normal(0, spread, n))).tolist()


def test_thirty_percent_slower_candidate_with_tight_noise_fails():
    base, cand = _samples(10.0, seed=1), _samples(13.0, seed=2)
    result = evaluate_relative("latency_ms", cand, base, 10)
    assert result.status == "fail"
    assert result.better == "lower"
    assert result.change_pct == pytest.approx(30, abs=1.5)
    assert result.regression_pct == result.change_pct
    assert result.ratio == pytest.approx(1.3, abs=0.015)
    assert result.p_value < 1e-40
    assert (result.n_candidate, result.n_baseline) == (150, 150)
    assert result.reason.endswith("worse by more than 10 % and significant (p < 0.01): regression")
    assert result.rule == ("fail if the median latency_ms rises by more than 10 % against the baseline and a "
                           "one-sided Mann-Whitney U test (candidate greater) gives p < 0.01")


def test_three_percent_slower_candidate_passes_although_significant():
    """Tight noise makes 3 % significant, but it is within the 10 % allowed."""
    base, cand = _samples(10.0, seed=1), _samples(10.3, seed=2)
    result = evaluate_relative("latency_ms", cand, base, 10)
    assert result.status == "pass"
    assert result.p_value < 0.01
    assert 1 < result.regression_pct < 5
    assert result.reason.endswith("within the 10 % allowed")


def test_thirty_percent_worse_median_with_three_samples_each_passes_because_not_significant():
    """With 3 vs 3 samples the smallest one-sided p (exact, no ties) is 1/C(6,3) = 0.05 >= 0.01.

    So a relative gate can never fail on three samples per side, however large the change: the rule
    needs both the size and the evidence. Runs gate on pooled per-iteration samples (150 by default).
    """
    result = evaluate_relative("latency_ms", [13.0, 13.5, 14.3], [10.0, 10.5, 11.0], 10)
    assert result.status == "pass"
    assert result.regression_pct == pytest.approx(28.57, abs=0.01)
    assert result.p_value == pytest.approx(0.05)
    assert result.reason.endswith("worse by more than 10 % but not significant (p >= 0.01): passes")


def test_faster_candidate_passes_with_p_near_one():
    base, cand = _samples(10.0, seed=1), _samples(7.0, seed=2)
    result = evaluate_relative("latency_ms", cand, base, 10)
    assert result.status == "pass"
    assert result.p_value > 0.99
    assert result.change_pct == pytest.approx(-30, abs=1.5)
    assert result.reason.endswith("not worse than the baseline")


def test_throughput_direction_is_reversed_down_is_worse():
    base = _samples(1000.0, seed=1)
    down = evaluate_relative("throughput_ips", _samples(700.0, seed=2), base, 10)
    up = evaluate_relative("throughput_ips", _samples(1300.0, seed=2), base, 10)
    assert (down.status, down.better) == ("fail", "higher")
    assert down.change_pct == pytest.approx(-30, abs=1.5)
    assert down.regression_pct == pytest.approx(30, abs=1.5)
    assert "falls by more than 10 %" in down.rule and "(candidate less)" in down.rule
    assert up.status == "pass"
    assert up.regression_pct == pytest.approx(-30, abs=1.5)


@pytest.mark.parametrize("metric", ["correctness", "output_cosine", "tps"])
def test_higher_is_better_metrics_fail_when_they_drop(metric):
    base = _samples(0.9, seed=3)
    assert evaluate_relative(metric, _samples(0.6, seed=4), base, 10).status == "fail"
    assert evaluate_relative(metric, _samples(0.88, seed=4), base, 10).status == "pass"


def test_p_value_is_the_one_sided_test_in_the_worse_direction_per_scipy():
    rng = np.random.default_rng(11)
    base, cand = rng.normal(100, 5, 60), rng.normal(97, 5, 60)
    lat = evaluate_relative("latency_ms", cand.tolist(), base.tolist(), 10)
    thr = evaluate_relative("throughput_ips", cand.tolist(), base.tolist(), 10)
    assert lat.p_value == pytest.approx(stats.mannwhitneyu(cand, base, alternative="greater").pvalue, rel=1e-9)
    assert thr.p_value == pytest.approx(stats.mannwhitneyu(cand, base, alternative="less").pvalue, rel=1e-9)


def test_given_medians_are_compared_instead_of_the_pooled_ones():
    """The caller may pass the gated values (median of per-repeat medians); the test still uses samples."""
    base, cand = _samples(10.0, seed=1), _samples(13.0, seed=2)
    result = evaluate_relative("latency_ms", cand, base, 10, candidate_median=10.5, baseline_median=10.0)
    assert result.status == "pass"
    assert result.change_pct == pytest.approx(5.0)
    assert result.p_value < 1e-40


def test_zero_baseline_median_has_no_ratio_and_any_significant_rise_fails():
    base = [0.0] * 100
    cand = _samples(0.01, n=100, seed=5)
    result = evaluate_relative("output_max_abs_err", cand, base, 10)
    assert result.status == "fail"
    assert (result.ratio, result.change_pct, result.regression_pct) == (None, None, None)
    assert "(n/a (baseline median is 0))" in result.reason
    json.loads(result.model_dump_json())  # no NaN or infinity leaks into JSON


def test_baseline_identity_is_carried_into_the_result():
    result = evaluate_relative("latency_ms", _samples(10.0), _samples(10.0, seed=9), 10,
                               baseline_run_id="run-20260101-000000-abcdef",
                               baseline_bundle_sha256="sha256:" + "a" * 64)
    dumped = result.model_dump(mode="json")
    assert dumped["baseline_run_id"] == "run-20260101-000000-abcdef"
    assert dumped["baseline_bundle_sha256"] == "sha256:" + "a" * 64


@pytest.mark.parametrize("value", [0, -5, 1000, 1e9, float("nan"), float("inf"), True, "10"])
def test_max_regression_pct_out_of_range_is_invalid_input_naming_the_value(value):
    with pytest.raises(InvalidInput) as err:
        evaluate_relative("latency_ms", [1.0], [1.0], value)
    assert err.value.message == (f"max_regression_pct: {value!r} is out of range; it must be greater than 0 and "
                                 "less than 1000 (a percentage, e.g. 10 for 10 %)")
    assert err.value.field == "max_regression_pct"
    assert err.value.exit_code == 2


@pytest.mark.parametrize("value", [0.001, 10, 999.9])
def test_max_regression_pct_inside_the_bounds_is_accepted(value):
    assert evaluate_relative("latency_ms", [1.0, 1.1], [1.0, 1.1], value).max_regression_pct == value


def test_unknown_metric_and_bad_alpha_are_invalid_input():
    with pytest.raises(InvalidInput) as err:
        evaluate_relative("latency", [1.0], [1.0], 10)
    assert err.value.message.startswith("relative gate: unknown metric 'latency'; known: correctness, ")
    with pytest.raises(InvalidInput) as err:
        evaluate_relative("latency_ms", [1.0], [1.0], 10, alpha=1.5)
    assert err.value.message == "alpha: 1.5 is out of range; it must be between 0 and 1 (exclusive)"


def test_empty_samples_are_invalid_input():
    with pytest.raises(InvalidInput) as err:
        evaluate_relative("latency_ms", [1.0], [], 10)
    assert err.value.message == "baseline samples are empty; the Mann-Whitney U test needs at least one value each"


def test_no_baseline_is_skipped_with_code_and_reason():
    result = skipped_no_baseline("latency_ms", 10, detail="no passed run of pipeline quickstart on local:cpu",
                                 n_candidate=150, candidate_median=0.21)
    assert (result.status, result.code) == ("skipped", "NO_BASELINE")
    assert result.reason == ("NO_BASELINE: no passed run of pipeline quickstart on local:cpu; "
                             "the gate was not evaluated")
    assert (result.baseline_median, result.p_value, result.ratio) == (None, None, None)
    assert (result.candidate_median, result.n_candidate, result.n_baseline) == (0.21, 150, 0)
    assert skipped_no_baseline("tps", 5).reason == ("NO_BASELINE: no baseline run to compare against yet; "
                                                    "the gate was not evaluated")
    with pytest.raises(InvalidInput):
        skipped_no_baseline("latency_ms", 0)
