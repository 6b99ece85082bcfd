"""`edgegate verify` on a bundle carrying ~50 MB of raw payloads, against plain sha256 of the same bytes.

How the bundle is built (a throwaway home; nothing outside it is touched):
1. a real quickstart run (`edgegate run examples/quickstart/pipeline.yaml`, 200 iterations x 3 repeats);
2. padding: the run's real measurement payloads are copied as extra repeats (`repeat_index` 4, 5, ...),
   each with its `iterations_ms` resampled (seeded) from the real samples to 100,000 iterations
   (~1 MB of JSON) and marked `"bench_padding": true`; they go into the CAS and `run_payloads`
   exactly as a run stores payloads, so `edgegate bundle create` lists and signs them like any other
   `raw/` file. (They are not re-evaluated: this bench times verification, not gating.)
3. `edgegate bundle create RUN`, then `edgegate verify BUNDLE --key PUBFILE`.

Figures (best of --rounds each, interleaved, page cache warm):
- start-up: `edgegate verify` (console script) on the unpadded bundle of the same run;
- verify: `edgegate verify` on the padded bundle, console script, and in-process `verify_file`;
- sha256: plain `hashlib.sha256` over the bundle file, 1 MiB reads (what `sha256sum` does).
Target: verify - start-up <= 1.3 x sha256. The in-process ratio is the precise one; the console-script
difference is the same work seen through process start-up noise (the four figures are taken interleaved, best of 15).
Run: `uv run python bench/verify_bundle.py [--mb 50] [--rounds 15]`.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EDGEGATE = [sys.executable, "-c", "from edgegate_cli.cli import main; main()"]
PAD_ITERATIONS = 100_000


def edgegate(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEGATE, "--home", str(home), *args], cwd=cwd or REPO, capture_output=True,
                          text=True, check=False)


def pad_run(home: Path, run_id: str, target_bytes: int) -> int:
    """Add padding payloads (see the module docstring) until the run's payloads reach target_bytes."""
    from edgegate_cli.store.artifacts import add_ref, store_bytes
    from edgegate_cli.store.workspace import open_workspace_at

    ws = open_workspace_at(home)
    rows = list(ws.db["run_payloads"].rows_where("run_id = ? and warmup = 0", [run_id], order_by="repeat_index"))
    real = [json.loads(ws.cas.read_bytes(r["sha256"])) for r in rows]
    total = sum(ws.cas.path_of(r["sha256"]).stat().st_size for r in rows)
    rng = random.Random(0)
    index = max(r["repeat_index"] for r in rows) + 1
    while total < target_bytes:
        base = real[index % len(real)]
        payload = {**base, "repeat_index": index, "bench_padding": True,
                   "iterations_ms": [rng.choice(base["iterations_ms"]) for _ in range(PAD_ITERATIONS)]}
        data = json.dumps(payload, sort_keys=True).encode()
        digest = store_bytes(ws.db, ws.cas, data, "raw_payload", f"{run_id}-pad-{index}.json")
        add_ref(ws.db, digest, "run", run_id)
        ws.db["run_payloads"].insert({"run_id": run_id, "device": rows[0]["device"], "repeat_index": index,
                                      "warmup": 0, "sha256": digest, "created_at": rows[0]["created_at"]})
        total += len(data)
        index += 1
    ws.db.close()
    return total


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def build(work: Path, mb: int) -> tuple[Path, Path, Path]:
    """(small bundle, padded bundle, public key file) from one real run."""
    home = work / "home"
    for args in (("keys", "generate"), ("run", "examples/quickstart/pipeline.yaml", "--json")):
        result = edgegate(home, *args)
        if result.returncode not in (0, 1):
            sys.exit(f"edgegate {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    run_id = json.loads(result.stdout)["run_id"]
    key_id = next((home / "keys").glob("*.key")).stem
    pub = work / "signer.pem"
    pub.write_text(edgegate(home, "keys", "export", key_id).stdout)
    small, big = work / "small.bundle.zip", work / "big.bundle.zip"
    edgegate(home, "bundle", "create", run_id, "--out", str(small))
    payload_bytes = pad_run(home, run_id, mb * 1_000_000)
    started = time.perf_counter()
    created = edgegate(home, "bundle", "create", run_id, "--out", str(big))
    if created.returncode:
        sys.exit(f"bundle create failed:\n{created.stderr}")
    print(f"bundle: {big.stat().st_size / 1e6:.1f} MB on disk, {payload_bytes / 1e6:.1f} MB of raw payloads "
          f"(bundle create took {time.perf_counter() - started:.2f} s)")
    return small, big, pub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50, help="raw payload megabytes to carry (default 50)")
    parser.add_argument("--rounds", type=int, default=15, help="best of N for each figure (default 15; process "
                        "start-up varies by ±100 ms on a shared machine)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from edgegate_cli.evidence.verify import trusted_keys_for, verify_file

    with tempfile.TemporaryDirectory(prefix="edgegate-bench-verify-") as tmp:
        small, big, pub = build(Path(tmp), args.mb)

        def cli_verify(path: Path) -> None:
            result = edgegate(Path(tmp) / "unused-home", "verify", str(path), "--key", str(pub))
            if result.returncode:
                sys.exit(f"verify failed ({result.returncode}): {result.stderr}")

        trusted = trusted_keys_for([str(pub)])[0]
        series: dict[str, list[float]] = {"startup": [], "cli": [], "inproc": [], "plain": []}
        for _ in range(args.rounds):  # interleaved, so a noisy neighbour hits every figure alike
            series["startup"].append(timed(lambda: cli_verify(small)))
            series["cli"].append(timed(lambda: cli_verify(big)))
            series["inproc"].append(timed(lambda: verify_file(big, trusted)))
            series["plain"].append(timed(lambda: sha256_file(big)))
        startup, cli, inproc, plain = (min(series[k]) for k in ("startup", "cli", "inproc", "plain"))
        print(f"plain hashlib.sha256 of the bundle file: {plain * 1000:8.1f} ms "
              f"({big.stat().st_size / plain / 1e6:.0f} MB/s)")
        print(f"verify_file in-process:                  {inproc * 1000:8.1f} ms   ratio {inproc / plain:.2f}x")
        print(f"edgegate verify, small bundle (start-up): {startup * 1000:8.1f} ms")
        print(f"edgegate verify, padded bundle:           {cli * 1000:8.1f} ms   minus start-up "
              f"{(cli - startup) * 1000:.1f} ms, ratio {(cli - startup) / plain:.2f}x   (target <= 1.3x)")
        print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
