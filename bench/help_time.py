"""Wall time of `edgegate --help` against `python -c "import typer"`, the floor any typer CLI pays.

Prints both medians and their ratio (target: ratio <= 1.5) three times:
- with a bytecode cache, what a pip install gives users (the cache goes to a temp PYTHONPYCACHEPREFIX;
  the venv is not touched);
- with the environment as it is (PYTHONDONTWRITEBYTECODE=1 and no __pycache__ in the venv mean every
  module is compiled on every start);
- with a bytecode cache and TYPER_USE_RICH=0: click's plain help, what `rich_markup_mode=None` would
  give, the number to weigh against rich's nicer help.
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
                           ("environment as is", base),
                           ("with bytecode cache, TYPER_USE_RICH=0",
                            {**cached, "PYTHONPYCACHEPREFIX": pycache, "TYPER_USE_RICH": "0"})):
            cli = wall_times([str(script), "--help"], runs, env)
            floor = wall_times([sys.executable, "-c", "import typer"], runs, env)
            report(label, cli, floor)


def report(label: str, cli: list[float], floor: list[float]) -> None:
    cli_ms, floor_ms = statistics.median(cli) * 1000, statistics.median(floor) * 1000
    print(f"[{label}]")
    print(f"  edgegate --help           median {cli_ms:7.1f} ms  (min {min(cli) * 1000:.1f}, {len(cli)} runs)")
    print(f"  python -c 'import typer'  median {floor_ms:7.1f} ms  (min {min(floor) * 1000:.1f}, {len(floor)} runs)")
    print(f"  ratio {cli_ms / floor_ms:.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
