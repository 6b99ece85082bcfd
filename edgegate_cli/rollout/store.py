"""A rollout's persisted state (migration m010_rollouts): the rollout row, its targets (snapshotted at
start), stages, events, and the advance lease.

Every transition is written (and committed) before the network call that depends on it. The lease is a
row (owner, expires_at) taken under BEGIN IMMEDIATE: a second advancer sees a live lease of another owner
and leaves (LeaseHeld); an expired lease (a killed advancer) is taken over.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from contextlib import contextmanager
from datetime import datetime, timedelta

from ..context import format_utc
from ..errors import EdgeGateError, ExitCode, NotFound

LEASE_S = 300.0
RUNNING = ("pushing", "baking", "rolling_back")
FINISHED = ("completed", "rolled_back", "aborted", "failed")


class LeaseHeld(EdgeGateError):
    code = "LEASE_HELD"
    exit_code = ExitCode.OK  # another advancer is on it: nothing to do, not an error for cron


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def event(db, rollout_id: str, kind: str, at: str, **detail) -> None:
    db["rollout_events"].insert({"rollout_id": rollout_id, "at": at, "kind": kind, "detail_json": dumps(detail)})


def get_rollout(db, rollout_id: str) -> dict:
    rows = list(db.query("SELECT * FROM rollouts WHERE id = ?", [rollout_id]))
    if not rows or not rows[0]["plan_json"]:
        raise NotFound(f"rollout {rollout_id} is not in this home", hint="see `edgegate rollout list`")
    return rows[0]


def targets(db, rollout_id: str, stage: int | None = None) -> list[dict]:
    sql, args = "SELECT * FROM rollout_targets WHERE rollout_id = ?", [rollout_id]
    if stage is not None:
        sql, args = sql + " AND stage = ?", [*args, stage]
    return list(db.query(sql + " ORDER BY stage, rank", args))


def stage_row(db, rollout_id: str, stage: int) -> dict:
    return next(db.query("SELECT * FROM rollout_stages WHERE rollout_id = ? AND stage = ?", [rollout_id, stage]))


def set_rollout(db, rollout_id: str, at: str, **fields) -> None:
    db["rollouts"].update(rollout_id, {**fields, "updated_at": at})


def set_target(db, rollout_id: str, device_id: str, at: str, **fields) -> None:
    db["rollout_targets"].update((rollout_id, device_id), {**fields, "updated_at": at})


def set_stage(db, rollout_id: str, stage: int, **fields) -> None:
    db["rollout_stages"].update((rollout_id, stage), fields)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@contextmanager
def lease(db, rollout_id: str, now: datetime, owner: str, seconds: float = LEASE_S):
    """Hold the advance lease of `rollout_id` for the block (LeaseHeld if another live owner has it).
    The lease is released at the end; a killed holder's lease expires after `seconds`."""
    expires = format_utc(now + timedelta(seconds=seconds))
    with db.atomic():  # BEGIN IMMEDIATE: read and take in one write transaction
        rows = list(db.query("SELECT * FROM rollout_leases WHERE rollout_id = ?", [rollout_id]))
        if rows and rows[0]["owner"] != owner and rows[0]["expires_at"] > format_utc(now):
            raise LeaseHeld(f"rollout {rollout_id} is being advanced by {rows[0]['owner']} (lease until "
                            f"{rows[0]['expires_at']})", hint="nothing to do: the other advancer continues")
        db["rollout_leases"].upsert({"rollout_id": rollout_id, "owner": owner, "expires_at": expires},
                                    pk="rollout_id")
    try:
        yield
    finally:
        with db.atomic():
            db.execute("DELETE FROM rollout_leases WHERE rollout_id = ? AND owner = ?", [rollout_id, owner])
