"""AI Hub status reads failing for a minute, in wall time: does a qaihub run survive it, and how late does it
notice its jobs afterwards? Plus the polling schedule's figures (issue 17).

Starts the AI Hub protocol double (tests/aihub_double), probes once, runs once to fill the compile cache, then
runs again (in-process, the real qai_hub SDK) while the double answers every status read (GET jobs/<id>/) with
503 and `Retry-After: 1` for `--outage` seconds (default 60), every job held `--hold` seconds (default 20).
Prints the run's verdict, wall time, the outage and recovery events it recorded, and how long after the outage
ended the run finished. Then prints, for the default first poll interval (5 s), when a job finishing at a given
time is noticed, against plain doubling to 10 minutes. Run: `uv run python bench/aihub_outage.py [--outage S]
[--hold S] [--poll S]`. Target: the run passes; a job is noticed within max(5 s, min(60 s, a tenth of its time)).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEVICE = "Samsung Galaxy S24"
MODEL = REPO / "examples" / "quickstart" / "model.onnx"


def _noticed(times: list[float], done: float) -> float:
    return min(t for t in times if t >= done)


def schedule_figures(first: float) -> None:
    from edgegate_cli.backends.qaihub.polling import next_interval

    ours, old = [0.0], [0.0]
    rounds = 0
    while ours[-1] < 2700:
        ours.append(ours[-1] + next_interval(first, rounds, ours[-1]))
        rounds += 1
    interval = first
    while old[-1] < 2700:
        old.append(old[-1] + interval)
        interval = min(interval * 2, 600)
    print(f"Polling from {first:g} s: when a job finishing at T is noticed (old: doubling to 600 s)")
    for done in (30, 120, 330, 600, 1200, 2400):
        print(f"  T = {done:5d} s: noticed at {_noticed(ours, done):7.1f} s   (old: {_noticed(old, done):7.1f} s)")
    print(f"  polls per job in a 20-minute run: {sum(1 for t in ours if t <= 1200)} "
          f"(old: {sum(1 for t in old if t <= 1200)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds status reads fail (default 60)")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds the double holds every job (default 20)")
    parser.add_argument("--poll", type=float, default=1.0, help="EDGEGATE_QAIHUB_POLL_S for the run (default 1)")
    args = parser.parse_args()
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    from aihub_double import AIHubDouble

    from edgegate_cli.backends.registry import get_backend
    from edgegate_cli.runs.execute import RunRequest, execute_run
    from edgegate_cli.runs.probe import probe_backend
    from edgegate_cli.spec.pipeline import load_pipeline
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.runs import run_events
    from edgegate_cli.store.workspace import open_workspace

    with AIHubDouble(polls_before_done=0) as hub, tempfile.TemporaryDirectory(prefix="edgegate-bench-") as tmp:
        os.environ.update({"QAIHUB_API_TOKEN": hub.token, "EDGEGATE_QAIHUB_API_URL": hub.url,
                           "EDGEGATE_QAIHUB_POLL_S": str(args.poll), "QAIHUB_CLIENT_INI": str(Path(tmp) / "none")})
        ws = open_workspace(Home(Path(tmp) / "home", "--home"))
        probe_backend(ws, "qaihub", lambda *_: None, backend=get_backend("qaihub", ws=ws, devices=[DEVICE]))
        pipe = Path(tmp) / "p.yaml"
        pipe.write_text(f"name: outage\nbackend: qaihub\ndevices: ['{DEVICE}']\nmodel: {{path: '{MODEL}'}}\n"
                        f"run_policy: {{iterations: 50, timeout_s: {int(args.outage + args.hold + 300)}}}\n"
                        "gates: [{metric: latency_ms, op: '<=', value: 1000}]\n")
        spec = load_pipeline(str(pipe))
        execute_run(ws, RunRequest(spec), lambda *_a, **_k: None)  # fills the compile cache
        hub.hold_running_s = args.hold
        started = time.monotonic()
        hub.inject_http(503, endpoint="jobs.get", retry_after=1, seconds=args.outage)
        outcome = execute_run(ws, RunRequest(spec), lambda *_a, **_k: None)
        wall = time.monotonic() - started
        notes = [e["detail"] for e in run_events(ws.db, outcome.run_id) if (e["detail"] or "").startswith("AIHUB_")]
    print(f"Status reads failing for {args.outage:g} s (503, Retry-After: 1), jobs held {args.hold:g} s, first poll "
          f"{args.poll:g} s:")
    print(f"  verdict {outcome.verdict}, run wall time {wall:.1f} s "
          f"({wall - max(args.outage, args.hold):.1f} s after the outage ended and the jobs were done)")
    print(f"  {hub.counts['injected.503']} status requests answered 503")
    for note in notes:
        print(f"  event: {note}")
    schedule_figures(5.0)


if __name__ == "__main__":
    main()
