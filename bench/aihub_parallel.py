"""AI Hub devices run in parallel: a 3-device run's wall time against a 1-device run's.

Starts the AI Hub protocol double (tests/aihub_double) with every job held `--hold` seconds (default 2),
probes once, then times `edgegate run` (in-process, the real qai_hub SDK) on 1 device and on 3 devices,
each on a fresh copy of the probed home so both compile and profile. Prints both wall times and their
ratio (target: 3-device ≤ 1.5 × 1-device). Run: `uv run python bench/aihub_parallel.py [--hold S]
[--rounds N]`. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEVICES = ["Samsung Galaxy S24", "Samsung Galaxy S23", "Snapdragon 8 Elite QRD"]
MODEL = REPO / "examples" / "quickstart" / "model.onnx"


def pipeline(path: Path, devices: list[str]) -> Path:
    path.write_text(f"name: bench\nbackend: qaihub\ndevices: {devices!r}\nmodel: {{path: '{MODEL}'}}\n"
                    "run_policy: {iterations: 50}\ngates: [{metric: latency_ms, op: '<=', value: 1000}]\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hold", type=float, default=2.0, help="seconds the double holds every job (default 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.2, help="EDGEGATE_QAIHUB_POLL_S (default 0.2)")
    args = parser.parse_args()
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    from aihub_double import AIHubDouble

    from edgegate_cli.backends.registry import get_backend
    from edgegate_cli.runs.execute import RunRequest, execute_run
    from edgegate_cli.runs.probe import probe_backend
    from edgegate_cli.spec.pipeline import load_pipeline
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    with AIHubDouble(polls_before_done=0) as hub, tempfile.TemporaryDirectory(prefix="edgegate-bench-") as tmp:
        os.environ.update({"QAIHUB_API_TOKEN": hub.token, "EDGEGATE_QAIHUB_API_URL": hub.url,
                           "EDGEGATE_QAIHUB_POLL_S": str(args.poll)})
        template = Path(tmp) / "probed"
        ws = open_workspace(Home(template, "--home"))
        probe_backend(ws, "qaihub", lambda *_: None, backend=get_backend("qaihub", ws=ws, devices=DEVICES[:1]))
        ws.db.close()
        hub.hold_running_s = args.hold
        walls: dict[int, list[float]] = {1: [], 3: []}
        for r in range(args.rounds):
            for n in (1, 3):
                home = Path(tmp) / f"home-{n}-{r}"
                shutil.copytree(template, home)
                ws = open_workspace(Home(home, "--home"))
                spec = load_pipeline(pipeline(Path(tmp) / f"p{n}.yaml", DEVICES[:n]))
                started = time.monotonic()
                outcome = execute_run(ws, RunRequest(spec), lambda *_a, **_k: None)
                walls[n].append(time.monotonic() - started)
                ws.db.close()
                assert outcome.verdict == "passed", outcome
    one, three = statistics.median(walls[1]), statistics.median(walls[3])
    print(f"AI Hub double holding every job {args.hold:g} s (compile, then 1 warmup + 3 repeats per device), "
          f"first poll {args.poll:g} s, median of {args.rounds} rounds:")
    print(f"  1 device : {one:6.2f} s   ({', '.join(f'{w:.2f}' for w in walls[1])})")
    print(f"  3 devices: {three:6.2f} s   ({', '.join(f'{w:.2f}' for w in walls[3])})")
    print(f"  ratio    : {three / one:6.2f}x   (target <= 1.5x)")


if __name__ == "__main__":
    main()
