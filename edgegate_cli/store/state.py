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

import sqlite_utils
from sqlite_utils import Migrations

from ..context import Context, format_utc
from ..errors import StateTooNew

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
def m005_paired_payloads(db: sqlite_utils.Database) -> None:
    # Paired measurement (SPEC §6 item 7): a run may also measure its relative gates' baseline model again,
    # interleaved with its own repeats. Those payloads are the run's too, marked role 'baseline' (NULL: the
    # run's own repeats), at repeat_index 2000 and up, so every reader of the run's own repeats can skip them.
    db["run_payloads"].add_column("role", str)


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


def open_state(db_path: Path | str, *, migrate: bool = True, ctx: Context | None = None) -> StateDatabase:
    """Open (creating if needed) the state database in WAL mode, migrated to the current schema.

    `ctx` (default: a fresh Context) supplies the clock and secrets of what is stored through it.
    Raises StateTooNew when the database was written by a newer EdgeGate.
    """
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db = StateDatabase(db_path)
    db.ctx = ctx or Context()
    db.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
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
