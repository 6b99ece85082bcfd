"""Swapping a 10 MB model under load: a real `edgegate agent serve` process over mutual TLS, several
clients posting /v1/infer without pause, and 20 deploys alternating two ~10 MB models.

Prints, against the SPEC §10.3 targets (0 failed requests; activation of a 10 MB model < 5 s):
- activation: deploy accepted (the 202) -> serving, as the agent measures it (`activation_s`) and as the
  release box sees it (202 -> GET /v1/deployments/ID says active, polled every 10 ms);
- failed requests (any answer but 200, or a transport error) out of all requests;
- request latency (client side, TLS included): p50/p99 of a steady phase with no deploy, against
  p99 and the worst of requests that overlapped a swap (from 202 to active + 100 ms).

Run: `uv run python bench/agent_swap.py [--clients 4] [--swaps 20] [--mb 10] [--steady-s 5]`.
Nothing is asserted. The machine is shared: run it on a quiet one to compare figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def load(agent, x: list, stop: threading.Event, out: list) -> None:
    with agent.client() as client:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                response = client.post("/v1/infer", json={"inputs": {"x": x}})
                ok = response.status_code == 200
                version = response.json().get("model", {}).get("version") if ok else None
            except Exception:  # noqa: BLE001 - a dropped request is a failed request
                ok, version = False, None
            end = time.perf_counter()
            out.append((start, end, ok, version))


def deploy(client, release, releases_mod) -> tuple[float, float, float, float]:
    """(time of the 202, time seen active, agent-side activation_s, 202 -> active as seen by the client)."""
    response = client.post("/v1/deploy", json=releases_mod.deploy_body(release))
    accepted = time.perf_counter()
    assert response.status_code == 202, response.text
    dep_id = response.json()["id"]
    while True:
        record = client.get(f"/v1/deployments/{dep_id}").json()
        if record["status"] in ("active", "failed"):
            break
        time.sleep(0.01)
    seen = time.perf_counter()
    assert record["status"] == "active", record
    return accepted, seen, record["activation_s"], seen - accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--mb", type=float, default=10.0, help="size of each model file in MB (default 10)")
    parser.add_argument("--steady-s", type=float, default=5.0, help="seconds of load before the first swap")
    args = parser.parse_args()
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    import numpy as np
    from agent import releases as releases_mod
    from agent.fixtures import PUBLISHER, AgentProcess, make_pki
    from agent.models import big_bytes

    with tempfile.TemporaryDirectory(prefix="agent-swap-") as tmp:
        root = Path(tmp)
        models = [big_bytes(1, args.mb), big_bytes(2, args.mb)]
        releases = [releases_mod.write_release(root / f"r{i}", PUBLISHER, version=f"1.0.{i}",
                                               models={"model.onnx": models[i % 2]}) for i in range(args.swaps + 1)]
        agent = AgentProcess(root / "agent", make_pki(root / "pki"), warmup=3).start()
        stop, results = threading.Event(), [[] for _ in range(args.clients)]
        x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64).tolist()
        try:
            with agent.client() as control:
                releases_mod.upload(control, releases[0])
                releases_mod.upload(control, releases[1])
                first = deploy(control, releases[0], releases_mod)
                threads = [threading.Thread(target=load, args=(agent, x, stop, out)) for out in results]
                for thread in threads:
                    thread.start()
                steady_from = time.perf_counter()
                time.sleep(args.steady_s)
                steady_to = time.perf_counter()
                swaps = [deploy(control, release, releases_mod) for release in releases[1:]]
                time.sleep(0.3)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            agent.stop()
    report(args, len(models[0]), first, swaps, [r for out in results for r in out], (steady_from, steady_to))


def report(args, size: int, first, swaps, requests, steady) -> None:
    windows = [(accepted, seen + 0.1) for accepted, seen, _, _ in swaps]
    steady_ms = [(end - start) * 1000 for start, end, ok, _ in requests
                 if ok and steady[0] <= start and end <= steady[1]]
    during = [(end - start) * 1000 for start, end, ok, _ in requests
              if ok and any(start < w_end and end > w_start for w_start, w_end in windows)]
    failed = [r for r in requests if not r[2]]
    agent_side = [s[2] for s in swaps]
    client_side = [s[3] for s in swaps]
    print(f"model size: {size / 1e6:.1f} MB each; {args.swaps} swaps; {args.clients} clients over mutual TLS")
    print(f"activation (202 -> serving), agent side: median {statistics.median(agent_side):.3f} s, "
          f"max {max(agent_side):.3f} s  (first deploy, no load: {first[2]:.3f} s)   target < 5 s")
    print(f"activation as the release box sees it (202 -> GET says active): median "
          f"{statistics.median(client_side):.3f} s, max {max(client_side):.3f} s")
    print(f"requests: {len(requests)} total, {len(failed)} failed   target 0 failed")
    print(f"latency, steady ({len(steady_ms)} requests): p50 {percentile(steady_ms, .5):.2f} ms, "
          f"p99 {percentile(steady_ms, .99):.2f} ms, max {max(steady_ms, default=float('nan')):.2f} ms")
    print(f"latency, overlapping a swap ({len(during)} requests): p50 {percentile(during, .5):.2f} ms, "
          f"p99 {percentile(during, .99):.2f} ms, worst {max(during, default=float('nan')):.2f} ms "
          f"({max(during, default=0) / max(percentile(steady_ms, .99), 1e-9):.1f}x the steady p99)")
    served = sorted({r[3] for r in requests if r[3]}, key=lambda v: int(v.rsplit(".", 1)[1]))
    print(f"versions that served requests: {len(served)} of {args.swaps + 1}")


if __name__ == "__main__":
    main()
