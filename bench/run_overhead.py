"""What `edgegate run` costs beyond the inferences it times: the quickstart on a probed home.

Interleaved, `--rounds` times each (median shown): `edgegate run examples/quickstart/pipeline.yaml` with
each repeat forked from the fork server (the default on Linux), the same with
`EDGEGATE_LOCAL_LAUNCH=process` (a new interpreter per repeat, as before the fork server), and a plain
`python -c` that imports numpy and onnxruntime and does the same work once: per repeat a session and its
`iterations` timed inferences (4 x 200 = 800 for the quickstart). For each run, the recorded inference
time is the sum of every repeat's `iterations_ms` (warmup included), read back from its stored payloads.
Overhead = (wall - recorded inference) / wall (target <= 50 %). All with a bytecode cache.
`--baseline-script PATH` also times another EdgeGate's console script (e.g. a checkout of main) on a home
of its own, in the same rounds. Run: `uv run python bench/run_overhead.py [--rounds 7]`. Nothing is asserted.
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

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "examples" / "quickstart" / "pipeline.yaml"
MODEL = REPO / "examples" / "quickstart" / "model.onnx"
PLAIN = """
import sys, time
import numpy as np, onnxruntime as ort
model, repeats, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
for _ in range(repeats):
    s = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(np.float32) for i in s.get_inputs()}
    names = [o.name for o in s.get_outputs()]
    for _ in range(iterations):
        s.run(names, feeds)
"""


def run_once(script: Path, env: dict[str, str], home: Path) -> tuple[float, float, set[str]]:
    """(wall seconds, recorded inference seconds, launch kinds) of one quickstart run."""
    t = time.perf_counter()
    proc = subprocess.run([str(script), "run", str(PIPELINE), "--json"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    outcome = json.loads(proc.stdout)
    shown = subprocess.run([str(script), "runs", "show", outcome["run_id"], "--json"], env=env, check=True,
                           capture_output=True, text=True)
    inference, launches = 0.0, set()
    for p in json.loads(shown.stdout)["payloads"]:
        data = json.loads((home / "cas" / "sha256" / p["sha256"][:2] / p["sha256"][2:]).read_bytes())
        inference += sum(data["iterations_ms"]) / 1000
        launches.add(data["environment"].get("launch", "process"))
    return wall, inference, launches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline-script", type=Path, help="another `edgegate` console script to time too")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "edgegate"
    if not script.exists():
        script = Path(shutil.which("edgegate") or sys.exit("no `edgegate` console script next to this Python"))
    with tempfile.TemporaryDirectory(prefix="edgegate-bench-") as tmp:
        home = Path(tmp) / "home"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "EDGEGATE_LOCAL_LAUNCH")}
        env.update(EDGEGATE_HOME=str(home), NO_COLOR="1", PYTHONPYCACHEPREFIX=str(Path(tmp) / "pyc"))
        subprocess.run([str(script), "run", str(PIPELINE)], env=env, capture_output=True)  # probes the home
        process_env = {**env, "EDGEGATE_LOCAL_LAUNCH": "process"}
        sides = {"fork": (script, env, home), "process": (script, process_env, home)}
        if args.baseline_script:
            base_home = Path(tmp) / "baseline-home"
            base_env = {**env, "EDGEGATE_HOME": str(base_home)}
            subprocess.run([str(args.baseline_script), "run", str(PIPELINE)], env=base_env, capture_output=True)
            sides["baseline"] = (args.baseline_script, base_env, base_home)
        load_before = os.getloadavg()[0]
        results: dict[str, list] = {**{side: [] for side in sides}, "plain": []}
        for _ in range(args.rounds):
            for side, (side_script, side_env, side_home) in sides.items():
                results[side].append(run_once(side_script, side_env, side_home))
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", PLAIN, str(MODEL), "4", "200"], env=env, check=True)
            results["plain"].append(time.perf_counter() - t)
        load_after = os.getloadavg()[0]
    plain = statistics.median(results["plain"])
    print(f"quickstart on a probed home, {args.rounds} interleaved rounds, bytecode cache; "
          f"load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"  plain process (import numpy+onnxruntime, 4 sessions x 200 inferences): {plain:.3f} s")
    for label in (side for side in results if side != "plain"):
        wall = statistics.median(r[0] for r in results[label])
        inference = statistics.median(r[1] for r in results[label])
        overhead = statistics.median((r[0] - r[1]) / r[0] for r in results[label])
        launches = sorted(set().union(*(r[2] for r in results[label])))
        print(f"  edgegate run, repeats by {label:<8} wall {wall:.3f} s, recorded inference {inference:.3f} s, "
              f"overhead {overhead:.1%} (target <= 50 %), {wall / plain:.2f}x the plain process "
              f"[payloads: {', '.join(launches)}]")


if __name__ == "__main__":
    main()
