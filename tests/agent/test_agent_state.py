"""state.json: replaced whole (write-temp, fsync, rename), pruned, and refused when unreadable or newer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from edgegate_cli.agent.state import (
    KEEP_DEPLOYMENTS,
    StateFile,
    empty_state,
    in_flight,
    prune,
    record_refusal,
    utc_text,
)
from edgegate_cli.errors import InvalidInput, StateTooNew

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_missing_file_is_an_empty_state_and_save_round_trips(tmp_path):
    store = StateFile(tmp_path / "state")
    doc = store.load()
    assert doc == empty_state() and (tmp_path / "state").is_dir()
    doc["highest"]["quickstart"] = "1.1.0"
    store.save(doc)
    assert StateFile(tmp_path / "state").load()["highest"] == {"quickstart": "1.1.0"}
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["state.json"]  # no temp file left


def test_a_failed_save_leaves_the_old_state(tmp_path):
    """The new state is written aside and renamed: a value that cannot be written changes nothing."""
    store = StateFile(tmp_path)
    store.save({**empty_state(), "highest": {"a": "1.0.0"}})
    with pytest.raises(ValueError):
        store.save({**empty_state(), "highest": {"a": float("nan")}})
    assert store.load()["highest"] == {"a": "1.0.0"}


def test_unreadable_and_newer_states_are_refused(tmp_path):
    (tmp_path / "state.json").write_text("{half")
    with pytest.raises(InvalidInput, match=r"state.json: not valid JSON"):
        StateFile(tmp_path).load()
    (tmp_path / "state.json").write_text(json.dumps({"state_format": 2}))
    with pytest.raises(StateTooNew, match=r"state format 2 is newer than this agent's \(1\)"):
        StateFile(tmp_path).load()
    (tmp_path / "state.json").write_text("[]")
    with pytest.raises(InvalidInput, match="not an agent state file"):
        StateFile(tmp_path).load()


def test_prune_drops_old_nonces_and_old_deployments_but_not_in_flight_ones():
    doc = empty_state()
    doc["nonces"] = {"old": utc_text(datetime(2026, 6, 1, 11, 59, tzinfo=UTC)), "new": utc_text(NOW.replace(hour=13))}
    doc["deployments"] = [{"id": "stuck", "status": "staging"}] + [
        {"id": f"d{i}", "status": "active"} for i in range(KEEP_DEPLOYMENTS + 5)]
    prune(doc, NOW)
    assert list(doc["nonces"]) == ["new"]
    assert len(doc["deployments"]) == KEEP_DEPLOYMENTS + 1 and in_flight(doc)["id"] == "stuck"


def test_refusals_are_counted_and_the_recent_ones_kept():
    doc = empty_state()
    for i in range(25):
        record_refusal(doc, "REPLAY" if i % 2 else "DOWNGRADE", f"m{i}", NOW)
    assert doc["refusals"] == {"DOWNGRADE": 13, "REPLAY": 12}
    assert [r["message"] for r in doc["recent_refusals"]] == [f"m{i}" for i in range(5, 25)]


def test_agent_commit_adopts_a_change_only_once_it_is_durable(tmp_path):
    """Agent.commit applies a change to a copy: when the write fails, the state in memory is unchanged
    too (no 'active in memory, old on disk' split)."""
    from edgegate_cli.agent.config import AgentConfig
    from edgegate_cli.agent.runtime import Agent
    from edgegate_cli.context import Clock, Context

    cfg = AgentConfig(source=tmp_path / "agent.toml", device_id="d", device_type="t", state_dir=tmp_path / "state",
                      tls_cert=tmp_path / "c", tls_key=tmp_path / "k", client_ca=tmp_path / "ca", trusted_keys={})
    agent = Agent(cfg, Context(clock=Clock(now_fn=lambda: NOW)))
    agent.commit(lambda draft: draft["highest"].update(a="1.0.0"))
    with pytest.raises(ValueError):
        agent.commit(lambda draft: draft["highest"].update(a=float("nan")))
    assert agent.state["highest"] == {"a": "1.0.0"}
    assert StateFile(cfg.state_dir).load()["highest"] == {"a": "1.0.0"}
