"""Gate evaluation (SPEC §6 steps 1–5): medians, the CV flake rule, missing metrics, ops, devices."""

from __future__ import annotations

import pytest

from edgegate_cli.gating.evaluate import evaluate_gates
from edgegate_cli.measure.mapping import MetricValue
from edgegate_cli.spec.pipeline import Gate, RunPolicy

POLICY = RunPolicy()


def mv(metric, per_repeat, unit="ms"):
    import statistics

    cv = statistics.stdev(per_repeat) / statistics.fmean(per_repeat) if len(per_repeat) > 1 else None
    return MetricValue(metric=metric, unit=unit, available=True, value=statistics.median(per_repeat),
                       per_repeat=per_repeat, cv=cv, repeats=len(per_repeat), samples=50 * len(per_repeat))


def unavailable(metric):
    return MetricValue(metric=metric, unit="1", available=False, reason="no NPU here")


@pytest.mark.parametrize("op,threshold,expected", [
    ("<", 10.0, "pass"), ("<", 9.0, "fail"), ("<=", 9.0, "pass"), ("<=", 8.9, "fail"),
    (">", 8.9, "pass"), (">", 9.0, "fail"), (">=", 9.0, "pass"), (">=", 9.1, "fail"),
    ("==", 9.0, "pass"), ("==", 9.5, "fail"),
])
def test_ops_compare_the_median_of_repeats(op, threshold, expected):
    """The gated value is the median of per-repeat values: [8.8, 9.0, 9.3] → 9.0."""
    ev = evaluate_gates({"d": {"latency_ms": mv("latency_ms", [9.3, 8.8, 9.0])}},
                        [Gate(metric="latency_ms", op=op, value=threshold)], POLICY, ["d"])
    assert ev.gates[0].status == expected
    assert ev.gates[0].value == 9.0
    assert ev.verdict == ("passed" if expected == "pass" else "failed")


def test_flaky_required_gate_is_a_run_error():
    metrics = {"d": {"latency_ms": mv("latency_ms", [5.0, 10.0, 15.0])}}  # CV 0.5, repeats on both sides of 12
    ev = evaluate_gates(metrics, [Gate(metric="latency_ms", op="<=", value=12)], POLICY, ["d"])
    assert ev.verdict == "error" and ev.error_code == "FLAKY_METRIC"
    assert ev.gates[0].status == "error"
    assert ev.gates[0].reason == "CV 0.500 over 3 repeats exceeds the flake limit 0.2"


def test_flaky_optional_gate_is_skipped_and_the_run_passes():
    metrics = {"d": {"latency_ms": mv("latency_ms", [5.0, 10.0, 15.0])}}
    ev = evaluate_gates(metrics, [Gate(metric="latency_ms", op="<=", value=12, required=False)], POLICY, ["d"])
    assert ev.verdict == "passed"
    assert (ev.gates[0].status, ev.gates[0].code) == ("skipped", "FLAKY")


def test_throughput_uses_its_own_flake_limit():
    """CV 0.18 is fine for latency (0.20) but flaky for throughput (0.15)."""
    values = [100.0, 118.0, 82.0]  # CV = 0.18
    lat = evaluate_gates({"d": {"latency_ms": mv("latency_ms", values)}},
                         [Gate(metric="latency_ms", op="<=", value=1000)], POLICY, ["d"])
    thr = evaluate_gates({"d": {"throughput_ips": mv("throughput_ips", values, "inferences/s")}},
                         [Gate(metric="throughput_ips", op=">=", value=100)], POLICY, ["d"])
    assert lat.verdict == "passed"
    assert thr.verdict == "error" and thr.error_code == "FLAKY_METRIC"


def test_cv_exactly_at_the_limit_is_not_flaky():
    """The rule is CV > limit; a policy limit of 0.0 makes any spread flaky, none is fine."""
    strict = RunPolicy(flake={"latency_cv": 0.0})
    same = evaluate_gates({"d": {"latency_ms": mv("latency_ms", [2.0, 2.0, 2.0])}},
                          [Gate(metric="latency_ms", op="<=", value=5)], strict, ["d"])
    spread = evaluate_gates({"d": {"latency_ms": mv("latency_ms", [2.0, 2.0, 2.1])}},
                            [Gate(metric="latency_ms", op="<=", value=2.05)], strict, ["d"])
    assert same.verdict == "passed"
    assert spread.error_code == "FLAKY_METRIC"


@pytest.mark.parametrize(("threshold", "status", "verdict"), [(250, "pass", "passed"), (1, "fail", "failed")])
def test_a_spread_that_cannot_change_the_outcome_is_decided(threshold, status, verdict):
    """CV 0.5, but every repeat is on the same side of the threshold: no repeat could have decided otherwise."""
    ev = evaluate_gates({"d": {"latency_ms": mv("latency_ms", [5.0, 10.0, 15.0])}},
                        [Gate(metric="latency_ms", op="<=", value=threshold)], POLICY, ["d"])
    assert (ev.gates[0].status, ev.verdict, ev.error_code) == (status, verdict, None)
    assert ev.gates[0].reason.startswith("every repeat (5-15 ms) ")
    assert ev.gates[0].reason.endswith("CV 0.500 over 3 repeats exceeds the flake limit 0.2, which cannot change that")


def test_missing_metric_required_vs_optional():
    metrics = {"d": {"npu_layer_fraction": unavailable("npu_layer_fraction")}}
    req = evaluate_gates(metrics, [Gate(metric="npu_layer_fraction", op=">=", value=1)], POLICY, ["d"])
    opt = evaluate_gates(metrics, [Gate(metric="npu_layer_fraction", op=">=", value=1, required=False)],
                         POLICY, ["d"])
    assert req.verdict == "error" and req.error_code == "MISSING_REQUIRED_METRIC"
    assert req.gates[0].reason == "npu_layer_fraction unavailable on d: no NPU here"
    assert opt.verdict == "passed" and opt.gates[0].status == "skipped"


def test_optional_failure_warns_without_failing_the_run():
    ev = evaluate_gates({"d": {"peak_memory_mb": mv("peak_memory_mb", [300.0, 301.0], "MiB")}},
                        [Gate(metric="peak_memory_mb", op="<", value=100, required=False)], POLICY, ["d"])
    assert ev.gates[0].status == "fail" and ev.verdict == "passed"


def test_gate_without_device_applies_to_every_device_and_device_gate_to_one():
    metrics = {"a": {"latency_ms": mv("latency_ms", [1.0, 1.0])}, "b": {"latency_ms": mv("latency_ms", [9.0, 9.0])}}
    gates = [Gate(metric="latency_ms", op="<=", value=5), Gate(metric="latency_ms", op="<=", value=10, device="b")]
    ev = evaluate_gates(metrics, gates, POLICY, ["a", "b"])
    assert [(g.device, g.threshold, g.status) for g in ev.gates] == [("a", 5, "pass"), ("b", 5, "fail"),
                                                                     ("b", 10, "pass")]
    assert ev.verdict == "failed"


def test_error_takes_precedence_over_failure():
    metrics = {"d": {"latency_ms": mv("latency_ms", [1.0, 1.0]),
                     "npu_layer_fraction": unavailable("npu_layer_fraction")}}
    gates = [Gate(metric="latency_ms", op="<=", value=0.5), Gate(metric="npu_layer_fraction", op=">=", value=1)]
    assert evaluate_gates(metrics, gates, POLICY, ["d"]).verdict == "error"


def test_evaluation_is_deterministic():
    metrics = {"d": {"latency_ms": mv("latency_ms", [3.1, 3.0, 3.2])}}
    gates = [Gate(metric="latency_ms", op="<=", value=3.1)]
    assert evaluate_gates(metrics, gates, POLICY, ["d"]) == evaluate_gates(metrics, gates, POLICY, ["d"])
