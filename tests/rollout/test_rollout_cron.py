"""Cron-style: `rollout start`, then repeated `rollout advance --now ...` (a test clock) drive a
progressive rollout to completion — surviving a kill -9 of one advance mid-push (its lease expires on the
test clock; the next advance resumes without re-pushing a device) — and two advances at once never
double-push."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from .test_rollout_done_when import DEVICES, fleet_factory  # noqa: F401  (fixture)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def advance_proc(home, rollout_id: str, now: datetime) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgegate_cli.cli", "--home", str(home), "rollout", "advance",
                             rollout_id, "--now", iso(now), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_state(home, rollout_id: str, state: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(home / "state.db", timeout=10) as db:
            if db.execute("SELECT 1 FROM rollout_targets WHERE rollout_id = ? AND state = ?",
                          [rollout_id, state]).fetchone():
                return
        time.sleep(0.01)
    raise AssertionError(f"no target of {rollout_id} reached {state} within {timeout} s")


def test_cron_progressive_survives_kill9(invoke, fleet_factory, fresh_home):  # noqa: F811
    fleet = fleet_factory()
    t0 = datetime.now(UTC)
    invoke("rollout", "start", "qs@1.1.0", "--strategy", "progressive", "--steps", "25,50", "--bake", "600",
           "--max-bake", "3600", "--id", "ro-cron")
    # an advance killed -9 while it pushes stage 0: its device is marked `pushing`, its lease is held
    proc = advance_proc(fresh_home, "ro-cron", t0)
    wait_for_state(fresh_home, "ro-cron", "pushing")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=15)  # reaps it and closes its pipes
    # within the lease (5 min on the test clock) another advance leaves it alone
    held = json.loads(invoke("rollout", "advance", "ro-cron", "--now", iso(t0 + timedelta(minutes=1)),
                             "--json").stdout)["rollouts"][0]
    assert held["lease_held_by"] and held["actions"] == []
    # cron keeps calling; the clock moves past the lease, then past each bake (traffic flows meanwhile)
    clock, statuses = t0 + timedelta(minutes=6), []
    for _ in range(12):
        doc = json.loads(invoke("rollout", "advance", "--all", "--now", iso(clock), "--json").stdout)
        if not doc["rollouts"]:
            break
        statuses.append(doc["rollouts"][0]["status"])
        time.sleep(1.0)  # real inferences for the bake window
        clock += timedelta(minutes=11)
    status = json.loads(invoke("rollout", "status", "ro-cron", "--json").stdout)
    assert status["status"] == "completed", (statuses, status)
    assert fleet.reports() == {d: fleet.r2.identity for d in DEVICES}
    # nobody was pushed twice: each agent swapped in 1.0.0 and then 1.1.0 exactly once
    assert [fleet.deploy_swaps(a) for a in fleet.agents] == [2.0] * 4
    explain = json.loads(invoke("rollout", "explain", "ro-cron", "--json").stdout)
    assert [s["outcome"] for s in explain["stages"]] == ["pass", "pass", "pass"]


def test_two_advances_at_once_never_double_push(invoke, fleet_factory, fresh_home):  # noqa: F811
    fleet = fleet_factory()
    invoke("rollout", "start", "qs@1.1.0", "--strategy", "direct", "--bake", "600", "--id", "ro-twice")
    now = datetime.now(UTC)
    procs = [advance_proc(fresh_home, "ro-twice", now) for _ in range(2)]
    docs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        docs.append(json.loads(out)["rollouts"][0])
    pushed = [d for d in docs if any(a.startswith("pushed stage 0") for a in d["actions"])]
    assert len(pushed) == 1, docs  # the other found the lease held, or found the stage already pushed
    assert fleet.reports() == {d: fleet.r2.identity for d in DEVICES}
    assert [fleet.deploy_swaps(a) for a in fleet.agents] == [2.0] * 4
