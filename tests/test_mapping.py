"""Metric mappings: derived from real-shaped payloads, and the only way run reads metrics."""

from __future__ import annotations

import numpy as np
import pytest

from edgegate_cli.backends.local.catalog import CANDIDATES, UNAVAILABLE
from edgegate_cli.measure.mapping import compute_metrics, derive_mapping, percentile, reduce_values
from edgegate_cli.spec.schemas import validate


def payload(times, load=20.0, cosine=None):
    return {"iterations_ms": times, "load_ms": load, "warm_load_ms": load / 2, "peak_rss_mb": 80.0,
            "outputs": None if cosine is None else {"cosine": cosine, "max_abs_err": 1e-6}}


def mapping_from(payloads):
    doc = derive_mapping("local", payloads, CANDIDATES, unavailable=UNAVAILABLE, probe_run_id="probe-x",
                         created_at="2026-11-23T00:00:00.000000Z", payload_format="edgegate.local.v1")
    validate(doc, "metric_mapping", "derived mapping")
    return doc


def test_stability_needs_two_probe_runs():
    one = mapping_from([payload([1.0, 2.0], cosine=1.0)])
    two = mapping_from([payload([1.0, 2.0], cosine=1.0), payload([1.5], cosine=0.99)])
    assert one["metrics"]["latency_ms"] == {"available": True, "stable": False, "seen_in_runs": 1, "unit": "ms",
                                            "source": {"path": "$.iterations_ms", "reduce": "median"}}
    assert two["metrics"]["latency_ms"]["stable"] is True
    assert two["metrics"]["throughput_ips"]["stable"] is True  # derived metrics inherit their source's standing
    assert two["metrics"]["npu_layer_fraction"]["available"] is False


def test_a_candidate_missing_from_payloads_is_unavailable():
    mapping = mapping_from([payload([1.0]), payload([1.0])])  # no reference outputs in the probe
    assert mapping["metrics"]["output_cosine"]["available"] is False
    assert mapping["metrics"]["output_cosine"]["reason"] == "$.outputs.cosine was not found in any probe payload"


def test_p90_matches_numpy_and_needs_64_samples():
    rng = np.random.default_rng(1)
    samples = [list(rng.lognormal(1.0, 0.1, 30)) for _ in range(3)]
    mapping = mapping_from([payload(s) for s in samples[:2]])
    pooled = [v for s in samples for v in s]
    metrics = compute_metrics([payload(s) for s in samples], mapping)
    assert metrics["latency_p90_ms"].value == pytest.approx(float(np.percentile(pooled, 90)))
    assert metrics["latency_p90_ms"].samples == 90
    few = compute_metrics([payload(s[:20]) for s in samples], mapping)
    assert few["latency_p90_ms"].available is False
    assert few["latency_p90_ms"].reason == "60 samples; needs at least 64"


def test_per_repeat_medians_cv_and_derived_throughput():
    mapping = mapping_from([payload([1.0]), payload([1.0])])
    metrics = compute_metrics([payload([2.0, 4.0, 3.0]), payload([5.0, 5.0]), payload([4.0])], mapping)
    lat = metrics["latency_ms"]
    assert lat.per_repeat == [3.0, 5.0, 4.0] and lat.value == 4.0 and lat.samples == 6
    assert lat.cv == pytest.approx(float(np.std([3.0, 5.0, 4.0], ddof=1) / 4.0))
    assert metrics["throughput_ips"].per_repeat == pytest.approx([1000 / 3, 200.0, 250.0])
    assert metrics["throughput_ips"].value == pytest.approx(250.0)


def test_requires_reference_outputs():
    mapping = mapping_from([payload([1.0], cosine=1.0), payload([1.0], cosine=1.0)])
    without = compute_metrics([payload([1.0], cosine=0.9)], mapping)
    with_ref = compute_metrics([payload([1.0], cosine=0.9)], mapping, provided={"reference_outputs"})
    assert without["output_cosine"].available is False
    assert with_ref["output_cosine"].value == pytest.approx(0.9)


def test_reduce_values_rules():
    assert reduce_values([1000.0, 3000.0], {"path": "$", "reduce": "median", "scale": 0.001}) == pytest.approx(2.0)
    npu = {"path": "$", "reduce": "fraction_equal", "equals": "NPU"}
    assert reduce_values(["NPU", "NPU", "CPU", "NPU"], npu) == 0.75
    assert reduce_values([1.0, 2.0], {"path": "$", "reduce": "value"}) is None  # ambiguous: not one value
    assert reduce_values([], {"path": "$", "reduce": "median"}) is None
    assert reduce_values([True], {"path": "$", "reduce": "median"}) is None  # booleans are not numbers
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(float(np.percentile([1, 2, 3, 4], 90)))
