"""Canonical metrics (SPEC §4): names, units, flake class and which direction is better.

Everything that names a metric — schemas, mappings, gates — is checked against this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    kind: Literal["latency", "throughput", "memory", "ratio", "score", "error"]
    better: Literal["lower", "higher"]
    description: str


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("latency_ms", "ms", "latency", "lower", "inference time; per repeat the median of iterations"),
    Metric("latency_p90_ms", "ms", "latency", "lower", "90th percentile of iterations pooled over repeats"),
    Metric("throughput_ips", "inferences/s", "throughput", "higher", "1000 / latency_ms, or measured"),
    Metric("first_load_ms", "ms", "latency", "lower", "model load time in a fresh process"),
    Metric("warm_load_ms", "ms", "latency", "lower", "model load time with warm caches"),
    Metric("peak_memory_mb", "MiB", "memory", "lower", "peak memory during inference"),
    Metric("npu_layer_fraction", "1", "ratio", "higher", "share of layers on the NPU"),
    Metric("ttft_ms", "ms", "latency", "lower", "GenAI: time to first token"),
    Metric("tps", "tokens/s", "throughput", "higher", "GenAI: decode tokens per second"),
    Metric("prompt_tps", "tokens/s", "throughput", "higher", "GenAI: prompt processing rate"),
    Metric("correctness", "1", "score", "higher", "GenAI: mean over cases of the per-case median score"),
    Metric("output_cosine", "1", "score", "higher", "cosine similarity of outputs to reference outputs"),
    Metric("output_max_abs_err", "abs", "error", "lower", "max absolute error of outputs vs reference"),
)}

# Pooled metrics are computed once over all measurement repeats' samples, not per repeat.
POOLED = {"latency_p90_ms"}
P90_MIN_SAMPLES = 64


def flake_threshold(metric: str, flake_policy: dict) -> float | None:
    """The CV above which `metric` is flaky under `flake_policy`, or None if no flake rule applies."""
    kind = METRICS[metric].kind
    if metric in POOLED:
        return None
    if kind == "latency":
        return float(flake_policy.get("latency_cv", 0.20))
    if kind == "throughput":
        return float(flake_policy.get("throughput_cv", 0.15))
    return None
