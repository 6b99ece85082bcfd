"""Start-up of everyday commands against `python -c "import typer"`, the floor any typer CLI pays.

On a home with N runs (default 25,000 runs and ~100,000 blobs, built by `scale_home.py`; `--home DIR`
reuses one), each command runs as the console script with a bytecode cache (what a pip install gives
users; the cache goes to a temp PYTHONPYCACHEPREFIX, the venv is not touched), interleaved with the typer
floor (floor, cmd1, cmd2, …, floor, cmd1, …) so load on a shared machine hits all alike; medians of
`--runs` rounds (default 21) after one untimed round. Prints each median and its ratio to the floor
(targets: read commands <= 2.5x, `--help` <= 1.5x), and the load average before and after.
`--baseline-script PATH --baseline-home DIR` also times another EdgeGate (e.g. a checkout of main; its own
home, since a newer schema is refused), interleaved in the same rounds, for a before/after under the same
load. Run: `uv run python bench/startup.py [--runs N] [--home DIR] [--scale-runs N]`. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_home import build_in_subprocess  # noqa: E402


def commands(run_id: str) -> dict[str, tuple[list[str], float]]:
    """label -> (argv after `edgegate`, target ratio)."""
    return {
        "--help": (["--help"], 1.5), "gc --help": (["gc", "--help"], 1.5),
        "runs list --help": (["runs", "list", "--help"], 1.5),
        "runs list": (["runs", "list"], 2.5), "runs list --json": (["runs", "list", "--json"], 2.5),
        "runs show RUN": (["runs", "show", run_id], 2.5),
        "runs show RUN --json": (["runs", "show", run_id, "--json"], 2.5),
        "status": (["status"], 2.5), "status --json": (["status", "--json"], 2.5),
        "gate explain RUN": (["gate", "explain", run_id], 2.5),
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed rounds (default 21)")
    parser.add_argument("--home", type=Path, help="an existing home to read (default: build one)")
    parser.add_argument("--scale-runs", type=int, default=25_000, help="runs in the home built (default 25000)")
    parser.add_argument("--baseline-script", type=Path, help="another `edgegate` console script to time too")
    parser.add_argument("--baseline-home", type=Path, help="the home the baseline script reads")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "edgegate"
    if not script.exists():
        script = Path(shutil.which("edgegate") or sys.exit("no `edgegate` console script next to this Python"))
    with tempfile.TemporaryDirectory(prefix="edgegate-bench-") as tmp:
        if args.home:
            home = args.home
            figures = {"home": str(home)}
        else:
            home = Path(tmp) / "home"
            print(f"building a home with {args.scale_runs:,} runs ...", flush=True)
            figures = build_in_subprocess(home, args.scale_runs)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(EDGEGATE_HOME=str(home), NO_COLOR="1", COLUMNS="100", PYTHONPYCACHEPREFIX=str(Path(tmp) / "pyc"))
        listing = subprocess.run([str(script), "runs", "list", "--json", "--limit", "1"], env=env, check=True,
                                 capture_output=True, text=True)
        run_id = json.loads(listing.stdout)["runs"][0]["id"]
        cmds = commands(run_id)
        jobs = [("import typer", [sys.executable, "-c", "import typer"], env)]
        jobs += [(label, [str(script), *a], env) for label, (a, _) in cmds.items()]
        if args.baseline_script:
            base_env = {**env, "EDGEGATE_HOME": str(args.baseline_home)}
            listing = subprocess.run([str(args.baseline_script), "runs", "list", "--json", "--limit", "1"],
                                     env=base_env, check=True, capture_output=True, text=True)
            base_cmds = commands(json.loads(listing.stdout)["runs"][0]["id"])
            jobs += [("baseline " + label, [str(args.baseline_script), *a], base_env)
                     for label, (a, _) in base_cmds.items()]
        load_before = os.getloadavg()
        samples: dict[str, list[float]] = {label: [] for label, _, _ in jobs}
        for i in range(args.runs + 1):
            for label, argv, job_env in jobs:
                seconds = timed(argv, job_env)
                if i:
                    samples[label].append(seconds)
        load_after = os.getloadavg()
    floor = statistics.median(samples["import typer"])
    print(f"home: {figures.get('runs', '?')} runs, {figures.get('blobs', '?')} blobs; {args.runs} interleaved "
          f"rounds, bytecode cache; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    floor_label = 'python -c "import typer"'
    print(f"  {floor_label:<30} median {floor * 1000:6.1f} ms")
    for label, (_, target) in cmds.items():
        median = statistics.median(samples[label])
        line = f"  {'edgegate ' + label:<30} median {median * 1000:6.1f} ms  ratio {median / floor:4.2f}x"
        if args.baseline_script:
            base = statistics.median(samples["baseline " + label])
            line += f"  (baseline {base * 1000:6.1f} ms, {base / floor:4.2f}x)"
        print(line + f"  target <= {target}x")


if __name__ == "__main__":
    main()
