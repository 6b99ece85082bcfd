"""Local backend latency vs a plain in-process onnxruntime loop on the same model and inputs.

Prints both medians and their ratio (target: within ±5 %). Run: `uv run python bench/local_latency.py
[MODEL] [--iterations N]`. Uses a throwaway home; nothing is asserted.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from edgegate_cli.runs.execute import RunRequest, execute_run
    from edgegate_cli.spec.pipeline import load_pipeline
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    with tempfile.TemporaryDirectory() as tmp:
        pipe = Path(tmp) / "bench.yaml"
        pipe.write_text(f"name: bench\nbackend: local\ndevices: ['local:cpu']\nmodel: {{path: '{args.model}'}}\n"
                        f"run_policy: {{repeats: {args.repeats}, iterations: {args.iterations}}}\n"
                        "gates: [{metric: latency_ms, op: '<=', value: 100000, required: false}]\n")
        ws = open_workspace(Home(Path(tmp) / "home", "--home"))
        outcome = execute_run(ws, RunRequest(load_pipeline(pipe)), lambda _msg: None)
        edgegate_ms = outcome.devices["local:cpu"]["latency_ms"].value
        inputs = ws.cas.path_of(outcome.inputs["sha256"])
        plain_ms = plain_loop(args.model, str(inputs), args.iterations, args.repeats)
    print(f"model: {args.model}")
    print(f"iterations x repeats: {args.iterations} x {args.repeats} (1 thread)")
    print(f"edgegate local backend latency_ms (median of repeat medians): {edgegate_ms:.4f} ms")
    print(f"plain in-process InferenceSession.run loop:                   {plain_ms:.4f} ms")
    print(f"difference: {100 * (edgegate_ms / plain_ms - 1):+.2f} % (target within ±5 %)")


if __name__ == "__main__":
    main()
