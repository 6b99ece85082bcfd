"""Runs as a persisted state machine (SPEC §5), the one-active-run rule and abandonment (SPEC §2)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

from ..errors import InvalidInput, NotFound, RunActive, Verdict
from .sqlite_lib import sqlite_utils
from .state import StateDatabase, open_state

FINAL = {Verdict.PASSED, Verdict.FAILED, Verdict.ERROR}  # a run ends with its verdict as its status
TRANSITIONS = {
    "queued": {"preparing"},
    "preparing": {"submitting"},
    "submitting": {"running"},
    "running": {"collecting"},
    "collecting": {"evaluating"},
    "evaluating": {"reporting"},
    "reporting": {Verdict.PASSED, Verdict.FAILED},
}
# Every status a run passes before its final one. Queries name them (not "not final") so that the
# index on runs.status finds the active runs without reading the whole table.
_ACTIVE_SQL = ", ".join(f"'{status}'" for status in TRANSITIONS)
HEARTBEAT_S = 5.0
STALE_AFTER_S = 600.0  # a heartbeat this old means the run's process is gone, whatever its pid says


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _age_s(stamp: str | None, now: datetime) -> float:
    if not stamp:
        return float("inf")
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (now - then).total_seconds()


def _is_abandoned(row: dict, now: datetime) -> bool:
    if _age_s(row["heartbeat_at"], now) > STALE_AFTER_S:
        return True
    return row["hostname"] == socket.gethostname() and not _pid_alive(row["pid"])


def reap_abandoned(db: StateDatabase) -> list[str]:
    """Mark runs whose process died `error: ABANDONED`; return their ids."""
    reaped = []
    now = db.ctx.clock.now()
    for row in list(db.query(f"select * from runs where status in ({_ACTIVE_SQL})")):
        if _is_abandoned(row, now):
            with db.atomic():
                _finish(db, row["id"], Verdict.ERROR, {"error_code": "ABANDONED",
                        "error_detail": f"process {row['pid']} on {row['hostname']} stopped while the run was "
                                        f"{row['status']}"})
            reaped.append(row["id"])
    return reaped


def active_run(db: sqlite_utils.Database) -> dict | None:
    """The run currently holding the home, if any (after reaping dead ones)."""
    rows = list(db.query(f"select * from runs where status in ({_ACTIVE_SQL}) order by created_at limit 1"))
    return rows[0] if rows else None


def create_run(db: StateDatabase, *, pipeline: str, pipeline_path: str, pipeline_sha256: str,
               backend: str, devices: list[str], policy: dict, gates: list[dict], wait: bool = False,
               wait_timeout_s: float = 3600.0, poll_s: float = 1.0, on_wait=None) -> str:
    """Create a `queued` run, enforcing at most one active run per home.

    Raises RunActive naming the active run (or waits for it with wait=True, calling `on_wait(text)` each time
    it starts waiting for another run, so the user knows what it waits for).
    """
    deadline = time.monotonic() + wait_timeout_s
    waiting_for = None
    while True:
        reap_abandoned(db)
        run_id = "run-" + db.ctx.clock.now().strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        # BEGIN IMMEDIATE takes the write lock first, so two processes cannot both see "no active run".
        db.execute("BEGIN IMMEDIATE")
        try:
            active = active_run(db)
            if active is None:
                now = db.now()
                db["runs"].insert({
                    "id": run_id, "pipeline": pipeline, "pipeline_path": pipeline_path,
                    "pipeline_sha256": pipeline_sha256, "backend": backend, "status": "queued",
                    "devices_json": json.dumps(devices), "policy_json": json.dumps(policy, sort_keys=True),
                    "gates_json": json.dumps(gates, sort_keys=True), "pid": os.getpid(),
                    "hostname": socket.gethostname(), "heartbeat_at": now, "created_at": now, "updated_at": now,
                })
                db["run_events"].insert({"run_id": run_id, "status": "queued", "detail": None, "at": now})
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if active is None:
            return run_id
        if wait and on_wait is not None and waiting_for != active["id"]:
            waiting_for = active["id"]
            on_wait(f"waiting for run {active['id']} ({active['pipeline']}, {active['status']}, pid {active['pid']} "
                    f"on {active['hostname']}) to finish: one run at a time per home")
        if not wait or time.monotonic() > deadline:
            raise RunActive(f"run {active['id']} ({active['pipeline']}, {active['status']}, pid {active['pid']}) "
                            "is active in this home; one run at a time",
                            hint="wait for it, or pass --wait to queue behind it")
        time.sleep(poll_s)


def transition(db: StateDatabase, run_id: str, status: str, detail: str | None = None,
               fields: dict | None = None) -> None:
    """Move a run to `status`, persisting the event; refuses transitions the state machine forbids."""
    with db.atomic():
        current = db["runs"].get(run_id)["status"]
        if status != Verdict.ERROR and status not in TRANSITIONS.get(current, set()):
            raise ValueError(f"run {run_id}: illegal transition {current} -> {status}")
        if status == Verdict.ERROR and current in FINAL:
            raise ValueError(f"run {run_id}: already final ({current})")
        now = db.now()
        # Error details can quote a backend verbatim: mask secrets before they reach the database.
        redact = db.ctx.secrets.redact
        fields = {k: redact(v) if isinstance(v, str) else v for k, v in (fields or {}).items()}
        detail = redact(detail) if detail else detail
        update = {"status": status, "updated_at": now, "heartbeat_at": now, **fields}
        if status in FINAL:
            update["finished_at"] = now
        db["runs"].update(run_id, update)
        db["run_events"].insert({"run_id": run_id, "status": status, "detail": detail, "at": now})


def record_notices(db: StateDatabase, run_id: str, notices: list[tuple[str, str, str]]) -> None:
    """Events a backend reported while measuring ((at, code, text), e.g. an AI Hub job resubmitted), one
    run_events row each with the run's status unchanged ("running") and "CODE: text" as the detail."""
    if not notices:
        return
    with db.atomic():
        for at, code, text in notices:
            db["run_events"].insert({"run_id": run_id, "status": "running",
                                     "detail": db.ctx.secrets.redact(f"{code}: {text}"), "at": at})


def _finish(db: StateDatabase, run_id: str, status: str, fields: dict) -> None:
    now = db.now()
    db["runs"].update(run_id, {"status": status, "updated_at": now, "finished_at": now, **fields})
    db["run_events"].insert({"run_id": run_id, "status": status, "detail": fields.get("error_code"), "at": now})


class Heartbeat:
    """Refreshes a run's heartbeat from a background thread with its own connection."""

    def __init__(self, db: StateDatabase, run_id: str, every_s: float = HEARTBEAT_S):
        self.db_path, self.ctx, self.run_id, self.every_s = db.conn.execute("PRAGMA database_list").fetchone()[2], \
            db.ctx, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="edgegate-heartbeat", daemon=True)

    def _beat(self) -> None:
        db = open_state(self.db_path, migrate=False, ctx=self.ctx)
        try:
            while not self._stop.wait(self.every_s):
                db["runs"].update(self.run_id, {"heartbeat_at": db.now()})
        finally:
            db.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.every_s + 1)


def get_run(db: sqlite_utils.Database, run_id: str) -> dict:
    """A run row by id (a unique prefix works); NotFound otherwise, InvalidInput naming the matches when the
    prefix is ambiguous."""
    if not run_id:
        raise InvalidInput("no run id given")
    row = next(iter(db["runs"].rows_where("id = ?", [run_id])), None)
    if row is None:  # a prefix: a range of the primary key, compared literally (no LIKE wildcards)
        matches = sorted(db["runs"].rows_where("id >= ? and id < ?", [run_id, run_id + "\U0010ffff"], limit=6),
                         key=lambda r: r["created_at"] or "", reverse=True)  # newest first, as `runs list`
        if len(matches) > 1:
            shown = ", ".join(m["id"] for m in matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise InvalidInput(f"run id prefix {run_id!r} is ambiguous: it matches {shown}",
                               hint="give more of the run id (see `edgegate runs list`)")
        row = matches[0] if matches else None
    if row is None:
        raise NotFound(f"no run {run_id!r} in this home", hint="list runs with `edgegate runs list`")
    return row


def list_runs(db: sqlite_utils.Database, *, pipeline: str | None = None, limit: int = 20) -> list[dict]:
    where, args = ("pipeline = ?", [pipeline]) if pipeline else (None, [])
    return list(db["runs"].rows_where(where, args, order_by="created_at desc", limit=limit))


def run_events(db: sqlite_utils.Database, run_id: str) -> list[dict]:
    return list(db["run_events"].rows_where("run_id = ?", [run_id], order_by="id"))
