"""Rollout push throughput of the release box: the product's real path (`rollout start` + `rollout advance`:
plan, lease, per-device state, mutual-TLS httpx pushes through the fleet's agent client, bounded
concurrency, and the metrics snapshot that starts the bake) against many device endpoints on loopback.

The devices are a BENCH-ONLY SIMULATOR (bench/rollout_sim.py, one separate process answering the agent's
push protocol for every device, reading every uploaded byte; it loads no model and checks no signature).
Real agents: bench/rollout_real.py.

For each DEVICES:MB pair a fresh home publishes a release with a model of MB megabytes, registers the
devices, starts a direct rollout and times the one `rollout advance` that pushes every device. Prints
devices per minute, bytes pushed, and the release box's CPU time and peak RSS (this process; the
simulator's CPU is not counted). Nothing is asserted.

The pull-mode row (bench/rollout_pull_scale.py, `--pull 1000,100000`): the release box's work per stage
of a rollout over the pull path — channel manifest writes, flat in the fleet size — apart from reading
the devices' status reports, which grows with it.

Run: `uv run python bench/rollout_scale.py [--runs 1000:10,10000:10] [--concurrency 256] [--pull 1000,100000]`
(`--runs ''` or `--pull ''` skips that part)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def big_model(path: Path, megabytes: float) -> None:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    hidden = max(4, int(megabytes * 1e6 / 32))
    w = np.random.default_rng(0).standard_normal((8, hidden)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, hidden])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())


def cli(home: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "edgegate_cli.cli", *args], check=True, capture_output=True,
                         text=True, env={**os.environ, "EDGEGATE_HOME": str(home)})
    return out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_pki(root: Path):
    from edgegate_cli.fleet import certs

    certs.create_ca(root / "ca")
    dev = certs.issue_device_cert(root / "ca", root / "sim", "simulator", ["127.0.0.1"])
    client = certs.issue_client_cert(root / "ca", root / "box")
    return Path(certs.create_ca.__module__ and root / "ca" / "fleet-ca.crt"), dev, client


def one_run(root: Path, devices: int, megabytes: float, concurrency: int, pki, port: int) -> dict:
    import shutil
    from datetime import UTC, datetime

    from edgegate_cli.context import Context
    from edgegate_cli.fleet.devices import Device, upsert_device
    from edgegate_cli.fleet.tls import fleet_paths
    from edgegate_cli.rollout.advance import advance
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    home = root / f"home-{devices}-{megabytes:g}"
    cli(home, "keys", "generate")
    big_model(root / "model.onnx", megabytes)
    cli(home, "publish", str(root / "model.onnx"), "--name", "bench", "--version", "1.0.0", "--force")
    ws = open_workspace(Home(home, "--home"), ctx=Context())
    paths = fleet_paths(ws)
    ca, _, client = pki
    for src, dst in ((ca, paths.ca_cert), (client.cert, paths.client_cert), (client.key, paths.client_key)):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    for i in range(devices):
        upsert_device(ws.db, Device(device_id=f"sim-{i:05d}", address=f"https://127.0.0.1:{port}/d/sim-{i:05d}",
                                    device_type="sim", region=None, tags={}))
    cli(home, "rollout", "start", "bench@1.0.0", "--strategy", "direct", "--bake", "60", "--id", "ro-bench",
        "--concurrency", str(concurrency), "--device-timeout", "600")
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = advance(ws, "ro-bench", now=datetime.now(UTC))
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    states = dict(ws.db.execute("SELECT state, count(*) FROM rollout_targets GROUP BY state").fetchall())
    return {"devices": devices, "model_mb": megabytes, "status": result.status, "states": states, "wall_s": wall,
            "devices_per_min": devices / wall * 60, "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "peak_rss_mb": r1.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1000:10,10000:10", help="DEVICES:MB pairs")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--pull", default="1000,100000", help="pull-mode row: device counts ('' to skip); see "
                                                              "bench/rollout_pull_scale.py")
    args = parser.parse_args()
    if args.pull:
        import rollout_pull_scale

        rollout_pull_scale.main([int(n) for n in args.pull.split(",")])
    if not args.runs:
        return
    print("NOTE: the devices are a bench-only simulator (bench/rollout_sim.py), one process answering the agent "
          "protocol for every device; it loads no model and checks no signature. Real agents: "
          "bench/rollout_real.py.", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pki = setup_pki(root)
        port = free_port()
        sim = subprocess.Popen([sys.executable, str(REPO / "bench" / "rollout_sim.py"), str(port), str(pki[1].cert),
                                str(pki[1].key), str(pki[0])])
        try:
            time.sleep(2.0)
            for pair in args.runs.split(","):
                n, mb = pair.split(":")
                r = one_run(root, int(n), float(mb), args.concurrency, pki, port)
                print(json.dumps(r), flush=True)
                print(f"{r['devices']:>6} devices x {r['model_mb']:g} MB: {r['devices_per_min']:,.0f} devices/min "
                      f"({r['wall_s']:.1f} s, {r['devices'] * r['model_mb'] / r['wall_s']:,.0f} MB/s pushed), "
                      f"release box CPU {r['cpu_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                      f"states {r['states']}", flush=True)
        finally:
            sim.terminate()
            sim.wait(timeout=15)


if __name__ == "__main__":
    main()
