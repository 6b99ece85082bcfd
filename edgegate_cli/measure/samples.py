"""Per-iteration samples of a metric (SPEC §6 step 6): what a relative gate's significance test uses.

Read through the run's metric mapping, never from hard-coded payload paths, pooled over the
measurement repeats: the mapped source's numbers × scale (e.g. `$.iterations_ms` for latency_ms),
per-case scores for a `case_median_mean` metric (correctness), and 1000 / latency for throughput
derived from latency. A metric whose source reduces a single `value` per repeat (load time, peak
memory, output agreement) has no per-iteration samples, so a relative gate cannot test it.
"""

from __future__ import annotations

from .mapping import find_values

NO_SAMPLES_REDUCES = {"value", "fraction_equal"}


def has_iteration_samples(mapping: dict, metric: str) -> bool:
    """True when `mapping` reads `metric` from many samples per repeat (or derives it from such a metric)."""
    entry = (mapping.get("metrics") or {}).get(metric) or {}
    if "derive" in entry:
        return has_iteration_samples(mapping, entry["derive"]["from"])
    source = entry.get("source")
    return bool(source) and source.get("reduce") not in NO_SAMPLES_REDUCES


def iteration_samples(metric: str, payloads: list[dict], mapping: dict) -> list[float]:
    """`metric`'s per-iteration samples in its canonical unit, pooled over `payloads` (the measurement
    repeats of one device, warmup excluded); [] when the mapping gives it none or the payloads lack it."""
    if not has_iteration_samples(mapping, metric):
        return []
    entry = mapping["metrics"][metric]
    if "derive" in entry:  # reciprocal_ms_to_per_s: throughput per iteration = 1000 / latency per iteration
        return [1000.0 / v for v in iteration_samples(entry["derive"]["from"], payloads, mapping) if v > 0]
    source = entry["source"]
    out: list[float] = []
    for payload in payloads:
        for value in find_values(payload, source["path"]):
            if source["reduce"] == "case_median_mean":
                value = value.get("score") if isinstance(value, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append(float(value) * float(source.get("scale", 1.0)))
    return out
