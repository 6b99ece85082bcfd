"""Starved repeats and NOISY_HOST (SPEC §6 item 7): when a run's timings measure the host, not the model.

A backend that shares its host with other processes (the local backend) writes, per repeat, a `cpu` block
beside the iteration times: the share of each timed iteration's wall time its worker spent waiting for the
CPU, summarised as `off_cpu_median` (the median iteration's share), and the host's 1-minute load average.
A repeat is **starved** when `off_cpu_median > starved_off_cpu`: its median iteration was stretched by
another process holding the CPU, so the median no longer measures the model. A gate on a timing metric
(latency, throughput) whose repeats are starved in at least `max_starved_share` ends in NOISY_HOST instead
of passing or failing on numbers that mean nothing; for a paired relative gate the baseline's paired
repeats count the same way. Payloads without the block (older runs, AI Hub's dedicated devices) are not
assessed. Everything here is pure: the same payloads and policy give the same answer (`gate check`).
"""

from __future__ import annotations

from pydantic import BaseModel

from ..measure.metrics import METRICS
from ..spec.pipeline import NoisyHostPolicy

TIMING_KINDS = ("latency", "throughput")


class HostNoise(BaseModel):
    """The CPU starvation of one side's measurement repeats on one device."""

    repeats: int  # measurement repeats
    assessed: int  # of them, repeats whose payload has a CPU record
    starved: int
    off_cpu: list[float | None]  # per repeat: the median iteration's share of wall time off the CPU
    load_1m: list[list[float | None]]  # per repeat: the host's 1-minute load average before and after
    starved_off_cpu: float
    max_starved_share: float

    @property
    def noisy(self) -> bool:
        return self.assessed > 0 and self.starved / self.assessed >= self.max_starved_share

    def summary(self) -> dict:
        return {"repeats": self.repeats, "assessed": self.assessed, "starved": self.starved,
                "off_cpu": self.off_cpu, "load_1m": self.load_1m, "starved_off_cpu": self.starved_off_cpu,
                "max_starved_share": self.max_starved_share}


def is_timing(metric: str) -> bool:
    """A metric that another process holding the CPU distorts: latencies and throughputs."""
    return metric in METRICS and METRICS[metric].kind in TIMING_KINDS


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def host_noise(payloads: list[dict], policy: NoisyHostPolicy) -> HostNoise:
    """How starved `payloads` (one device's measurement repeats) were, under `policy`'s thresholds."""
    off, loads = [], []
    for p in payloads:
        cpu = p.get("cpu") if isinstance(p.get("cpu"), dict) else {}
        off.append(_number(cpu.get("off_cpu_median")))
        load = cpu.get("load_1m") if isinstance(cpu.get("load_1m"), list) else []
        loads.append([_number(v) for v in load])
    assessed = [v for v in off if v is not None]
    return HostNoise(repeats=len(payloads), assessed=len(assessed),
                     starved=sum(1 for v in assessed if v > policy.starved_off_cpu), off_cpu=off, load_1m=loads,
                     starved_off_cpu=policy.starved_off_cpu, max_starved_share=policy.max_starved_share)


def describe(noise: HostNoise, whose: str) -> str:
    """One line with the numbers: which repeats were starved, by how much, under what load."""
    shares = ", ".join("—" if v is None else f"{100 * v:.0f} %" for v in noise.off_cpu)
    loads = [v for pair in noise.load_1m for v in pair if v is not None]
    load = f"; host load average {min(loads):.2f}-{max(loads):.2f}" if loads else ""
    return (f"{noise.starved} of {noise.assessed} of {whose} repeats were starved of CPU (median iteration off "
            f"the CPU: {shares}; starved above {100 * noise.starved_off_cpu:.0f} %, NOISY_HOST from "
            f"{100 * noise.max_starved_share:.0f} % of repeats){load}")


def noisy_reason(candidate: HostNoise | None, baseline: HostNoise | None) -> str | None:
    """Why a timing gate cannot be decided on this host, or None when its repeats were fed well enough."""
    parts = [describe(n, whose) for n, whose in ((candidate, "the candidate's"), (baseline, "the paired baseline's"))
             if n is not None and n.noisy]
    if not parts:
        return None
    return "; ".join(parts) + ": the timings measure the host, not the model"
