"""Local backend latency vs a plain in-process onnxruntime loop on the same model and inputs.

Prints both medians and their ratio (target: within ±5 %), for repeats forked from the fork server (the
default on Linux) and for repeats in a new interpreter each (`EDGEGATE_LOCAL_LAUNCH=process`), interleaved
over `--rounds` runs, with the medians of `first_load_ms` and `peak_memory_mb` of each launch side by
side (they should agree: both are the repeat process's own figures). Run: `uv run python
bench/local_latency.py [MODEL] [--iterations N] [--rounds N]`. Uses a throwaway home; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def plain_loop(model: str, inputs: str, iterations: int, repeats: int) -> float:
    """Median over repeats of the per-repeat median, timed the way anyone would: perf_counter around run()."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    feeds = dict(np.load(inputs))
    names = [o.name for o in sess.get_outputs()]
    medians = []
    for r in range(repeats + 1):  # the first pass is a warmup, as in EdgeGate
        times = []
        for _ in range(iterations):
            t = time.perf_counter()
            sess.run(names, feeds)
            times.append((time.perf_counter() - t) * 1000)
        if r:
            medians.append(statistics.median(times))
    return statistics.median(medians)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", default=str(REPO / "examples/quickstart/model.onnx"))
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="runs per launch, interleaved (default 3)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from edgegate_cli.runs.execute import RunRequest, execute_run
    from edgegate_cli.spec.pipeline import load_pipeline
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    figures: dict[str, dict[str, list[float]]] = {"fork": {}, "process": {}}
    plain: list[float] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Path(tmp) / "bench.yaml"
        pipe.write_text(f"name: bench\nbackend: local\ndevices: ['local:cpu']\nmodel: {{path: '{args.model}'}}\n"
                        f"run_policy: {{repeats: {args.repeats}, iterations: {args.iterations}}}\n"
                        "gates: [{metric: latency_ms, op: '<=', value: 100000, required: false}]\n")
        ws = open_workspace(Home(Path(tmp) / "home", "--home"))
        inputs = None
        for _ in range(args.rounds):
            for launch in ("fork", "process"):
                os.environ["EDGEGATE_LOCAL_LAUNCH"] = launch
                outcome = execute_run(ws, RunRequest(load_pipeline(pipe)), lambda _msg: None)
                for metric in ("latency_ms", "first_load_ms", "peak_memory_mb"):
                    figures[launch].setdefault(metric, []).append(outcome.devices["local:cpu"][metric].value)
                inputs = str(ws.cas.path_of(outcome.inputs["sha256"]))
            plain.append(plain_loop(args.model, inputs, args.iterations, args.repeats))
        os.environ.pop("EDGEGATE_LOCAL_LAUNCH", None)
    plain_ms = statistics.median(plain)
    print(f"model: {args.model}")
    print(f"iterations x repeats: {args.iterations} x {args.repeats} (1 thread), {args.rounds} interleaved rounds; "
          f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"plain in-process InferenceSession.run loop:            {plain_ms:.4f} ms")
    for launch, label in (("fork", "forked from the fork server"), ("process", "a new interpreter each")):
        med = {k: statistics.median(v) for k, v in figures[launch].items()}
        print(f"edgegate latency_ms, repeats {label:<28} {med['latency_ms']:.4f} ms  "
              f"difference {100 * (med['latency_ms'] / plain_ms - 1):+.2f} % (target within ±5 %); "
              f"first_load_ms {med['first_load_ms']:.2f}, peak_memory_mb {med['peak_memory_mb']:.1f}")


if __name__ == "__main__":
    main()
