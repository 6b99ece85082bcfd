"""Local state in SQLite (SPEC §2): open, migrate, audit.

Schema changes are numbered migrations (sqlite_utils.Migrations), each applied in its own
transaction. Never edit a released migration: add the next number.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..context import Context, format_utc
from ..errors import HomeUnusable, StateTooNew
from .sqlite_lib import Migrations, sqlite_utils

BUSY_TIMEOUT_MS = 30_000
migrations = Migrations("edgegate")


def utcnow() -> str:
    """UTC now as ISO-8601 with a Z, second precision preserved to microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db["artifacts"].create({"sha256": str, "kind": str, "bytes": int, "created_at": str,
                            "expires_at": str, "original_name": str}, pk="sha256")
    db["artifact_refs"].create({"sha256": str, "ref_kind": str, "ref_id": str, "created_at": str},
                               pk=("sha256", "ref_kind", "ref_id"),
                               foreign_keys=[("sha256", "artifacts", "sha256")])
    db["artifact_refs"].create_index(["ref_kind", "ref_id"])
    db["runs"].create({
        "id": str, "pipeline": str, "pipeline_path": str, "pipeline_sha256": str, "backend": str,
        "status": str, "model_sha256": str, "model_name": str, "devices_json": str,
        "policy_json": str, "gates_json": str, "metrics_json": str, "gates_eval_json": str,
        "verdict": str, "bundle_sha256": str, "error_code": str, "error_detail": str,
        "pid": int, "hostname": str, "heartbeat_at": str, "created_at": str, "updated_at": str,
        "finished_at": str,
    }, pk="id", not_null={"pipeline", "backend", "status", "created_at"})
    db["runs"].create_index(["status"])
    db["runs"].create_index(["pipeline", "created_at"])
    db["run_events"].create({"id": int, "run_id": str, "status": str, "detail": str, "at": str},
                            pk="id", foreign_keys=[("run_id", "runs", "id")])
    db["run_events"].create_index(["run_id"])
    db["run_payloads"].create({"run_id": str, "device": str, "repeat_index": int, "warmup": int,
                               "sha256": str, "created_at": str},
                              pk=("run_id", "device", "repeat_index"),
                              foreign_keys=[("run_id", "runs", "id"), ("sha256", "artifacts", "sha256")])
    db["capabilities"].create({"id": int, "backend": str, "account": str, "probe_run_id": str,
                               "json": str, "sha256": str, "created_at": str}, pk="id")
    db["metric_mappings"].create({"id": int, "backend": str, "account": str, "probe_run_id": str,
                                  "json": str, "sha256": str, "created_at": str}, pk="id")
    db["probe_runs"].create({"id": str, "backend": str, "account": str, "status": str,
                             "payloads_json": str, "created_at": str, "finished_at": str}, pk="id")
    db["promptpacks"].create({"pack_id": str, "version": str, "sha256": str, "json": str,
                              "published": int, "created_at": str}, pk=("pack_id", "version"))
    db["pipelines"].create({"name": str, "sha256": str, "json": str, "path": str,
                            "created_at": str, "updated_at": str}, pk="name")
    db["signing_keys"].create({"key_id": str, "public_key": str, "created_at": str,
                               "revoked_at": str, "source": str}, pk="key_id")
    db["audit_events"].create({"id": int, "at": str, "actor": str, "command": str, "event": str,
                               "detail_json": str}, pk="id")
    db["audit_events"].create_index(["at"])


@migrations()
def m002_run_evidence(db: sqlite_utils.Database) -> None:
    # What a run was measured and judged with, so its verdict can be re-derived later.
    db["runs"].add_column("mapping_sha256", str)
    db["runs"].add_column("capabilities_sha256", str)
    db["runs"].add_column("model_json", str)
    db["runs"].add_column("inputs_json", str)
    db["runs"].add_column("pipeline_json", str)


@migrations()
def m003_aihub_cache(db: sqlite_utils.Database) -> None:
    # AI Hub ids, so a model is uploaded once per sha256 and compiled once per (sha256, device,
    # options, SDK version), per AI Hub server. Never a token.
    db["aihub_models"].create({"api_url": str, "model_sha256": str, "model_id": str, "created_at": str},
                              pk=("api_url", "model_sha256"))
    db["aihub_compiles"].create({"api_url": str, "model_sha256": str, "device": str, "options": str,
                                 "sdk_version": str, "compile_job_id": str, "target_model_id": str,
                                 "created_at": str},
                                pk=("api_url", "model_sha256", "device", "options", "sdk_version"))


@migrations()
def m004_baselines(db: sqlite_utils.Database) -> None:
    # Relative gates: the baseline each run compared against (run id, bundle digest, the digests of its
    # mapping and payloads, so the verdict can be re-derived), and baselines pinned per pipeline and device.
    db["runs"].add_column("baselines_json", str)
    db["baseline_pins"].create({"pipeline": str, "device": str, "run_id": str, "created_at": str},
                               pk=("pipeline", "device"), foreign_keys=[("run_id", "runs", "id")])


@migrations()
def m005_releases(db: sqlite_utils.Database) -> None:
    # Signed releases (SPEC §10.1): one row per NAME@VERSION, never reused. The signed envelope and
    # every file are CAS blobs referenced as ('release', 'NAME@VERSION'); `deleted_at` keeps the row as
    # a tombstone (with its payload_sha256) so a deleted version is never published again with other
    # bytes, while gc may free its blobs: so no foreign key from envelope_sha256 to artifacts.
    db["releases"].create({
        "name": str, "version": str, "channel": str, "payload_sha256": str, "envelope_sha256": str,
        "identity": str, "model_format": str, "model_bytes": int, "evidence_bundle_sha256": str,
        "evidence_verdict": str, "run_id": str, "forced": int, "publisher": str, "created_at": str,
        "expires_at": str, "deprecated_at": str, "deprecated_reason": str, "deleted_at": str,
    }, pk=("name", "version"), not_null={"channel", "payload_sha256", "envelope_sha256", "identity",
                                         "model_format", "forced", "publisher", "created_at"})
    db["releases"].create_index(["channel"])
    # What `releases delete` must respect, created here so the check reads real tables from the start;
    # the fleet and rollout issues extend them (add_column), keeping these columns and their meaning
    # (registry/__init__.py): a release is named "NAME@VERSION".
    db["devices"].create({"device_id": str, "active_release": str, "previous_release": str,
                          "created_at": str, "updated_at": str}, pk="device_id")
    db["rollouts"].create({"id": str, "release": str, "rollback_release": str, "status": str,
                           "created_at": str, "finished_at": str}, pk="id", not_null={"release", "status"})
    db["rollouts"].create_index(["release"])


@migrations()
def m006_scale_indexes(db: sqlite_utils.Database) -> None:
    # gc keeps every blob a run_payloads row points at: an index, so that check is a lookup, not a scan of
    # every payload row for every expired artifact (57 s at 100,000 blobs without it). `runs list` reads
    # the newest runs: by index, not by sorting every run (0.5 s at 25,000 runs).
    db["run_payloads"].create_index(["sha256"])
    db["runs"].create_index(["created_at"])


@migrations()
def m007_key_standing(db: sqlite_utils.Database) -> None:
    # Bundle trust (README "keys"): a rotated key is *retired* (its old signatures stay valid), a revoked one is
    # compromised (its signatures fail unless this home recorded the bundle before the revocation), so the
    # home records the digest of every bundle it writes or verifies, with when it first saw it.
    db["signing_keys"].add_column("retired_at", str)
    db["bundle_records"].create({"sha256": str, "key_id": str, "first_seen_at": str, "how": str}, pk="sha256")
    db.execute("INSERT OR IGNORE INTO bundle_records (sha256, key_id, first_seen_at, how) "
               "SELECT sha256, NULL, created_at, 'created' FROM artifacts WHERE kind = 'bundle'")
    # Before this, `keys rotate` revoked the previous key: a key whose only revocation came with a rotation
    # was retired, not compromised.
    for event in db.query("SELECT at, detail_json FROM audit_events WHERE event = 'key_rotated'"):
        key_id = json.loads(event["detail_json"]).get("revoked_key_id")
        revokes = list(db.query("SELECT detail_json FROM audit_events WHERE event = 'key_revoked' AND "
                                "json_extract(detail_json, '$.key_id') = ?", [key_id]))
        if key_id and len(revokes) == 1:
            db.execute("UPDATE signing_keys SET retired_at = revoked_at, revoked_at = NULL WHERE key_id = ?", [key_id])


@migrations()
def m008_paired_payloads(db: sqlite_utils.Database) -> None:
    # Paired measurement (SPEC §6 item 7): a run may also measure its relative gates' baseline model again,
    # interleaved with its own repeats. Those payloads are the run's too, marked role 'baseline' (NULL: the
    # run's own repeats), at repeat_index 2000 and up, so every reader of the run's own repeats can skip them.
    db["run_payloads"].add_column("role", str)



@migrations()
def m009_fleet_devices(db: sqlite_utils.Database) -> None:
    # The fleet (SPEC §10.2; fleet/devices.py): m005's devices table keeps its columns and meaning and gains
    # the agent's address (https base URL), type, region, tags (canonical JSON object), the certificate
    # fingerprint, and what the last status poll saw.
    for column in ("address", "device_type", "region", "tags_json", "cert_fingerprint", "last_seen",
                   "last_status_json", "last_error"):
        db["devices"].add_column(column, str)


@migrations()
def m010_rollouts(db: sqlite_utils.Database) -> None:
    # Rollouts (SPEC §10.4; rollout/store.py). `rollouts` keeps m005's columns and meaning (finished_at NULL =
    # still running; release / rollback_release as "NAME@VERSION"); the plan, the current stage and the
    # reason + numbers of the last decision are added. Per-device push state lives in rollout_targets,
    # per-stage bake and analysis in rollout_stages, every transition in rollout_events, and the advance
    # lease (owner + expiry, taken under BEGIN IMMEDIATE) in rollout_leases.
    for column, kind in (("strategy", str), ("plan_json", str), ("stage", int), ("reason", str),
                         ("numbers_json", str), ("paused", int), ("updated_at", str), ("identity", str),
                         ("rollback_identity", str), ("envelope_sha256", str)):
        db["rollouts"].add_column(column, kind)
    db["rollout_targets"].create({
        "rollout_id": str, "device_id": str, "address": str, "stage": int, "rank": int, "release": str,
        "state": str, "code": str, "message": str, "attempts": int, "deployment_id": str,
        "reported_sha256": str, "previous_json": str, "updated_at": str},
        pk=("rollout_id", "device_id"), not_null={"state"})
    db["rollout_targets"].create_index(["rollout_id", "stage"])
    db["rollout_stages"].create({
        "rollout_id": str, "stage": int, "name": str, "status": str, "pushed_at": str, "bake_started_at": str,
        "snapshot_json": str, "outcome": str, "analysis_json": str, "errors_in_row": int, "finished_at": str},
        pk=("rollout_id", "stage"))
    db["rollout_events"].create({"id": int, "rollout_id": str, "at": str, "kind": str, "detail_json": str},
                                pk="id")
    db["rollout_events"].create_index(["rollout_id"])
    db["rollout_leases"].create({"rollout_id": str, "owner": str, "expires_at": str}, pk="rollout_id")


def _check_not_newer(db: sqlite_utils.Database, migration_set: Migrations) -> None:
    known = {m.name for m in migration_set._migrations}  # sqlite-utils exposes no public list
    unknown = sorted({m.name for m in migration_set.applied(db)} - known)
    if unknown:
        raise StateTooNew(
            f"{db.conn.execute('PRAGMA database_list').fetchone()[2]}: this state database was "
            f"written by a newer EdgeGate (unknown migration {unknown[-1]})",
            hint="upgrade EdgeGate (pip install -U edgegate), or point --home at another directory")


def apply_migrations(db: sqlite_utils.Database, migration_set: Migrations = migrations) -> None:
    """Apply the pending migrations of `migration_set`, all or none, under one write lock.

    BEGIN IMMEDIATE takes the lock before anything is read: two processes opening a blank home at
    once would otherwise both start migrating and one would fail with "database is locked" (a
    deferred transaction cannot upgrade its read lock while another writer commits). Every
    migration must therefore be transactional. Raises StateTooNew, or whatever a migration raises
    (after rolling everything back).
    """
    if not migration_set.pending(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        _check_not_newer(db, migration_set)  # again, under the lock: a newer EdgeGate may have won
        migration_set.apply(db)  # each migration nests as a savepoint inside this transaction
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()


class StateDatabase(sqlite_utils.Database):
    """sqlite-utils' Database whose top-level transactions are BEGIN IMMEDIATE.

    A deferred BEGIN that reads and then writes cannot wait for another writer: SQLite refuses
    the lock upgrade at once ("database is locked") whatever the busy timeout, to avoid deadlock.
    Taking the write lock up front lets the busy timeout do its job between processes and the
    run's heartbeat thread. sqlite-utils routes its own writes through `atomic()`, so all get it.

    `ctx` is the invocation that opened it: what it stores is timestamped by its clock and redacted
    with its secrets (error details and audit details can quote a backend verbatim).
    """

    ctx: Context

    def now(self) -> str:
        """The invocation's clock as EdgeGate writes times (ISO-8601 UTC with a Z)."""
        return self.ctx.clock.iso()

    @contextlib.contextmanager
    def atomic(self):
        if self.conn.in_transaction:
            with super().atomic():  # nested: a savepoint
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.execute("COMMIT")


@contextlib.contextmanager
def _directory_lock(directory: Path):
    """An exclusive flock on the home directory itself (no lock file to leave behind; SQLite never opens the
    directory, so its own POSIX locks are unaffected)."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _connect_readonly(db_path: Path):
    """A read-only connection. A WAL database on a read-only file system can be read only if its -shm file
    exists or can be made; otherwise it is opened `immutable` (nobody can write it there anyway)."""
    import sqlite3
    from urllib.parse import quote

    uri = "file:" + quote(str(db_path.resolve()))
    for params in ("?mode=ro", "?mode=ro&immutable=1"):
        conn = sqlite3.connect(uri + params, uri=True, check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
    raise HomeUnusable(f"{db_path}: cannot read the state database of this read-only home")


def _open_readonly(db_path: Path, ctx: Context | None) -> StateDatabase:
    if not db_path.is_file():
        raise HomeUnusable(f"{db_path.parent}: the home is read-only and has no state database",
                           hint="point --home at a home made by `edgegate init`, or make this one writable")
    db = StateDatabase(_connect_readonly(db_path))
    db.ctx = ctx or Context()
    db.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _check_not_newer(db, migrations)
    if migrations.pending(db):
        raise HomeUnusable(f"{db_path}: this state database needs upgrading by this EdgeGate, and the home is "
                           "read-only", hint="run any command once with write access to the home")
    return db


def open_state(db_path: Path | str, *, migrate: bool = True, ctx: Context | None = None,
               readonly: bool = False) -> StateDatabase:
    """Open (creating if needed) the state database in WAL mode, migrated to the current schema.

    `ctx` (default: a fresh Context) supplies the clock and secrets of what is stored through it. With
    `readonly`, the database is opened read-only and never changed (HomeUnusable if it needs migrating).
    Raises StateTooNew when the database was written by a newer EdgeGate.
    """
    db_path = Path(db_path)
    if readonly:
        return _open_readonly(db_path, ctx)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # No sqlite-utils plugins: finding them scans every installed package's entry points (~25 ms a
    # command), and the state database is EdgeGate's alone.
    db = StateDatabase(db_path, execute_plugins=False)
    db.ctx = ctx or Context()
    db.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if db.journal_mode != "wal":
        # Switching to WAL takes an exclusive lock after a shared one; two processes doing it at once on a
        # blank home deadlock, and SQLite then fails one at once ("database is locked") instead of waiting.
        with _directory_lock(db_path.parent):
            if db.journal_mode != "wal":
                db.enable_wal()
    db.conn.execute("PRAGMA foreign_keys = ON")
    _check_not_newer(db, migrations)
    if migrate:
        apply_migrations(db)
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    """Number of the newest applied migration (0 for a blank database)."""
    return max((int(m.name[1:4]) for m in migrations.applied(db)), default=0)


def record_audit(db: StateDatabase, command: str, event: str, detail: dict | None = None) -> None:
    """Append an audit event (who/what/when) for a state-changing command; secrets in `detail` are masked."""
    actor = f"{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}@{socket.gethostname()}"
    db["audit_events"].insert({"at": db.now(), "actor": actor, "command": command, "event": event,
                               "detail_json": json.dumps(db.ctx.secrets.redact_obj(detail or {}), sort_keys=True)})


def iso_after(db: StateDatabase, seconds: float) -> str:
    """The invocation's clock plus `seconds`, as EdgeGate writes times."""
    return format_utc(db.ctx.clock.now() + timedelta(seconds=seconds))
