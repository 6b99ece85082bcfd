"""Runs: the persisted state machine, one active run per home, abandoned runs reaped (SPEC §2, §5)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgegate_cli.errors import RunActive
from edgegate_cli.store.runs import active_run, create_run, get_run, reap_abandoned, run_events, transition
from edgegate_cli.store.workspace import open_workspace


def new_run(db, **kw):
    return create_run(db, pipeline="p", pipeline_path="p.yaml", pipeline_sha256="0" * 64, backend="local",
                      devices=["local:cpu"], policy={}, gates=[], **kw)


def test_happy_path_transitions_are_persisted():
    ws = open_workspace()
    run_id = new_run(ws.db)
    for status in ("preparing", "submitting", "running", "collecting", "evaluating", "reporting", "passed"):
        transition(ws.db, run_id, status)
    assert [e["status"] for e in run_events(ws.db, run_id)] == [
        "queued", "preparing", "submitting", "running", "collecting", "evaluating", "reporting", "passed"]
    assert get_run(ws.db, run_id)["finished_at"] is not None


def test_illegal_transitions_are_refused():
    ws = open_workspace()
    run_id = new_run(ws.db)
    with pytest.raises(ValueError, match="illegal transition queued -> running"):
        transition(ws.db, run_id, "running")
    transition(ws.db, run_id, "error", "X", {"error_code": "X"})
    with pytest.raises(ValueError, match="already final"):
        transition(ws.db, run_id, "error")


def test_second_run_fails_fast_naming_the_active_one():
    ws = open_workspace()
    first = new_run(ws.db)
    with pytest.raises(RunActive) as info:
        new_run(ws.db)
    assert first in info.value.message
    assert info.value.hint == "wait for it, or pass --wait to queue behind it"


def test_wait_gives_up_after_its_timeout():
    ws = open_workspace()
    new_run(ws.db)
    with pytest.raises(RunActive):
        new_run(ws.db, wait=True, wait_timeout_s=0.3, poll_s=0.1)


def test_a_run_whose_process_died_is_marked_abandoned():
    ws = open_workspace()
    run_id = new_run(ws.db)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ws.db["runs"].update(run_id, {"pid": int(dead.stdout)})
    assert reap_abandoned(ws.db) == [run_id]
    row = get_run(ws.db, run_id)
    assert (row["status"], row["error_code"]) == ("error", "ABANDONED")
    assert active_run(ws.db) is None
    new_run(ws.db)  # the home is free again


def test_next_command_reaps(invoke):
    ws = open_workspace()
    run_id = new_run(ws.db)
    ws.db["runs"].update(run_id, {"pid": 2**22 + 12345})  # no such pid
    result = invoke("runs", "show", run_id, "--json")
    assert '"error_code": "ABANDONED"' in result.stdout


def test_run_ids_resolve_by_unique_prefix():
    ws = open_workspace()
    run_id = new_run(ws.db)
    assert get_run(ws.db, run_id[:-2])["id"] == run_id


def test_error_details_are_redacted_before_they_are_stored():
    secret = "tok-" + "9f8e7d6c5b4a3f2e1d0c"
    ws = open_workspace()
    ws.ctx.secrets.register(secret)
    run_id = new_run(ws.db)
    transition(ws.db, run_id, "error", f"backend said {secret}", {"error_detail": f"job failed: {secret} bad"})
    row = get_run(ws.db, run_id)
    assert row["error_detail"] == "job failed: *** bad"
    assert run_events(ws.db, run_id)[-1]["detail"] == "backend said ***"
