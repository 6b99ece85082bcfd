"""Verified download overhead: `download.Fetcher.fetch` against a plain streamed httpx GET of the same file.

A 100 MB file of random bytes is served on 127.0.0.1 by a stdlib HTTP server in its own process (using
sendfile, so the server is not the bottleneck). Each round, in alternating order, times:
  plain      httpx.Client.stream GET, iter_raw(1 MiB), bytes discarded
  plain+file the same, written to a file (no fsync) — what a naive downloader does
  verified   Fetcher.fetch: length bound, sha256 while streaming, temp file, fsync, rename
  sha256     hashlib.sha256 over the same file read from the page cache: no network, no write
and prints the median seconds and MB/s of each, and the verified overhead against both plain figures
(target ≤ 10 % against plain+file). A verified download can never beat the sha256 line, since every
byte must be hashed: on a CPU without SHA instructions (x86 without SHA-NI: ~300 MB/s) hashing alone is
slower than loopback HTTP, so the target is out of reach there and the script says so; `download`
hashes in a second thread so that hashing overlaps receiving and writing.
Run: `uv run python bench/fetch_overhead.py [--mb 100] [--rounds 7]`.
Nothing is asserted; the temp directory is removed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = r"""
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
path = sys.argv[1]
size = os.path.getsize(path)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(path, "rb") as f:
            self.request.sendfile(f)
httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"""


def plain(url: str, dest: Path | None) -> None:
    import httpx

    with httpx.Client(timeout=60) as client, client.stream("GET", url) as response:
        response.raise_for_status()
        if dest is None:
            for _ in response.iter_raw(1 << 20):
                pass
        else:
            with open(dest, "wb") as out:
                for chunk in response.iter_raw(1 << 20):
                    out.write(chunk)


def sha256_only(path: Path) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)


def verified(url: str, sha256: str, size: int, dest: Path) -> None:
    from edgegate_cli.download import Blob, Fetcher

    with Fetcher() as fetcher:
        fetcher.fetch(Blob(url, sha256, size), dest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eg-fetch-bench-"))
    server = None
    try:
        src = work / "blob.bin"
        digest = hashlib.sha256()
        with open(src, "wb") as f:
            for _ in range(args.mb):
                chunk = os.urandom(1_000_000)
                digest.update(chunk)
                f.write(chunk)
        size = src.stat().st_size
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(src)], stdout=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/blob.bin"
        runs = {
            "plain": lambda: plain(url, None),
            "plain+file": lambda: plain(url, work / "plain.bin"),
            "verified": lambda: verified(url, digest.hexdigest(), size, work / "verified.bin"),
            "sha256": lambda: sha256_only(src),
        }
        times = {name: [] for name in runs}
        for name in runs:  # warm-up: page cache, imports, connection set-up paths
            runs[name]()
        for round_ in range(args.rounds):
            order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
            for name in order:
                for leftover in ("plain.bin", "verified.bin"):
                    (work / leftover).unlink(missing_ok=True)
                started = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - started)
        medians = {name: statistics.median(values) for name, values in times.items()}
        print(f"{size / 1e6:.0f} MB from 127.0.0.1, median of {args.rounds} rounds (alternating order)")
        for name, seconds in medians.items():
            spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
            print(f"  {name:<11} {seconds:7.3f} s  {size / seconds / 1e6:8.1f} MB/s   (range {spread} s)")
        for base in ("plain+file", "plain"):
            overhead = medians["verified"] / medians[base] - 1
            print(f"verified overhead vs {base}: {overhead * 100:+.1f} %"
                  + ("   (target <= 10 %)" if base == "plain+file" else ""))
        floor = max(medians["plain+file"], medians["sha256"])
        print(f"verified vs max(plain+file, sha256) = {floor:.3f} s: {(medians['verified'] / floor - 1) * 100:+.1f} %")
        if medians["sha256"] > medians["plain+file"] * 1.1:
            print("note: sha256 alone is slower than plain+file + 10 % on this CPU; the target cannot be met here")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
