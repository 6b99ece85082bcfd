"""The pull-mode row of bench/rollout_scale.py: the release box's work per rollout stage over the pull
path, through the product's real `rollout start --via` / `rollout advance` (PullAdvancer), for N simulated
devices on a real SeaweedFS (`weed mini`, as in the tests) on 127.0.0.1.

The devices are simulated by their status reports only (`status/<device>/status.json`, the shape a pull
agent writes, with its Prometheus counters): N reports are written first, all on 1.0.0. Then, per phase,
the release box's S3 requests are counted (botocore event hooks on the store the advancer opens) in two
parts: the channel work (HEADs of the release's objects, the channel manifest read and rewrite) and the
status reports it reads (LIST pages + one GET per device).

    canary 1 %   `rollout advance`: open [0, 1 %) on the channel, snapshot every report (the bake window)
    100 %        `rollout promote` + `advance`: the whole range, snapshot again
    rollback     `rollout abort` + `advance`: the signed rollback directive on the channel, read the reports

Nothing is asserted; the server and its temp directory are removed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))


class Meter:
    """Requests, bytes and seconds of a boto3 client, split into status-report reads and the rest."""

    def __init__(self):
        self.counts = {"channel": [0, 0, 0], "reports": [0, 0, 0]}  # requests, sent, received

    def attach(self, client) -> None:
        client.meta.events.register("before-send.s3", self._sent)
        client.meta.events.register("after-call.s3", self._received)

    @staticmethod
    def _kind(url: str) -> str:
        return "reports" if "/status/" in url or "prefix=edge%2Fstatus" in url else "channel"

    def _sent(self, request, **_):
        entry = self.counts[self._kind(request.url)]
        entry[0] += 1
        entry[1] += int(request.headers.get("Content-Length") or 0)

    def _received(self, http_response, parsed, model, context=None, **_):
        url = getattr(http_response, "url", "") or ""
        entry = self.counts[self._kind(url)]
        entry[2] += int(parsed.get("ContentLength") or 0) if model.has_streaming_output else \
            len(http_response.content or b"")

    def snapshot(self) -> dict:
        return {k: list(v) for k, v in self.counts.items()}


def metrics_text(identity_name: str, version: str, n: int) -> str:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from edgegate_cli.agent.health import LATENCY_BUCKETS

    registry = CollectorRegistry()
    hist = Histogram("edgegate_agent_inference_latency_seconds", "Inference latency", ["name", "version"],
                     buckets=LATENCY_BUCKETS, registry=registry)
    Counter("edgegate_agent_inference_errors", "errors", ["name", "version"], registry=registry)
    for i in range(n):
        hist.labels(identity_name, version).observe(0.0002 + (i % 7) * 0.0001)
    return generate_latest(registry).decode()


def fill(client, bucket: str, n: int, identity: str, threads: int = 16) -> float:
    template = json.loads((REPO / "bench" / "data" / "pull_status_report.json").read_text())
    template["active"] = {**template["active"], "name": "bench", "version": "1.0.0", "sha256": identity}
    template["channel"] = {**template["channel"], "name": "stable", "version": 1,
                           "seen": {**template["channel"]["seen"], "version": 1}}
    template["cohort"] = None
    template["poll"] = {**template["poll"], "release": "bench@1.0.0", "channel_version": 1, "rollout_id": None}
    template["metrics"] = metrics_text("bench", "1.0.0", 200)
    text = json.dumps(template)
    started = time.perf_counter()

    def put(i: int) -> None:
        device = f"dev-{i:06d}"
        client.put_object(Bucket=bucket, Key=f"edge/status/{device}/status.json",
                          Body=text.replace('"device_id": "DEVICE"', f'"device_id": "{device}"').encode())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(n)))
    return time.perf_counter() - started, len(text)


def cli(home: Path, *args: str) -> str:
    import subprocess

    return subprocess.run([sys.executable, "-m", "edgegate_cli.cli", "--home", str(home), *args], check=True,
                          capture_output=True, text=True).stdout


def setup(server, root: Path, n: int) -> tuple[Path, str]:
    """A home with bench 1.0.0 and 1.1.0 published, 1.0.0 pushed to a fresh bucket, n reports on 1.0.0."""
    from rollout_scale import big_model

    bucket = server.create_bucket(f"pull-{n}")
    home = root / f"home-pull-{n}"
    cli(home, "init")
    cli(home, "keys", "generate")
    for version, mb in (("1.0.0", 0.01), ("1.1.0", 0.02)):
        big_model(root / f"model-{version}.onnx", mb)
        cli(home, "publish", str(root / f"model-{version}.onnx"), "--name", "bench", "--version", version, "--force")
    url = f"s3://{bucket}/edge"
    cli(home, "releases", "push", "bench@1.0.0", url)
    identity = json.loads(cli(home, "releases", "show", "bench@1.0.0", "--json"))["release"]["identity"]
    filled, size = fill(server.client(max_pool_connections=32), bucket, n, identity)
    print(f"\n{n:,} devices ({n:,} status reports of {size:,} bytes written in {filled:.1f} s)", flush=True)
    return home, url


def run_pull(server, root: Path, n: int) -> list[tuple]:
    from datetime import UTC, datetime, timedelta

    import edgegate_cli.rollout.pull_engine as pull_engine
    from edgegate_cli.context import Context
    from edgegate_cli.rollout import ops
    from edgegate_cli.rollout.advance import advance
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    home, url = setup(server, root, n)

    meter = Meter()
    opened = pull_engine.open_channel_store

    def metered(plan):
        store, location = opened(plan)
        meter.attach(store._client)
        return store, location

    reading = [0.0]
    read_reports = pull_engine.PullAdvancer.reports

    def timed_read(self):
        started = time.perf_counter()
        try:
            return read_reports(self)
        finally:
            reading[0] += time.perf_counter() - started

    pull_engine.open_channel_store = metered  # the bench's own hooks: count what the advancer sends,
    pull_engine.PullAdvancer.reports = timed_read  # and time reading (and recording) the reports apart
    ws = open_workspace(Home(home, "--home"), ctx=Context())
    from edgegate_cli.rollout.plan import Rate, Thresholds

    plan = ops.make_pull_plan(ws, release="bench@1.1.0", strategy="progressive", via=url, channel=None,
                              rollout_id="ro-bench", bake_s=600, max_bake_s=3600, canary_pct=10, steps=[1.0, 100.0],
                              thresholds=Thresholds(), rate=Rate())
    pull_engine.start_pull_rollout(ws, plan)
    t0 = datetime.now(UTC)
    rows = []
    for name, steer, minutes in (("canary 1 %", None, 0), ("100 %", ops.promote, 1), ("rollback", ops.abort, 2)):
        before, started, reading[0] = meter.snapshot(), time.perf_counter(), 0.0
        if steer:
            steer(ws, "ro-bench")
        result = advance(ws, "ro-bench", now=t0 + timedelta(minutes=minutes))
        seconds = time.perf_counter() - started
        after = meter.snapshot()
        delta = {k: [a - b for a, b in zip(after[k], before[k], strict=True)] for k in after}
        rows.append((name, result.status, delta, seconds - reading[0], reading[0]))
        print(f"  {name:11} -> {result.status:12}  channel work: {delta['channel'][0]:2d} requests, "
              f"{delta['channel'][1]:,} B sent, {(seconds - reading[0]) * 1000:,.0f} ms   reading reports: "
              f"{delta['reports'][0]:,} requests, {delta['reports'][2] / 1e6:.1f} MB, {reading[0]:.1f} s", flush=True)
    ws.db.close()
    pull_engine.open_channel_store, pull_engine.PullAdvancer.reports = opened, read_reports
    return rows


def main(sizes: list[int]) -> None:
    from s3_store import running_seaweedfs

    with tempfile.TemporaryDirectory(prefix="rollout-pull-") as tmp, \
            running_seaweedfs(Path(tmp) / "weed") as server:
        os.environ.update(server.env())
        print(f"pull path: SeaweedFS {server.endpoint_url} (weed mini); the devices are their status reports",
              flush=True)
        for n in sizes:
            run_pull(server, Path(tmp), n)


if __name__ == "__main__":
    main([int(n) for n in (sys.argv[1] if len(sys.argv) > 1 else "1000,100000").split(",")])
