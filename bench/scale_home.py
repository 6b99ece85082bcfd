"""Build an EdgeGate home at scale for the benches: N runs, 4N payload blobs, like a CI machine's after months.

One real quickstart run is made with the console script (probing the home first), then cloned N - 1 times
straight into SQLite and the CAS: each clone has its own run id and time, its own run events, and four
payload blobs of its own (the real payloads plus a `bench_clone` key, stored under their real sha256, so
`gate explain` and `cas verify` work on any clone). Besides the runs' blobs, 1 % of the count are
expired, unreferenced artifacts and 1 % untracked blobs a day old, so `gc --dry-run` has work to report.
Blob files are written without fsync: this is a fixture, not an ingest.

Run: `uv run python bench/scale_home.py DIR --runs 25000` (prints the home's figures as JSON). The other
benches call `build(...)` in a subprocess so that their own process stays small.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart" / "pipeline.yaml"


def _script() -> str:
    script = Path(sys.executable).parent / "edgegate"
    return str(script) if script.exists() else "edgegate"


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_blob(cas: Path, data: bytes, mtime: float | None = None) -> str:
    digest = hashlib.sha256(data).hexdigest()
    folder = cas / "sha256" / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / digest[2:]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return digest


def build(home: Path, runs: int) -> dict:
    """Make `home` hold `runs` runs (one real, the rest clones); return its figures."""
    home = Path(home)
    env = {**os.environ, "EDGEGATE_HOME": str(home)}
    home.mkdir(parents=True, exist_ok=True)
    pipeline = home / "quickstart.yaml"  # the quickstart, with a flake policy a loaded machine cannot trip
    pipeline.write_text(QUICKSTART.read_text().replace("model.onnx", str(QUICKSTART.parent / "model.onnx"))
                        .replace("iterations: 200", "iterations: 200\n  flake: {latency_cv: 1.0, throughput_cv: 1.0}"))
    subprocess.run([_script(), "run", str(pipeline), "--json"], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = sqlite3.connect(home / "state.db")
    db.row_factory = sqlite3.Row
    real = db.execute("SELECT * FROM runs WHERE status IN ('passed', 'failed') ORDER BY created_at DESC LIMIT 1"
                      ).fetchone()
    if real is None:
        raise SystemExit(f"the quickstart run in {home} did not finish")
    real = dict(real)
    events = [dict(r) for r in db.execute("SELECT * FROM run_events WHERE run_id = ? ORDER BY id", [real["id"]])]
    payloads = [dict(r) for r in db.execute("SELECT * FROM run_payloads WHERE run_id = ? ORDER BY repeat_index",
                                            [real["id"]])]
    shared_refs = [r[0] for r in db.execute(
        "SELECT sha256 FROM artifact_refs WHERE ref_kind = 'run' AND ref_id = ? AND sha256 NOT IN "
        "(SELECT sha256 FROM run_payloads WHERE run_id = ?)", [real["id"], real["id"]])]
    datas = [json.loads((home / "cas" / "sha256" / p["sha256"][:2] / p["sha256"][2:]).read_bytes())
             for p in payloads]
    cas = home / "cas"
    start = datetime.now(UTC) - timedelta(minutes=runs + 10)
    expires = _iso(datetime.now(UTC) + timedelta(days=30))
    run_rows, event_rows, payload_rows, artifact_rows, ref_rows = [], [], [], [], []
    for i in range(1, runs):
        at = start + timedelta(minutes=i)
        run_id = f"run-{at:%Y%m%d-%H%M%S}-{i:06x}"
        run_rows.append({**real, "id": run_id, "created_at": _iso(at), "updated_at": _iso(at),
                         "heartbeat_at": _iso(at), "finished_at": _iso(at + timedelta(seconds=2))})
        event_rows += [{**e, "id": None, "run_id": run_id, "at": _iso(at)} for e in events]
        for p, data in zip(payloads, datas, strict=True):
            blob = _canonical({**data, "bench_clone": i})
            digest = _write_blob(cas, blob)
            payload_rows.append({**p, "run_id": run_id, "sha256": digest, "created_at": _iso(at)})
            artifact_rows.append((digest, "raw_payload", len(blob), _iso(at), expires,
                                  f"{run_id}-{p['device']}-{p['repeat_index']}.json"))
            ref_rows.append((digest, "run", run_id, _iso(at)))
        ref_rows += [(digest, "run", run_id, _iso(at)) for digest in shared_refs]
    day_old = time.time() - 2 * 86400
    for i in range(max(1, runs * 4 // 100)):  # expired and unreferenced; untracked and old
        blob = f"expired artifact {i}".encode()
        artifact_rows.append((_write_blob(cas, blob), "raw_payload", len(blob), "2000-01-01T00:00:00.000000Z",
                              "2000-01-31T00:00:00.000000Z", f"old-{i}.json"))
        _write_blob(cas, f"untracked blob {i}".encode(), mtime=day_old)
    with db:
        if run_rows:
            cols = list(run_rows[0])
            db.executemany(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                           [[r[c] for c in cols] for r in run_rows])
            cols = [c for c in event_rows[0] if c != "id"]
            db.executemany(f"INSERT INTO run_events ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                           [[r[c] for c in cols] for r in event_rows])
            cols = list(payload_rows[0])
            db.executemany(f"INSERT INTO run_payloads ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                           [[r[c] for c in cols] for r in payload_rows])
        db.executemany("INSERT INTO artifacts (sha256, kind, bytes, created_at, expires_at, original_name) "
                       "VALUES (?, ?, ?, ?, ?, ?)", artifact_rows)
        db.executemany("INSERT OR IGNORE INTO artifact_refs (sha256, ref_kind, ref_id, created_at) VALUES (?, ?, ?, ?)",
                       ref_rows)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    figures = {"home": str(home), "runs": db.execute("SELECT count(*) FROM runs").fetchone()[0],
               "artifacts": db.execute("SELECT count(*) FROM artifacts").fetchone()[0],
               "blobs": sum(len(os.listdir(d)) for d in (cas / "sha256").iterdir()),
               "a_run": real["id"]}
    db.close()
    return figures


def build_in_subprocess(home: Path, runs: int) -> dict:
    """`build` in a child process (the caller's own memory stays small for its RSS figures)."""
    out = subprocess.run([sys.executable, __file__, str(home), "--runs", str(runs)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--runs", type=int, default=25_000)
    args = parser.parse_args()
    print(json.dumps(build(args.home, args.runs)))


if __name__ == "__main__":
    main()
