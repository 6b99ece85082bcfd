"""Decision quality of paired measurement and NOISY_HOST (issue 11), from bench/data/paired_noise.json.

Sources: per condition (quiet, or a CPU hog on every core) and model, the recorded paired runs of an unchanged
model against its own baseline (bench/paired_record.py). A trial draws `repeats` (baseline, candidate) repeat
pairs (each pair adjacent in time: B then A in one run, so drift between runs cancels inside it), keeps each
repeat's first `iterations` iterations, scales the candidate's by 1 + size, and decides as `run` does on one
device: NOISY_HOST (gating.noise, on the repeats' recorded CPU records) before FLAKY_METRIC (CV of the
candidate's per-repeat medians > 0.20) before the relative rule (gating.relative.evaluate_relative: the median
of per-repeat medians, or the pooled p25, worse by > 10 % and one-sided Mann-Whitney U p < 0.01).

`recorded` trials take the baseline's repeats from one run and the candidate's from another (what comparing with
a stored baseline does); `recorded, quiet baseline` takes the baseline from a quiet run and the candidate from a
run beside the hog: a baseline recorded on a quiet machine and a candidate measured on a busy CI runner.
"""

from __future__ import annotations

import json
from pathlib import Path

SIZES = (0.0, 0.05, 0.10, 0.15, 0.25)
DATA = Path(__file__).resolve().parent / "data"

POLICIES = {
    "recorded 3x50": {"mode": "recorded", "statistic": "median", "repeats": 3, "iterations": 50},
    "paired median 3x50": {"mode": "paired", "statistic": "median", "repeats": 3, "iterations": 50},
    "paired p25 3x50": {"mode": "paired", "statistic": "p25", "repeats": 3, "iterations": 50},
    "paired median 5x50": {"mode": "paired", "statistic": "median", "repeats": 5, "iterations": 50},
    "paired p25 5x50": {"mode": "paired", "statistic": "p25", "repeats": 5, "iterations": 50},
    "paired median 5x100": {"mode": "paired", "statistic": "median", "repeats": 5, "iterations": 100},
    "paired p25 5x100": {"mode": "paired", "statistic": "p25", "repeats": 5, "iterations": 100},
    "paired p25 5x200": {"mode": "paired", "statistic": "p25", "repeats": 5, "iterations": 200},
    # The flake rule on the per-pair ratios (candidate repeat median / its baseline partner's) instead of the
    # candidate's per-repeat medians: a slowdown both members of a pair saw is the host's, not a flaky model.
    "paired median 3x50, pair CV": {"mode": "paired", "statistic": "median", "repeats": 3, "iterations": 50,
                                    "flake": "pairs"},
    "paired p25 3x50, pair CV": {"mode": "paired", "statistic": "p25", "repeats": 3, "iterations": 50,
                                 "flake": "pairs"},
    "paired p25 5x50, pair CV": {"mode": "paired", "statistic": "p25", "repeats": 5, "iterations": 50,
                                 "flake": "pairs"},
    "paired p25 5x100, pair CV": {"mode": "paired", "statistic": "p25", "repeats": 5, "iterations": 100,
                                  "flake": "pairs"},
}


class Source:
    """One model under one condition: its recorded runs, as arrays (runs x 5 repeats x iterations)."""

    def __init__(self, condition: str, model: str, entry: dict, unit_ms: float, quiet: dict | None = None):
        import numpy as np

        self.condition, self.model, self.entry = condition, model, entry
        runs = entry["runs"]
        self.a = np.asarray([[r["ms"] for r in run["A"]] for run in runs], dtype=float) * unit_ms
        self.b = np.asarray([[r["ms"] for r in run["B"]] for run in runs], dtype=float) * unit_ms
        self.off_a = np.asarray([[r["off"] if r["off"] is not None else np.nan for r in run["A"]] for run in runs])
        self.off_b = np.asarray([[r["off"] if r["off"] is not None else np.nan for r in run["B"]] for run in runs])
        self.quiet = quiet  # the quiet condition's Source of the same model, for "recorded, quiet baseline"
        self.loads = [v for run in runs for v in run["load_1m"]]

    @property
    def iterations(self) -> int:
        return self.a.shape[2]

    def draw(self, rng, mode: str, repeats: int, iterations: int):
        """(baseline, candidate, baseline off-CPU, candidate off-CPU) for one trial."""
        n_runs, n_rep = self.a.shape[:2]
        if mode == "paired":
            flat = rng.choice(n_runs * n_rep, repeats, replace=False)
            r, k = flat // n_rep, flat % n_rep
            return self.b[r, k, :iterations], self.a[r, k, :iterations], self.off_b[r, k], self.off_a[r, k]
        base_src = self.quiet if mode == "recorded-quiet" else self
        i = int(rng.integers(base_src.a.shape[0]))
        j = int(rng.integers(n_runs))
        while base_src is self and j == i:
            j = int(rng.integers(n_runs))
        kb, ka = rng.choice(n_rep, repeats, replace=False), rng.choice(n_rep, repeats, replace=False)
        return (base_src.a[i, kb, :iterations], self.a[j, ka, :iterations], base_src.off_a[i, kb],
                self.off_a[j, ka])


def _payloads(offs) -> list[dict]:
    import math

    return [{"cpu": {"off_cpu_median": None if math.isnan(o) else float(o)}} for o in offs]


def decide(base, cand, off_b, off_a, policy: dict, size: float, noisy_policy) -> str:
    """fail | pass | flaky | noisy: what `run` concludes on one device (see the module doc)."""
    import numpy as np

    from edgegate_cli.gating.noise import host_noise, noisy_reason
    from edgegate_cli.gating.relative import evaluate_relative

    cand = cand * (1 + size)
    paired = policy["mode"] == "paired"
    if noisy_reason(host_noise(_payloads(off_a), noisy_policy),
                    host_noise(_payloads(off_b), noisy_policy) if paired else None):
        return "noisy"
    medians = np.median(cand, axis=1)
    spread = medians / np.median(base, axis=1) if policy.get("flake") == "pairs" else medians
    flaky = len(spread) > 1 and spread.std(ddof=1) / spread.mean() > 0.20
    if flaky and not paired:
        return "flaky"
    r = evaluate_relative("latency_ms", cand.ravel(), base.ravel(), 10.0, statistic=policy["statistic"],
                          candidate_median=float(np.median(medians)),
                          baseline_median=float(np.median(np.median(base, axis=1))))
    return r.status  # as gating.evaluate: the CV flake rule does not apply to a paired comparison


def simulate(source: Source, policy: dict, trials: int, seed: int, noisy_policy, mode: str | None = None):
    import numpy as np

    if policy["iterations"] > source.iterations or (mode == "recorded-quiet" and source.quiet is None):
        return None
    rng = np.random.default_rng(seed)
    counts = {s: {"fail": 0, "pass": 0, "flaky": 0, "noisy": 0} for s in SIZES}
    for _ in range(trials):  # the same draws for every size (common random numbers)
        drawn = source.draw(rng, mode or policy["mode"], policy["repeats"], policy["iterations"])
        for size in SIZES:
            counts[size][decide(*drawn, policy, size, noisy_policy)] += 1
    return {s: {k: v / trials for k, v in c.items()} for s, c in counts.items()}


def load_sources(path: Path = DATA / "paired_noise.json") -> list[Source]:
    doc = json.loads(path.read_text())
    unit = doc["unit_ms"]
    quiet = {m: Source("quiet", m, e, unit) for m, e in doc["conditions"].get("quiet", {}).get("models", {}).items()}
    sources = list(quiet.values())
    for condition, entry in sorted(doc["conditions"].items()):
        if condition != "quiet":
            sources += [Source(condition, m, e, unit, quiet.get(m)) for m, e in entry["models"].items()]
    return sources


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _row(name: str, result: dict | None) -> list[str]:
    if result is None:
        return [name] + ["n/a"] * 7
    zero = result[0.0]
    verdict = []
    if zero["fail"] > 0.01:
        verdict.append("false alarms")
    if result[0.15]["fail"] < 0.95:
        verdict.append("15 % detection")
    if zero["flaky"] + zero["noisy"] > 0.02:
        verdict.append("FLAKY/NOISY")
    return [name, _pct(zero["fail"]), *(_pct(result[s]["fail"]) for s in SIZES[1:]),
            _pct(zero["flaky"] + zero["noisy"]) + f" ({_pct(zero['noisy'])})",
            "targets met" if not verdict else "MISSED: " + ", ".join(verdict)]


def print_table(title: str, rows: list[list[str]]) -> None:
    header = ["source", "false alarm 0%", "detect 5%", "detect 10%", "detect 15%", "detect 25%",
              "FLAKY+NOISY at 0% (NOISY)", "verdict"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def describe_source(s: Source) -> str:
    loads = s.loads
    return (f"{s.condition:5} {s.model} ({len(s.entry['runs'])} runs, load {min(loads):.2f}-{max(loads):.2f})")


def report(trials: int, seed: int, policies: list[str] | None = None) -> None:
    """Print one table per policy (rows: condition x model), the recorded-quiet-baseline rows, and run times."""
    from edgegate_cli.spec.pipeline import NoisyHostPolicy

    sources = load_sources()
    noisy_policy = NoisyHostPolicy()
    print(f"\nPaired measurement and NOISY_HOST (issue 11): {trials} trials per size, seed {seed}; NOISY_HOST policy: "
          f"starved above {noisy_policy.starved_off_cpu:g} off-CPU, from {noisy_policy.max_starved_share:g} of "
          "repeats. Recorded runs:")
    for s in sources:
        print(f"  {describe_source(s)}")
    for key in policies or list(POLICIES):
        policy = POLICIES[key]
        rows = [_row(describe_source(s), simulate(s, policy, trials, seed, noisy_policy)) for s in sources]
        if policy["mode"] == "recorded":
            rows += [_row(f"{describe_source(s)} vs a quiet baseline",
                          simulate(s, policy, trials, seed, noisy_policy, mode="recorded-quiet"))
                     for s in sources if s.condition != "quiet"]
        print_table(f"Policy {key}", rows)
    print("\nRun time (s, wall, whole `edgegate run`): unpaired first run vs paired runs (mean)")
    for s in sources:
        paired = [r["run_s"] for r in s.entry["runs"]]
        print(f"  {describe_source(s)}: unpaired {s.entry['unpaired_run_s']:.1f} s, paired "
              f"{sum(paired) / len(paired):.1f} s")
