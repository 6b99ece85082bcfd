"""The store's commands at scale: `cas ls`, `status`, `gc --dry-run` and `cas verify` on homes of
10 to 100,000 blobs (a quarter as many runs, built by `scale_home.py`), time and peak RSS.

Each command runs as the console script with a bytecode cache, stdout to a pipe that is drained (not a
terminal: `cas ls` prints plain rows), `--rounds` times per home (median time, max peak RSS). Peak RSS is
the child's `ru_maxrss` from wait4; this driver imports nothing heavy (homes are built in a subprocess), and
since Linux carries a parent's peak RSS into an exec'd child's ru_maxrss, the driver's own ~15 MB is a floor
under every figure. Targets at 100,000 blobs: `cas ls` <= 5 s and <= 100 MiB; `status`, `gc --dry-run` <= 1 s.
Run: `uv run python bench/cas_scale.py [--blobs 10,1000,10000,100000] [--rounds 3]`. Nothing is asserted.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_home import build_in_subprocess  # noqa: E402

COMMANDS = {"cas ls": ["cas", "ls"], "cas ls --json": ["cas", "ls", "--json"], "status": ["status"],
            "gc --dry-run": ["gc", "--dry-run"], "cas verify": ["cas", "verify"]}


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, bytes printed) of one run; stdout is read and counted, not kept."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    printed = 0
    while chunk := proc.stdout.read(1 << 16):
        printed += len(chunk)
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024, printed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", default="10,1000,10000,100000", help="comma-separated blob counts")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    script = Path(sys.executable).parent / "edgegate"
    if not script.exists():
        script = Path(shutil.which("edgegate") or sys.exit("no `edgegate` console script next to this Python"))
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {args.rounds} rounds per command "
          "(median time, max peak RSS)")
    print(f"  {'blobs':>7} {'runs':>6}  {'command':<14} {'time':>8} {'peak RSS':>10} {'stdout':>10}")
    for count in (int(c) for c in args.blobs.split(",")):
        with tempfile.TemporaryDirectory(prefix="edgegate-bench-") as tmp:
            figures = build_in_subprocess(Path(tmp) / "home", max(1, count // 4))
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env.update(EDGEGATE_HOME=figures["home"], NO_COLOR="1", PYTHONPYCACHEPREFIX=str(Path(tmp) / "pyc"))
            measure([str(script), "--help"], env)  # compile the bytecode once
            for label, argv in COMMANDS.items():
                runs = [measure([str(script), *argv], env) for _ in range(args.rounds)]
                seconds = statistics.median(r[0] for r in runs)
                rss = max(r[1] for r in runs)
                print(f"  {figures['blobs']:>7,} {figures['runs']:>6,}  {label:<14} {seconds:7.2f}s {rss:8.1f} MiB "
                      f"{runs[0][2] / 1e6:8.1f} MB", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
