"""Issue 14's Done-when, with 4 real agents over mutual TLS:
- a canary of a healthy release promotes through every stage to `completed`; every agent reports it;
- a canary whose agent answers slowly (the agent's [testing] inject_latency_ms) is rolled back
  automatically: exit 1, every agent reports the old digest, `rollout explain` shows the numbers."""

from __future__ import annotations

import json
import time

import pytest

from edgegate_cli.rollout.plan import cohort_order

from .helpers import make_fleet, stop_fleet

DEVICES = [f"dev-{i}" for i in range(4)]


@pytest.fixture
def fleet_factory(invoke, tmp_path, pki, fresh_home):
    made, agents = [], []

    def make(**kwargs):
        made.append(make_fleet(invoke, tmp_path, pki, fresh_home, started=agents, **kwargs))
        return made[-1]

    yield make
    for fleet in made:
        stop_fleet(fleet)
    for agent in agents:
        agent.stop()


def advance_until_finished(invoke, rollout_id: str, timeout: float = 90.0) -> tuple[int, dict]:
    """`rollout advance ID` every 0.5 s (the real clock) until the rollout is finished; (exit, status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = invoke("rollout", "advance", rollout_id, "--json", expect=None)
        assert result.exit_code in (0, 1), result.stderr
        doc = json.loads(result.stdout)["rollouts"][0]
        if doc["finished"]:
            return result.exit_code, doc
        time.sleep(0.5)
    raise AssertionError(f"rollout {rollout_id} did not finish within {timeout} s: {doc}")


def test_healthy_canary_promotes_to_completed(invoke, fleet_factory):
    fleet = fleet_factory()
    started = json.loads(invoke("rollout", "start", "qs@1.1.0", "--strategy", "canary", "--canary", "25",
                                "--bake", "2", "--max-bake", "30", "--id", "ro-good", "--json").stdout)
    assert [len(s["devices"]) for s in started["stages"]] == [1, 3]
    code, doc = advance_until_finished(invoke, "ro-good")
    assert (code, doc["status"]) == (0, "completed")
    assert fleet.reports() == {d: fleet.r2.identity for d in DEVICES}
    status = json.loads(invoke("rollout", "status", "ro-good", "--json").stdout)
    assert status["devices"] == {"succeeded": 4}
    assert all(t["reported_sha256"] == fleet.r2.identity for t in status["targets"])
    explain = json.loads(invoke("rollout", "explain", "ro-good", "--json").stdout)
    assert [s["outcome"] for s in explain["stages"]] == ["pass", "pass"]
    canary = explain["stages"][0]["analysis"]["numbers"]
    assert canary["baseline"].startswith("control cohort") and canary["candidate_inferences"] >= 20
    assert all(fleet.deploy_swaps(a) == 2 for a in fleet.agents)  # 1.0.0, then 1.1.0 once


def test_slow_canary_rolls_back_automatically(invoke, fleet_factory):
    canary = cohort_order("ro-slow", DEVICES)[0]  # the device a 25 % canary of ro-slow takes first
    fleet = fleet_factory(slow={canary: 30.0})
    invoke("rollout", "start", "qs@1.1.0", "--strategy", "canary", "--canary", "25", "--bake", "2",
           "--max-bake", "30", "--id", "ro-slow")
    code, doc = advance_until_finished(invoke, "ro-slow")
    assert (code, doc["status"], doc["reason"]) == (1, "rolled_back", "LATENCY_REGRESSION")
    assert fleet.reports() == {d: fleet.r1.identity for d in DEVICES}
    status = json.loads(invoke("rollout", "status", "ro-slow", "--json").stdout)
    states = {t["device_id"]: t["state"] for t in status["targets"]}
    assert states == {d: "rolled_back" if d == canary else "skipped" for d in DEVICES}
    explain = invoke("rollout", "explain", "ro-slow").stdout
    assert "fail (LATENCY_REGRESSION), baseline: control cohort" in explain
    numbers = json.loads(invoke("rollout", "explain", "ro-slow", "--json").stdout)["stages"][0]["analysis"]["numbers"]
    assert numbers["candidate_p50_ms"] > 25 and numbers["baseline_p50_ms"] < 5 and numbers["p_value"] < 0.05
    for line in ("candidate_p50_ms", "baseline_p50_ms", "p_value", "rule latency: median or p90 up > 20%"):
        assert line in explain
