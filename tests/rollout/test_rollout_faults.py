"""Faults with real agents: an agent killed mid-rollout (timed_out, counted, the rollout still ends); a
device that refuses (rejected with the agent's code); a canary with no traffic (inconclusive, then
INCONCLUSIVE_TIMEOUT at max_bake: rolled back, never promoted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from edgegate_cli.rollout.plan import cohort_order

from .test_rollout_cron import iso
from .test_rollout_done_when import DEVICES, advance_until_finished, fleet_factory  # noqa: F401


def test_agent_killed_mid_rollout_is_timed_out_and_the_rollout_ends(invoke, fleet_factory):  # noqa: F811
    fleet = fleet_factory()
    order = cohort_order("ro-kill", DEVICES)
    invoke("rollout", "start", "qs@1.1.0", "--strategy", "canary", "--canary", "25", "--bake", "2",
           "--max-bake", "30", "--id", "ro-kill", "--device-timeout", "5", "--retries", "1")
    first = json.loads(invoke("rollout", "advance", "ro-kill", "--json").stdout)["rollouts"][0]
    assert first["status"] == "baking"  # the canary is on 1.1.0
    victim = next(a for a in fleet.agents if a.device_id == order[-1])
    victim.kill9()
    code, doc = advance_until_finished(invoke, "ro-kill")
    assert (code, doc["status"]) == (0, "completed")
    status = json.loads(invoke("rollout", "status", "ro-kill", "--json").stdout)
    states = {t["device_id"]: (t["state"], t["code"]) for t in status["targets"]}
    assert states[order[-1]] == ("timed_out", "UNREACHABLE") and status["devices"] == {"succeeded": 3, "timed_out": 1}
    fleet.agents.remove(victim)
    assert set(fleet.reports().values()) == {fleet.r2.identity}


def test_a_refusing_device_is_rejected_with_its_code(invoke, fleet_factory, pki):  # noqa: F811
    fleet = fleet_factory(untrusting={"dev-2"})
    invoke("rollout", "start", "qs@1.1.0", "--strategy", "direct", "--bake", "2", "--max-bake", "30",
           "--id", "ro-refuse")
    code, doc = advance_until_finished(invoke, "ro-refuse")
    assert (code, doc["status"]) == (0, "completed"), invoke("rollout", "explain", "ro-refuse").stdout
    status = json.loads(invoke("rollout", "status", "ro-refuse", "--json").stdout)
    target = next(t for t in status["targets"] if t["device_id"] == "dev-2")
    assert (target["state"], target["code"]) == ("rejected", "KEY_UNTRUSTED")
    reports = fleet.reports()
    assert reports.pop("dev-2") == fleet.r1.identity and set(reports.values()) == {fleet.r2.identity}


def test_a_canary_without_traffic_times_out_inconclusive_and_is_never_promoted(invoke, fleet_factory):  # noqa: F811
    fleet = fleet_factory(traffic=False)
    t0 = datetime.now(UTC)
    invoke("rollout", "start", "qs@1.1.0", "--strategy", "canary", "--canary", "25", "--bake", "60",
           "--max-bake", "120", "--id", "ro-quiet")
    steps = []
    for minutes in (0, 1.5, 2.5):
        result = invoke("rollout", "advance", "ro-quiet", "--now", iso(t0 + timedelta(minutes=minutes)), "--json",
                        expect=None)
        steps.append((result.exit_code, json.loads(result.stdout)["rollouts"][0]))
    assert [(c, d["status"]) for c, d in steps] == [(0, "baking"), (0, "baking"), (1, "rolled_back")]
    assert "analysis: inconclusive (NO_DATA)" in " ".join(steps[1][1]["actions"])
    assert steps[2][1]["reason"] == "INCONCLUSIVE_TIMEOUT"
    assert fleet.reports() == {d: fleet.r1.identity for d in DEVICES}
