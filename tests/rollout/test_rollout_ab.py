"""A/B with real agents: two disjoint equal cohorts, A on qs@1.1.0 and B on qs@1.2.0, each analysed;
every agent ends on its cohort's release. And `rollout abort` of a baking canary: rolled back, exit 1."""

from __future__ import annotations

import json

from .test_rollout_done_when import DEVICES, advance_until_finished, fleet_factory  # noqa: F401


def test_ab_two_cohorts_two_releases(invoke, fleet_factory, tmp_path):  # noqa: F811
    from agent.models import linear_bytes

    fleet = fleet_factory()
    model = tmp_path / "model-1.2.0.onnx"
    model.write_bytes(linear_bytes(3))
    invoke("publish", model, "--name", "qs", "--version", "1.2.0", "--force")
    plan = json.loads(invoke("rollout", "start", "qs@1.1.0", "--strategy", "ab", "--release-b", "qs@1.2.0",
                             "--bake", "2", "--max-bake", "30", "--id", "ro-ab", "--json").stdout)
    a, b = (set(s["devices"]) for s in plan["stages"])
    assert len(a) == len(b) == 2 and not a & b
    code, doc = advance_until_finished(invoke, "ro-ab")
    assert (code, doc["status"]) == (0, "completed")
    reports = fleet.reports()
    assert {reports[d] for d in a} == {fleet.r2.identity}
    assert len({reports[d] for d in b}) == 1 and reports[next(iter(b))] not in (fleet.r1.identity, fleet.r2.identity)
    assert [s["outcome"] for s in json.loads(invoke("rollout", "explain", "ro-ab", "--json").stdout)["stages"]] == \
        ["pass", "pass"]


def test_abort_rolls_the_canary_back(invoke, fleet_factory):  # noqa: F811
    fleet = fleet_factory()
    invoke("rollout", "start", "qs@1.1.0", "--strategy", "canary", "--canary", "50", "--bake", "600",
           "--id", "ro-abort")
    assert json.loads(invoke("rollout", "advance", "ro-abort", "--json").stdout)["rollouts"][0]["status"] == "baking"
    assert json.loads(invoke("rollout", "pause", "ro-abort", "--json").stdout)["paused"] is True
    assert json.loads(invoke("rollout", "abort", "ro-abort", "--json").stdout)["status"] == "rolling_back"
    doc = json.loads(invoke("rollout", "advance", "ro-abort", "--json", expect=1).stdout)["rollouts"][0]
    assert (doc["status"], doc["reason"]) == ("rolled_back", "ABORTED")
    assert fleet.reports() == {d: fleet.r1.identity for d in DEVICES}
    invoke("rollout", "resume", "ro-abort", expect=2)  # finished: nothing to resume
