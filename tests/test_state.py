"""state.py: the schema a blank database reaches, transactional migrations, upgrades of old
databases, refusal of newer ones, WAL, and two processes writing at once."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlite_utils import Migrations

from edgegate_cli.errors import StateTooNew
from edgegate_cli.store.state import (
    BUSY_TIMEOUT_MS,
    apply_migrations,
    migrations,
    open_state,
    record_audit,
    schema_version,
)

DATA = Path(__file__).parent / "data"
LATEST = max(int(m.name[1:4]) for m in migrations._migrations)

RUNS_COLUMNS = {
    "id": str, "pipeline": str, "pipeline_path": str, "pipeline_sha256": str, "backend": str, "status": str,
    "model_sha256": str, "model_name": str, "devices_json": str, "policy_json": str, "gates_json": str,
    "metrics_json": str, "gates_eval_json": str, "verdict": str, "bundle_sha256": str, "error_code": str,
    "error_detail": str, "pid": int, "hostname": str, "heartbeat_at": str, "created_at": str,
    "updated_at": str, "finished_at": str,
    # m002_run_evidence
    "mapping_sha256": str, "capabilities_sha256": str, "model_json": str, "inputs_json": str,
    "pipeline_json": str,
    # m004_baselines
    "baselines_json": str,
}
ARTIFACTS_COLUMNS = {"sha256": str, "kind": str, "bytes": int, "created_at": str, "expires_at": str,
                     "original_name": str}
OTHER_COLUMNS = {
    "artifact_refs": {"sha256": str, "ref_kind": str, "ref_id": str, "created_at": str},
    "run_events": {"id": int, "run_id": str, "status": str, "detail": str, "at": str},
    "run_payloads": {"run_id": str, "device": str, "repeat_index": int, "warmup": int, "sha256": str,
                     "created_at": str, "role": str},  # m008_paired_payloads: role ('baseline': paired repeats)
    "promptpacks": {"pack_id": str, "version": str, "sha256": str, "json": str, "published": int,
                    "created_at": str},
    "signing_keys": {"key_id": str, "public_key": str, "created_at": str, "revoked_at": str, "source": str,
                     "retired_at": str},
    "bundle_records": {"sha256": str, "key_id": str, "first_seen_at": str, "how": str},
    "audit_events": {"id": int, "at": str, "actor": str, "command": str, "event": str, "detail_json": str},
    "baseline_pins": {"pipeline": str, "device": str, "run_id": str, "created_at": str},
    # m005_releases
    "releases": {"name": str, "version": str, "channel": str, "payload_sha256": str, "envelope_sha256": str,
                 "identity": str, "model_format": str, "model_bytes": int, "evidence_bundle_sha256": str,
                 "evidence_verdict": str, "run_id": str, "forced": int, "publisher": str, "created_at": str,
                 "expires_at": str, "deprecated_at": str, "deprecated_reason": str, "deleted_at": str},
    "devices": {"device_id": str, "active_release": str, "previous_release": str, "created_at": str,
                "updated_at": str, "address": str, "device_type": str, "region": str, "tags_json": str,
                "cert_fingerprint": str, "last_seen": str, "last_status_json": str, "last_error": str},
    "rollouts": {"id": str, "release": str, "rollback_release": str, "status": str, "created_at": str,
                 "finished_at": str},
}


def test_blank_database_reaches_the_current_schema(tmp_path):
    """A blank file gets every table with exactly the expected columns, and every migration recorded."""
    db = open_state(tmp_path / "state.db")
    assert db["runs"].columns_dict == RUNS_COLUMNS
    assert db["artifacts"].columns_dict == ARTIFACTS_COLUMNS
    for table, columns in OTHER_COLUMNS.items():
        assert db[table].columns_dict == columns, table
    assert db["artifacts"].pks == ["sha256"]
    assert db["promptpacks"].pks == ["pack_id", "version"]
    assert {"capabilities", "metric_mappings", "probe_runs", "pipelines"} <= set(db.table_names())
    assert [m.name for m in migrations.applied(db)] == [m.name for m in migrations._migrations]
    assert schema_version(db) == LATEST


def test_a_failing_migration_rolls_back_and_stays_pending(tmp_path):
    """A migration that creates a table and then raises leaves no table and no record behind."""
    throwaway = Migrations("throwaway")

    @throwaway()
    def m001_create_then_fail(db):
        db["half_done"].create({"id": int}, pk="id")
        db["half_done"].insert({"id": 1})
        raise RuntimeError("boom in the middle of a migration")

    db = open_state(tmp_path / "state.db")
    with pytest.raises(RuntimeError, match="^boom in the middle of a migration$"):
        apply_migrations(db, throwaway)
    assert not db["half_done"].exists()
    assert throwaway.applied(db) == []
    assert [m.name for m in throwaway.pending(db)] == ["m001_create_then_fail"]
    assert not db.conn.in_transaction  # the connection is usable again
    record_audit(db, "test", "after_rollback")
    assert db["audit_events"].count == 1


def test_the_checked_in_v1_database_upgrades_to_the_current_schema(tmp_path):
    """tests/data/state_v1.db (m001 only, one artifact and one run) opens at the current version,
    keeps its rows, and the run gains the later columns as NULL."""
    path = tmp_path / "state.db"
    shutil.copyfile(DATA / "state_v1.db", path)
    import sqlite_utils

    before = sqlite_utils.Database(path)
    assert [m.name for m in migrations.applied(before)] == ["m001_initial"]
    before.close()

    db = open_state(path)
    assert schema_version(db) == LATEST
    assert migrations.pending(db) == []
    assert db["runs"].columns_dict == RUNS_COLUMNS
    assert db["artifacts"].get("ab" * 32)["original_name"] == "tiny.onnx"
    run = db["runs"].get("r-v1")
    assert (run["status"], run["mapping_sha256"], run["pipeline_json"]) == ("passed", None, None)
    assert db.journal_mode == "wal"


def test_migration_names_are_unique_padded_and_strictly_increasing():
    """Every migration is `mNNN_what`, numbered 1, 2, 3, ... in registration order (llm reused
    numbers), and transactional."""
    names = [m.name for m in migrations._migrations]
    assert names, "no migrations registered"
    for name in names:
        assert re.fullmatch(r"m\d{3}_[a-z][a-z0-9_]*", name), name
    numbers = [int(name[1:4]) for name in names]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(set(names)) == len(names)
    # apply_migrations runs them all inside one BEGIN IMMEDIATE, where VACUUM-style ones cannot run
    assert all(m.transactional for m in migrations._migrations)


def test_wal_busy_timeout_and_foreign_keys_are_set(tmp_path):
    """open_state leaves the connection in WAL mode with the busy timeout and foreign keys on."""
    db = open_state(tmp_path / "state.db")
    assert db.journal_mode == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS == 30_000
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def _add_unknown_migration(path: Path) -> None:
    db = open_state(path)
    db["_sqlite_migrations"].insert({"migration_set": "edgegate", "name": "m999_x",
                                     "applied_at": "2099-01-01 00:00:00+00:00"})
    db.close()


def _too_new_message(path: Path) -> str:
    return f"{path}: this state database was written by a newer EdgeGate (unknown migration m999_x)"


def test_a_newer_database_is_refused(tmp_path):
    """A database with a migration this EdgeGate does not know raises StateTooNew, naming it."""
    path = tmp_path / "state.db"
    _add_unknown_migration(path)
    with pytest.raises(StateTooNew) as info:
        open_state(path)
    assert info.value.message == _too_new_message(path)
    assert info.value.hint == "upgrade EdgeGate (pip install -U edgegate), or point --home at another directory"


def test_a_newer_database_is_refused_by_the_cli(invoke, fresh_home):
    """`edgegate status` on a newer home exits 2 with one stderr line and nothing on stdout."""
    path = fresh_home / "state.db"
    _add_unknown_migration(path)
    result = invoke("status", expect=2)
    assert result.stdout == ""
    assert result.stderr == (
        f"Error [STATE_TOO_NEW]: {_too_new_message(path)} (upgrade EdgeGate (pip install -U edgegate), "
        "or point --home at another directory)\n")


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgegate_cli.store.state import open_state, record_audit
    home, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not go.exists():  # start together, so the opens and the writes overlap
        time.sleep(0.001)
    db = open_state(home / "state.db")
    for i in range(200):
        record_audit(db, "test", name, {"i": i})
""")


def test_two_processes_write_audit_events_concurrently(tmp_path):
    """Two real processes opening a blank home and writing at once both succeed; nothing is lost."""
    home, go = tmp_path / "shared-home", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), name, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("writer-a", "writer-b")]
    go.touch()
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [(rc, err) for _out, err, rc in results] == [(0, ""), (0, "")]
    db = open_state(home / "state.db")
    counts = dict(db.execute("SELECT event, count(*) FROM audit_events GROUP BY event").fetchall())
    assert counts == {"writer-a": 200, "writer-b": 200}
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert [m.name for m in migrations.applied(db)] == [m.name for m in migrations._migrations]
