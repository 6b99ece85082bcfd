"""Wall time of `edgegate --help` against `python -c "import typer"`, the floor any typer CLI pays.

Prints the medians and the ratio (target: ratio <= 1.5), and the same for `edgegate gc --help` (a
sub-command's help also processes the root's options, and typer imports pydantic to coerce them), twice:
- with a bytecode cache, what a pip install gives users (the cache goes to a temp PYTHONPYCACHEPREFIX;
  the venv is not touched);
- with the environment as it is (PYTHONDONTWRITEBYTECODE=1 and no __pycache__ in the venv mean every
  module is compiled on every start).
Run: `uv run python bench/help_time.py [--runs N]`. Nothing is asserted; if the ratio is over target,
see what `python -X importtime -c "from edgegate_cli.cli import main"` imports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall_times(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    """Seconds per run, after one untimed warm-up run (so both sides start with warm file caches)."""
    times = []
    for i in range(runs + 1):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        if i:
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs per command (default 21, min 15)")
    runs = max(15, parser.parse_args().runs)
    script = Path(sys.executable).parent / "edgegate"
    if not script.exists():
        script = Path(shutil.which("edgegate") or sys.exit("no `edgegate` console script next to this Python"))
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as pycache:
        base = {**os.environ, "EDGEGATE_HOME": home, "NO_COLOR": "1", "COLUMNS": "100"}
        cached = {k: v for k, v in base.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for label, env in (("with bytecode cache", {**cached, "PYTHONPYCACHEPREFIX": pycache}),
                           ("environment as is", base)):
            floor = wall_times([sys.executable, "-c", "import typer"], runs, env)
            print(f"[{label}]")
            print(f"  python -c 'import typer'  {describe(floor)}")
            for argv in (["--help"], ["gc", "--help"]):
                cli = wall_times([str(script), *argv], runs, env)
                name = " ".join(["edgegate", *argv])
                print(f"  {name:<25} {describe(cli)}  ratio {statistics.median(cli) / statistics.median(floor):.2f}x"
                      "  (target <= 1.5x)")


def describe(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:6.1f} ms (min {min(times) * 1000:5.1f}, {len(times)} runs)"

if __name__ == "__main__":
    main()
