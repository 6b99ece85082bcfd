"""Rollout against real agents: N (default 8) `edgegate agent serve` processes on 127.0.0.1 with mutual TLS
(the agent tests' PKI and process helper), a release with a model of MB megabytes published in a fresh home,
then `rollout start --strategy direct` and the one `rollout advance` that pushes every agent (upload,
signature checks, staging, ONNX Runtime load and warm-up, swap, and the agent reporting the new digest),
then `rollout abort` + `advance`: the signed rollback fan-out until every agent reports the old digest.
Prints devices per minute for both, and the release box's CPU time and peak RSS. Nothing is asserted.

Run: `uv run python bench/rollout_real.py [--agents 8] [--mb 10]`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))


def cli(home: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "edgegate_cli.cli", *args], check=True, capture_output=True,
                          text=True, env={**os.environ, "EDGEGATE_HOME": str(home)}).stdout


def timed(fn):
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = fn()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return result, time.perf_counter() - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--mb", type=float, default=10.0)
    args = parser.parse_args()
    from agent.fixtures import AgentProcess, make_pki
    from agent.releases import push, read_export
    from rollout_scale import big_model

    from edgegate_cli.context import Context
    from edgegate_cli.fleet.devices import Device, upsert_device
    from edgegate_cli.fleet.tls import fleet_paths
    from edgegate_cli.rollout.advance import advance
    from edgegate_cli.rollout.ops import abort
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pki, home = make_pki(root / "pki"), root / "home"
        cli(home, "keys", "generate")
        pem = root / "publisher.pem"
        pem.write_text(json.loads(cli(home, "keys", "export", "--json"))["public_key"])
        for version, mb in (("1.0.0", 0.01), ("1.1.0", args.mb)):
            big_model(root / f"m-{version}.onnx", mb)
            cli(home, "publish", str(root / f"m-{version}.onnx"), "--name", "bench", "--version", version, "--force")
        cli(home, "releases", "export", "bench@1.0.0", str(root / "export"))
        r1 = read_export(root / "export")
        agents = [AgentProcess(root / f"agent-{i}", pki, device_id=f"dev-{i}", warmup=1, require_evidence=False,
                               publisher_keys=[pem]) for i in range(args.agents)]
        try:
            for a in agents:
                a.start()
                with a.client() as client:
                    push(client, r1)
            ws = open_workspace(Home(home, "--home"), ctx=Context())
            paths = fleet_paths(ws)
            for src, dst in ((pki.ca_cert, paths.ca_cert), (pki.client[0], paths.client_cert),
                             (pki.client[1], paths.client_key)):
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            for a in agents:
                upsert_device(ws.db, Device(device_id=a.device_id, address=a.url, device_type="test-board",
                                            region=None, tags={}))
            cli(home, "rollout", "start", "bench@1.1.0", "--strategy", "direct", "--bake", "600", "--id", "ro-real")
            result, wall, cpu = timed(lambda: advance(ws, "ro-real", now=datetime.now(UTC)))
            states = dict(ws.db.execute("SELECT state, count(*) FROM rollout_targets GROUP BY state").fetchall())
            print(f"push: {args.agents} real agents x {args.mb:g} MB model: {args.agents / wall * 60:,.0f} devices/min "
                  f"({wall:.2f} s: upload, verify, stage, load, warm, swap, reported), release box CPU {cpu:.2f} s, "
                  f"status {result.status}, states {states}", flush=True)
            abort(ws, "ro-real")
            result, wall, cpu = timed(lambda: advance(ws, "ro-real", now=datetime.now(UTC)))
            states = dict(ws.db.execute("SELECT state, count(*) FROM rollout_targets GROUP BY state").fetchall())
            print(f"rollback: {args.agents / wall * 60:,.0f} devices/min ({wall:.2f} s, signed directives until each "
                  f"agent reports the old digest), release box CPU {cpu:.2f} s, status {result.status}, "
                  f"states {states}", flush=True)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"release box peak RSS {rss:.0f} MB", flush=True)
        finally:
            for a in agents:
                a.stop()


if __name__ == "__main__":
    main()
