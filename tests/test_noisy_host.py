"""Starved repeats and NOISY_HOST (SPEC §6 item 7) as pure functions of payloads and policy, and the worker's
CPU-time record they read."""

from __future__ import annotations

from edgegate_cli.backends.local.worker import cpu_share
from edgegate_cli.gating.evaluate import BaselineEvidence, baseline_key, verdict_from_payloads
from edgegate_cli.gating.noise import describe, host_noise, is_timing
from edgegate_cli.spec.pipeline import Gate, NoisyHostPolicy, RunPolicy

MAPPING = {"metrics": {
    "latency_ms": {"unit": "ms", "available": True, "stable": True,
                   "source": {"path": "$.iterations_ms", "reduce": "median", "scale": 1.0}},
    "peak_memory_mb": {"unit": "MiB", "available": True, "stable": True,
                       "source": {"path": "$.peak_rss_mb", "reduce": "value", "scale": 1.0}},
}}
DEVICE = "local:cpu"


def payload(off: float | None, level: float = 1.0, load=(0.5, 0.7)) -> dict:
    """One repeat: 20 iterations around `level` ms, and (unless `off` is None) its CPU record."""
    p = {"iterations_ms": [level * (1 + 0.001 * i) for i in range(20)], "peak_rss_mb": 100.0}
    if off is not None:
        p["cpu"] = {"off_cpu_median": off, "load_1m": list(load), "threads": 1}
    return p


def test_worker_cpu_share_takes_the_median_iteration():
    """The median iteration's off-CPU share decides: a few preempted iterations do not starve a repeat."""
    wall = [1.0] * 7 + [10.0] * 3  # three iterations stretched tenfold by a preemption
    cpu = [1.0] * 10
    out = cpu_share(wall, cpu, 1, 0.1, [1.5, 1.7])
    assert out["off_cpu_median"] == 0.0 and out["starved"] is False and out["load_1m"] == [1.5, 1.7]
    out = cpu_share([3.0] * 10, [1.0] * 10, 1, 0.1, [None, None])  # every iteration got a third of the CPU
    assert abs(out["off_cpu_median"] - 2 / 3) < 1e-9 and out["starved"] is True
    assert cpu_share([2.0], [3.0], 2, None, [None, None])["off_cpu_median"] == 0.25  # two threads: cpu / (2 wall)
    assert "starved" not in cpu_share([1.0], [1.0], 1, None, [None, None])


def test_host_noise_counts_starved_repeats_against_the_policy():
    policy = NoisyHostPolicy(starved_off_cpu=0.10, max_starved_share=0.5)
    noise = host_noise([payload(0.0), payload(0.4), payload(0.11), payload(None)], policy)
    assert (noise.repeats, noise.assessed, noise.starved, noise.noisy) == (4, 3, 2, True)
    assert describe(noise, "the candidate's") == (
        "2 of 3 of the candidate's repeats were starved of CPU (median iteration off the CPU: 0 %, 40 %, 11 %, —; "
        "starved above 10 %, NOISY_HOST from 50 % of repeats); host load average 0.50-0.70")
    assert not host_noise([payload(0.0), payload(0.4), payload(0.0)], policy).noisy  # 1 of 3
    assert not host_noise([payload(None)] * 3, policy).noisy  # nothing to assess (old runs, AI Hub)
    assert [is_timing(m) for m in ("latency_ms", "throughput_ips", "ttft_ms", "peak_memory_mb", "correctness")] == [
        True, True, True, False, False]


def _verdict(payloads, gates, baselines=None, policy=None):
    return verdict_from_payloads({DEVICE: payloads}, MAPPING, gates, policy or RunPolicy(), [DEVICE], set(),
                                 baselines=baselines)[1]


def test_a_starved_run_ends_noisy_host_for_timing_gates_only():
    """Two of three repeats starved: the latency gate is NOISY_HOST (the run's error, with the numbers), the
    memory gate still passes; an optional latency gate is skipped instead; the same payloads fed well pass."""
    starved = [payload(0.5), payload(0.0), payload(0.6)]
    gates = [Gate(metric="latency_ms", op="<=", value=5), Gate(metric="peak_memory_mb", op="<", value=1000)]
    ev = _verdict(starved, gates)
    assert (ev.verdict, ev.error_code) == ("error", "NOISY_HOST")
    assert ev.error_detail.startswith("latency_ms <= 5 on local:cpu: NOISY_HOST: 2 of 3 of the candidate's repeats "
                                      "were starved of CPU (median iteration off the CPU: 50 %, 0 %, 60 %")
    latency, memory = ev.gates
    assert (latency.status, latency.code, latency.host["starved"]) == ("error", "NOISY_HOST", 2)
    assert (memory.status, memory.host) == ("pass", None)
    optional = _verdict(starved, [Gate(metric="latency_ms", op="<=", value=5, required=False)])
    assert (optional.verdict, optional.gates[0].status, optional.gates[0].code) == ("passed", "skipped", "NOISY")
    assert _verdict([payload(0.0)] * 3, gates[:1]).verdict == "passed"
    lenient = RunPolicy(noisy_host=NoisyHostPolicy(starved_off_cpu=0.7))
    assert _verdict(starved, gates[:1], policy=lenient).verdict == "passed"


def test_paired_baseline_repeats_count_too():
    """A paired relative gate is NOISY_HOST when the baseline's paired repeats were starved, though the
    candidate's were not; against recorded samples only the candidate's repeats count."""
    gate = Gate(metric="latency_ms", baseline="last-passed", max_regression_pct=10)
    evidence = BaselineEvidence(source="last-passed", run_id="r1", payloads=[payload(None)] * 3, mapping=MAPPING,
                                mode="paired", paired_reason="measured again",
                                paired_payloads=[payload(0.3), payload(0.3), payload(0.0)])
    key = baseline_key(gate, DEVICE)
    ev = _verdict([payload(0.0)] * 3, [gate], {key: evidence})
    assert (ev.verdict, ev.gates[0].code) == ("error", "NOISY_HOST")
    assert "2 of 3 of the paired baseline's repeats were starved" in ev.gates[0].reason
    recorded = Gate(metric="latency_ms", baseline="last-passed", max_regression_pct=10, baseline_mode="recorded")
    ev = _verdict([payload(0.0)] * 3, [recorded], {key: evidence})
    assert (ev.verdict, ev.gates[0].baseline_mode) == ("passed", "recorded")
