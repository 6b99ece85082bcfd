"""CAS ingest throughput and memory against plain hashlib streaming of the same file.

Writes a file of random bytes (default 500 MB, the model size limit) in a temp directory, then, each in
a fresh subprocess so page cache aside nothing is shared: `CAS.put_file` into a fresh store, and a
plain `hashlib.sha256` loop over 1 MiB reads. Prints MB/s and peak RSS (ru_maxrss of that subprocess)
for each, the median over rounds, and the throughput ratio (targets: CAS >= 85 % of hashlib, peak RSS
<= 100 MB). The CAS also writes and fsyncs every byte, so a third line times a plain copy + fsync with
no hashing: the floor the disk sets, which hashlib alone never meets.
Run: `uv run python bench/cas_ingest.py [--mb 500] [--rounds 5]`. Nothing is asserted; the temp
directory is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD_PRELUDE = """
import json, resource, sys, time
from pathlib import Path
src = Path(sys.argv[1])
"""
CHILD_CAS = CHILD_PRELUDE + """
from edgegate_cli.store.cas import CAS
t = time.perf_counter()
hexdigest, size = CAS(sys.argv[2]).put_file(src)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "size": size, "hexdigest": hexdigest,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
CHILD_COPY = CHILD_PRELUDE + """
import os
t = time.perf_counter()
size = 0
with open(src, "rb") as f, open(sys.argv[2], "wb") as out:
    while chunk := f.read(1 << 20):
        out.write(chunk)
        size += len(chunk)
    out.flush()
    os.fsync(out.fileno())
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "size": size, "hexdigest": None,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
CHILD_HASHLIB = CHILD_PRELUDE + """
import hashlib
t = time.perf_counter()
h, size = hashlib.sha256(), 0
with open(src, "rb") as f:
    while chunk := f.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "size": size, "hexdigest": h.hexdigest(),
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_file(path: Path, size: int) -> None:
    """Random-ish bytes, written in 1 MiB chunks so the generator itself stays small."""
    chunk = 1 << 20
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())  # else its writeback would compete with the first measurements


def measure(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="file size in MB (10**6 bytes; default 500)")
    parser.add_argument("--rounds", type=int, default=5, help="measurements per side (default 5)")
    args = parser.parse_args()
    size = args.mb * 10**6
    work = Path(tempfile.mkdtemp(prefix="edgegate-bench-"))
    try:
        src = work / "model.bin"
        make_file(src, size)
        results: dict[str, list[dict]] = {"hashlib": [], "CAS.put_file": [], "copy+fsync": []}
        for r in range(args.rounds):  # alternate, so no side always runs on a warmer cache
            results["hashlib"].append(measure(CHILD_HASHLIB, str(src)))
            store = work / f"cas-{r}"  # a fresh store each round: a repeat would only deduplicate
            results["CAS.put_file"].append(measure(CHILD_CAS, str(src), str(store)))
            shutil.rmtree(store)
            results["copy+fsync"].append(measure(CHILD_COPY, str(src), str(work / "copy.bin")))
            os.unlink(work / "copy.bin")
        digests = {m["hexdigest"] for ms in results.values() for m in ms if m["hexdigest"]}
        assert len(digests) == 1, "CAS and hashlib disagree on the digest"  # a broken bench, not a timing
        mbps = {}
        print(f"{args.mb} MB file, {args.rounds} rounds, each in a fresh subprocess (median shown)")
        for name, ms in results.items():
            mbps[name] = statistics.median(size / 1e6 / m["seconds"] for m in ms)
            rss_mb = max(m["maxrss_kib"] for m in ms) * 1024 / 1e6
            print(f"  {name:<13} {mbps[name]:8.1f} MB/s   peak RSS {rss_mb:6.1f} MB")
        ratio = mbps["CAS.put_file"] / mbps["hashlib"]
        print(f"  CAS / hashlib throughput: {ratio:.0%} (target >= 85 %); peak RSS target <= 100 MB")
        print(f"  CAS / copy+fsync throughput: {mbps['CAS.put_file'] / mbps['copy+fsync']:.0%} "
              "(the disk's floor: the CAS must write and fsync every byte, hashlib only reads)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
