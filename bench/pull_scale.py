"""Release-box work per rollout stage on the pull path, for 1,000 against 100,000 simulated devices.

A real SeaweedFS (`weed mini`, as in the tests) on 127.0.0.1. For each fleet size N the bucket first
holds N status reports (`status/<device>/status.json`, ~2.5 KB each, the shape a pull agent writes), then
the release box runs a progressive rollout through `registry.channel.update_channel` — canary 1 %, 10 %,
50 %, promote: the stage transitions of SPEC §10.5 — and we count, per stage, its S3 requests, the bytes
it sends and receives, and its wall time. That work should not depend on N: devices find their cohort
themselves from the seed. Then, separately, the one part that does grow with N: reading every status
report (LIST pages + one GET per device, 16 threads), which `rollout advance` needs for its analysis.

Run: `uv run python bench/pull_scale.py [--devices 1000,100000] [--threads 16]`. Nothing is asserted;
the server and its temp directory are removed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

STAGES = [("canary 1 %", 10_000), ("10 %", 100_000), ("50 %", 500_000), ("promote", None)]


class Meter:
    """Counts a boto3 client's requests and bytes (botocore's event hooks)."""

    def __init__(self, client):
        self.requests = self.sent = self.received = 0
        client.meta.events.register("before-send.s3", self._sent)
        client.meta.events.register("after-call.s3", self._received)

    def _sent(self, request, **_):
        self.requests += 1
        self.sent += int(request.headers.get("Content-Length") or 0)

    def _received(self, http_response, parsed, model, **_):
        if model.has_streaming_output:  # the body is the caller's to read: count what the store declared
            self.received += int(parsed.get("ContentLength") or 0)
        else:
            self.received += len(http_response.content or b"")

    def snapshot(self) -> tuple[int, int, int]:
        return self.requests, self.sent, self.received


def report_body(device: str, template: str) -> bytes:
    return template.replace("DEVICE", device).encode()


def fill(client, bucket: str, n: int, threads: int, template: str) -> float:
    started = time.perf_counter()
    keys = [f"edge/status/dev-{i:06d}/status.json" for i in range(n)]

    def put(key):
        client.put_object(Bucket=bucket, Key=key, Body=report_body(key.split("/")[2], template))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, keys))
    return time.perf_counter() - started


def read_reports(client, bucket: str, threads: int) -> tuple[float, int, int]:
    """(seconds, requests, bytes) to list and read every status report."""
    started, requests, keys = time.perf_counter(), 0, []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="edge/status/"):
        requests += 1
        keys += [o["Key"] for o in page.get("Contents", [])]

    def get(key):
        return len(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(get, keys))
    return time.perf_counter() - started, requests + len(keys), total


def run_stages(ws, signer, store, meter) -> list[tuple[str, int, int, int, float]]:
    from edgegate_cli.registry.channel import promote_rollout, update_channel, with_release, with_rollout

    entry = lambda v: {"name": "model", "version": v, "identity": "sha256:" + v[0] * 64,  # noqa: E731
                       "manifest": {"sha256": "sha256:" + "e" * 64, "size": 2000}, "evidence": None}
    update_channel(ws, store, store.location, "stable", signer,
                   lambda b: with_release(b, entry("1.0.0"), make_current=True))
    update_channel(ws, store, store.location, "stable", signer,
                   lambda b: with_release(b, entry("2.0.0"), make_current=False))
    rows = []
    for name, hi in STAGES:
        before, started = meter.snapshot(), time.perf_counter()
        if hi is None:
            update_channel(ws, store, store.location, "stable", signer, promote_rollout)
        else:
            update_channel(ws, store, store.location, "stable", signer, lambda b, hi=hi: with_rollout(
                b, rollout_id="ro-bench", name="model", version="2.0.0", seed="ro-bench", ranges=[[0, hi]]))
        after = meter.snapshot()
        rows.append((name, after[0] - before[0], after[1] - before[1], after[2] - before[2],
                     time.perf_counter() - started))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="1000,100000")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    sizes = [int(n) for n in args.devices.split(",")]

    from s3_store import running_seaweedfs

    from edgegate_cli.evidence.keys import generate_key, load_signing_key
    from edgegate_cli.objectstore import ObjectStore, parse_s3_url
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    template = (REPO / "bench" / "data" / "pull_status_report.json").read_text()
    with tempfile.TemporaryDirectory(prefix="pull-scale-") as tmp, running_seaweedfs(Path(tmp) / "weed") as server:
        import os

        os.environ.update(server.env())
        client = server.client(max_pool_connections=args.threads * 2)
        print(f"SeaweedFS {server.endpoint_url} (weed mini, started in {server.startup_seconds:.1f} s); "
              f"status report {len(report_body('dev-000000', template))} bytes")
        for n in sizes:
            bucket = server.create_bucket(f"fleet-{n}")
            ws = open_workspace(Home(Path(tmp) / f"home-{n}", "--home"))
            generate_key(ws)
            signer = load_signing_key(ws)
            store = ObjectStore(parse_s3_url(f"s3://{bucket}/edge"))
            meter = Meter(store._client)
            filled = fill(client, bucket, n, args.threads, template)
            print(f"\n{n:,} devices ({n:,} status reports written in {filled:.1f} s)")
            print(f"  {'stage':12} {'requests':>8} {'sent B':>8} {'recv B':>8} {'seconds':>8}")
            rows = run_stages(ws, signer, store, meter)
            for name, requests, sent, received, seconds in rows:
                print(f"  {name:12} {requests:8d} {sent:8d} {received:8d} {seconds:8.3f}")
            print(f"  per stage: median {statistics.median(r[4] for r in rows) * 1000:.0f} ms, "
                  f"{statistics.median(r[1] for r in rows):.0f} requests")
            seconds, requests, total = read_reports(client, bucket, args.threads)
            print(f"  reading every status report (the analysis input): {requests:,} requests, "
                  f"{total / 1e6:.1f} MB, {seconds:.1f} s ({n / seconds:,.0f} reports/s)")
            ws.db.close()


if __name__ == "__main__":
    main()
