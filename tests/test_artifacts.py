"""artifacts.py: artifact rows, the references that keep blobs alive, retention and gc, listing and
verification (SPEC §2)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from edgegate_cli.errors import InvalidInput
from edgegate_cli.store.artifacts import (
    RETENTION_DAYS,
    add_ref,
    list_artifacts,
    store_bytes,
    store_file,
    verify_blobs,
)
from edgegate_cli.store.cas import CAS, tag
from edgegate_cli.store.retention import collect_garbage
from edgegate_cli.store.state import open_state

LATER = datetime.now(UTC) + timedelta(days=RETENTION_DAYS + 1)  # every fresh artifact has expired by then


@pytest.fixture
def store(tmp_path):
    return open_state(tmp_path / "state.db"), CAS(tmp_path / "cas")


def _run(db, run_id):
    db["runs"].insert({"id": run_id, "pipeline": "p", "backend": "local", "status": "passed",
                       "created_at": "2025-01-01T00:00:00.000000Z"})


def _audit(db):
    return [(r["command"], r["event"], json.loads(r["detail_json"]))
            for r in db.query("SELECT * FROM audit_events ORDER BY id")]


def _age(path, days):
    old = time.time() - days * 86400
    os.utime(path, (old, old))


def test_store_file_records_the_blob_with_a_30_day_expiry(store, tmp_path):
    """A stored file gets one row: kind, size, its file name, created now and expiring in 30 days."""
    db, cas = store
    src = tmp_path / "model.onnx"
    src.write_bytes(b"onnx bytes")
    hexdigest = store_file(db, cas, src, "model")
    assert hexdigest == hashlib.sha256(b"onnx bytes").hexdigest()
    row = db["artifacts"].get(hexdigest)
    assert (row["kind"], row["bytes"], row["original_name"]) == ("model", 10, "model.onnx")
    created = datetime.fromisoformat(row["created_at"])
    expires = datetime.fromisoformat(row["expires_at"])
    assert timedelta(days=30) - timedelta(seconds=5) < expires - created < timedelta(days=30, seconds=5)


def test_reingesting_pushes_expiry_out_and_keeps_kind_and_name(store):
    """The second ingest of the same bytes keeps the first row's kind and name but renews its expiry."""
    db, cas = store
    hexdigest = store_bytes(db, cas, b"payload", "raw_payload", "first.json")
    db["artifacts"].update(hexdigest, {"expires_at": "2000-01-01T00:00:00.000000Z"})
    assert store_bytes(db, cas, b"payload", "other", "second.json") == hexdigest
    row = db["artifacts"].get(hexdigest)
    assert (row["kind"], row["original_name"]) == ("raw_payload", "first.json")
    assert row["expires_at"] > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert db["artifacts"].count == 1


def test_gc_removes_expired_unreferenced_blobs_with_row_and_audit(store):
    """An expired blob nobody refers to goes: file, row and dead refs together, with an audit event."""
    db, cas = store
    hexdigest = store_bytes(db, cas, b"old payload", "raw_payload", "old.json")
    add_ref(db, hexdigest, "run", "run-that-was-deleted")
    report = collect_garbage(db, cas, now=LATER)
    item = {"sha256": tag(hexdigest), "bytes": 11, "kind": "raw_payload", "original_name": "old.json",
            "reason": "expired"}
    assert asdict(report) == {"removed": [item], "bytes_freed": 11, "kept_referenced": 0,
                                   "dry_run": False}
    assert not cas.exists(hexdigest)
    assert db["artifacts"].count == 0 and db["artifact_refs"].count == 0
    assert _audit(db) == [("gc", "blob_removed", item)]


def test_gc_keeps_what_a_live_referrer_needs(store):
    """Expired blobs stay while a run, probe run, pack or (not deleted) release that refers to them
    exists, and always for bundles; a ref to a missing run, pack or release, or a deleted release, keeps
    nothing."""
    db, cas = store
    _run(db, "run-1")
    db["probe_runs"].insert({"id": "probe-1", "backend": "local", "status": "done"})
    db["promptpacks"].insert({"pack_id": "smoke", "version": "1.2.0", "sha256": "0" * 64, "json": "{}"})
    release = {"channel": "stable", "payload_sha256": "x", "envelope_sha256": "x", "identity": "x",
               "model_format": "onnx", "forced": 1, "publisher": "x", "created_at": "x"}
    db["releases"].insert({"name": "q", "version": "1.0.0", **release})
    db["releases"].insert({"name": "q", "version": "0.9.0", **release, "deleted_at": "x"})
    kept = {}
    for ref_kind, ref_id in [("run", "run-1"), ("probe", "probe-1"), ("pack", "smoke@1.2.0"),
                             ("bundle", "anything"), ("release", "q@1.0.0")]:
        kept[ref_kind] = store_bytes(db, cas, ref_kind.encode(), "k")
        add_ref(db, kept[ref_kind], ref_kind, ref_id)
    dead = store_bytes(db, cas, b"dead", "k")
    add_ref(db, dead, "run", "run-2")
    add_ref(db, dead, "pack", "smoke@9.9.9")
    add_ref(db, dead, "probe", "probe-2")
    add_ref(db, dead, "release", "q@0.9.0")
    add_ref(db, dead, "release", "q@2.0.0")
    report = collect_garbage(db, cas, now=LATER)
    assert [i.sha256 for i in report.removed] == [tag(dead)]
    assert report.kept_referenced == 5
    assert all(cas.exists(h) for h in kept.values())
    assert db["artifacts"].count == 5


def test_gc_keeps_blobs_of_run_payloads(store):
    """A run_payloads row (a foreign key to artifacts) keeps its blob even without an artifact_refs row."""
    db, cas = store
    _run(db, "run-1")
    hexdigest = store_bytes(db, cas, b"{}", "raw_payload")
    db["run_payloads"].insert({"run_id": "run-1", "device": "local:cpu", "repeat_index": 0, "warmup": 1,
                               "sha256": hexdigest})
    report = collect_garbage(db, cas, now=LATER)
    assert (report.removed, report.kept_referenced) == ([], 1)
    assert cas.exists(hexdigest)


def test_gc_leaves_unexpired_artifacts_alone(store):
    """Nothing younger than the retention period is touched, referenced or not."""
    db, cas = store
    hexdigest = store_bytes(db, cas, b"fresh", "k")
    report = collect_garbage(db, cas)
    assert (report.removed, report.bytes_freed, report.kept_referenced) == ([], 0, 0)
    assert cas.exists(hexdigest) and db["artifacts"].count == 1
    assert _audit(db) == []


def test_gc_removes_untracked_blobs_and_stale_temp_files_older_than_a_day(store):
    """A blob with no row and a leftover temp file go after a day; younger ones may be an ingest in flight."""
    db, cas = store
    old_blob, old_size = cas.put_bytes(b"untracked and old")
    young_blob, _ = cas.put_bytes(b"untracked and young")
    _age(cas.path_of(old_blob), 2)
    cas.tmp.mkdir(parents=True, exist_ok=True)
    stale, fresh = cas.tmp / "ingest-crashed", cas.tmp / "ingest-running"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y" * 10)
    _age(stale, 2)
    report = collect_garbage(db, cas)
    assert [asdict(i) for i in report.removed] == [
        {"sha256": tag(old_blob), "bytes": old_size, "kind": None, "original_name": None, "reason": "untracked"},
        {"sha256": None, "bytes": 100, "kind": None, "original_name": "tmp/ingest-crashed",
         "reason": "stale_tmp"}]
    assert report.bytes_freed == old_size + 100
    assert list(cas.iter_digests()) == [young_blob]
    assert list(cas.iter_tmp()) == [fresh]
    assert [(c, e) for c, e, _ in _audit(db)] == [("gc", "blob_removed"), ("gc", "tmp_removed")]


def test_gc_dry_run_reports_the_same_and_changes_nothing(store):
    """--dry-run lists exactly what a real gc then removes, and removes and audits nothing itself."""
    db, cas = store
    hexdigest = store_bytes(db, cas, b"expired", "k", "e.bin")
    untracked, _ = cas.put_bytes(b"untracked")
    _age(cas.path_of(untracked), 2)
    dry = collect_garbage(db, cas, now=LATER, dry_run=True)
    assert dry.dry_run is True
    assert [(i.sha256, i.reason) for i in dry.removed] == [(tag(hexdigest), "expired"),
                                                           (tag(untracked), "untracked")]
    assert cas.exists(hexdigest) and cas.exists(untracked) and db["artifacts"].count == 1
    assert _audit(db) == []
    real = collect_garbage(db, cas, now=LATER)
    assert asdict(real) == {**asdict(dry), "dry_run": False}
    assert list(cas.iter_digests()) == []


def test_gc_of_an_expired_row_whose_blob_is_gone_drops_the_row(store):
    """A row left without its blob (deleted by hand) is cleaned up at expiry, freeing 0 bytes."""
    db, cas = store
    hexdigest = store_bytes(db, cas, b"vanished", "k")
    cas.remove(hexdigest)
    report = collect_garbage(db, cas, now=LATER)
    assert [(i.sha256, i.bytes) for i in report.removed] == [(tag(hexdigest), 0)]
    assert db["artifacts"].count == 0


def test_naive_now_is_taken_as_utc(store):
    """A naive datetime means UTC, so the same instant gives the same answer either way."""
    db, cas = store
    store_bytes(db, cas, b"x", "k")
    naive = LATER.replace(tzinfo=None)
    assert len(collect_garbage(db, cas, now=naive, dry_run=True).removed) == 1


def test_list_artifacts_shows_rows_refs_and_untracked_blobs(store):
    """Every row with its reference count and presence, plus untracked blobs, sorted by digest."""
    db, cas = store
    tracked = store_bytes(db, cas, b"tracked", "model", "m.onnx")
    add_ref(db, tracked, "run", "r1")
    add_ref(db, tracked, "bundle", "b1")
    untracked, _ = cas.put_bytes(b"untracked")
    gone = store_bytes(db, cas, b"gone", "k")
    cas.remove(gone)
    items = {i.sha256: i for i in list_artifacts(db, cas).artifacts}
    assert list(items) == sorted(items)
    assert (items[tag(tracked)].refs, items[tag(tracked)].kind, items[tag(tracked)].bytes,
            items[tag(tracked)].present) == (2, "model", 7, True)
    assert items[tag(tracked)].original_name == "m.onnx"
    assert asdict(items[tag(untracked)]) == {
        "sha256": tag(untracked), "kind": None, "bytes": 9, "created_at": None, "expires_at": None,
        "original_name": None, "refs": 0, "present": True}
    assert (items[tag(gone)].present, items[tag(gone)].bytes) == (False, 4)


def test_verify_blobs_lists_every_corrupt_and_missing_blob(store):
    """All blobs are re-hashed; each corrupt one names path, expected and actual; nothing is deleted."""
    db, cas = store
    good = store_bytes(db, cas, b"good", "k")
    bad1 = store_bytes(db, cas, b"bad one", "k")
    bad2, _ = cas.put_bytes(b"bad two")  # untracked blobs are checked too
    gone = store_bytes(db, cas, b"gone", "k")
    cas.remove(gone)
    for hexdigest in (bad1, bad2):
        cas.path_of(hexdigest).chmod(0o644)
        cas.path_of(hexdigest).write_bytes(b"tampered")
    report = verify_blobs(db, cas)
    tampered = tag(hashlib.sha256(b"tampered").hexdigest())
    assert asdict(report) == {
        "checked": 4, "ok": False, "missing": [tag(gone)],
        "corrupt": [{"sha256": tag(h), "path": str(cas.path_of(h)), "expected": tag(h), "actual": tampered}
                    for h in sorted([bad1, bad2])]}
    assert cas.path_of(bad1).read_bytes() == b"tampered"
    assert asdict(verify_blobs(db, cas, [tag(good)])) == {"checked": 1, "ok": True, "missing": [],
                                                                "corrupt": []}


def test_verify_blobs_refuses_a_malformed_digest_before_hashing(store):
    """A bad digest among the arguments is InvalidInput with the exact message."""
    db, cas = store
    with pytest.raises(InvalidInput) as info:
        verify_blobs(db, cas, ["sha256:" + "a" * 64, "nothex"])
    assert info.value.message == "'nothex' is not a sha256 digest (expected sha256:<64 lowercase hex>)"


def test_gc_reaping_and_run_listing_use_indexes_not_scans(store):
    """At 100,000 blobs a scan per expired artifact took a minute: gc's payload check, the reaper's query
    of active runs and `runs list`'s newest runs each use an index (EXPLAIN QUERY PLAN), not a full scan."""
    from edgegate_cli.store.retention import _LIVE_REF
    from edgegate_cli.store.runs import _ACTIVE_SQL

    db, _ = store
    gc_plan = " | ".join(r[3] for r in db.execute(
        f"EXPLAIN QUERY PLAN SELECT a.* FROM artifacts a WHERE a.expires_at < ? AND NOT ({_LIVE_REF})", ["x"]))
    assert "SEARCH rp USING COVERING INDEX idx_run_payloads_sha256 (sha256=?)" in gc_plan
    assert "SCAN rp" not in gc_plan
    reap_plan = " | ".join(r[3] for r in db.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM runs WHERE status IN ({_ACTIVE_SQL})"))
    assert reap_plan.startswith("SEARCH runs USING INDEX idx_runs_status (status=?)")
    list_plan = " | ".join(r[3] for r in db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM runs ORDER BY created_at DESC LIMIT 20"))
    assert list_plan == "SCAN runs USING INDEX idx_runs_created_at"
