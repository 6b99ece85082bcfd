"""Health on the device: Prometheus metrics (prometheus-client, one registry per agent, no globals),
per-version counts and latency for /v1/status, and output agreement with a release's reference.

Metrics (all `edgegate_agent_*`): inferences_total, inference_errors_total and
inference_latency_seconds (histogram), each by {name, version}; swaps_total by {kind};
refusals_total by {code}; activation_seconds (deploy accepted -> serving); active_release_info;
reference_cosine and reference_max_abs_err by {name, version}.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WINDOW = 2048  # latencies kept per version for the status percentiles


class Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["name", "version"]
        self.inferences = Counter("edgegate_agent_inferences", "Inferences served", labels, registry=self.registry)
        self.errors = Counter("edgegate_agent_inference_errors", "Inferences the model failed", labels,
                              registry=self.registry)
        self.latency = Histogram("edgegate_agent_inference_latency_seconds", "Inference latency", labels,
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.swaps = Counter("edgegate_agent_swaps", "Models swapped in", ["kind"], registry=self.registry)
        self.refusals = Counter("edgegate_agent_refusals", "Requests refused, by code", ["code"],
                                registry=self.registry)
        self.activation = Histogram("edgegate_agent_activation_seconds", "Deploy accepted to serving",
                                    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300), registry=self.registry)
        self.active = Gauge("edgegate_agent_active_release_info", "The release serving now (value 1)",
                            ["name", "version", "sha256"], registry=self.registry)
        self.cosine = Gauge("edgegate_agent_reference_cosine", "Worst cosine similarity to the reference outputs",
                            labels, registry=self.registry)
        self.max_err = Gauge("edgegate_agent_reference_max_abs_err", "Largest absolute error vs the reference",
                             labels, registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def set_active(self, label: dict | None) -> None:
        self.active.clear()
        if label:
            self.active.labels(label["name"], label["version"], label["sha256"]).set(1)


class VersionHealth:
    """Counts, errors and a window of latencies per (name, version), for /v1/status."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_version: dict[tuple[str, str], dict] = {}

    def _entry(self, label: dict) -> dict:
        key = (label["name"], label["version"])
        if key not in self._by_version:
            self._by_version[key] = {**label, "inferences": 0, "errors": 0, "window": deque(maxlen=WINDOW),
                                     "reference": None}
        return self._by_version[key]

    def observe(self, label: dict, latency_s: float | None) -> None:
        """One inference: its latency, or None when the model failed."""
        with self._lock:
            entry = self._entry(label)
            if latency_s is None:
                entry["errors"] += 1
            else:
                entry["inferences"] += 1
                entry["window"].append(latency_s * 1000)

    def set_reference(self, label: dict, result: dict) -> None:
        with self._lock:
            self._entry(label)["reference"] = result

    def report(self) -> list[dict]:
        with self._lock:
            entries = [dict(e, window=sorted(e["window"])) for e in self._by_version.values()]
        out = []
        for e in entries:
            window, total = e.pop("window"), e["inferences"] + e["errors"]
            e["error_rate"] = e["errors"] / total if total else None
            e["latency_ms"] = {q: _quantile(window, p) for q, p in (("p50", .5), ("p95", .95), ("p99", .99))}
            e["latency_ms"]["max"] = window[-1] if window else None
            out.append(e)
        return sorted(out, key=lambda e: (e["name"], e["version"]))


def _quantile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def reference_agreement(session, inputs_path: Path, outputs_path: Path) -> dict:
    """Run the release's reference inputs and compare with its reference outputs, by output name.

    Returns {"cosine": worst cosine similarity, "max_abs_err", "compared": [names]} — the measure
    `run` uses — or {"error": why} when the reference cannot be run or compared.
    """
    import numpy as np

    try:
        with np.load(inputs_path) as data:
            feeds = {name: data[name] for name in data.files}
        with np.load(outputs_path) as data:
            expected = {name: data[name] for name in data.files}
        names = [o.name for o in session.get_outputs()]
        actual = dict(zip(names, session.run(names, feeds), strict=True))
    except Exception as exc:  # a bad .npz or inputs the model refuses: reported, never fatal
        return {"error": " ".join(str(exc).split())[:300]}
    cosines, errors, compared = [], [], []
    for name in sorted(set(expected) & set(actual)):
        a = np.asarray(actual[name], np.float64).ravel()
        b = np.asarray(expected[name], np.float64).ravel()
        if a.shape != b.shape:
            return {"error": f"output {name} has {a.size} values, the reference {b.size}"}
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        cosines.append(float(a @ b) / denom if denom else float(np.array_equal(a, b)))
        errors.append(float(np.max(np.abs(a - b))) if a.size else 0.0)
        compared.append(name)
    if not compared:
        return {"error": f"no reference output is named like a model output ({', '.join(names)})"}
    return {"cosine": min(cosines), "max_abs_err": max(errors), "compared": compared}
