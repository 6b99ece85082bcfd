"""Plans without agents: deterministic cohorts, every strategy's stages, and the refusals at plan time
(a filter matching no device, a stage rounding to 0 devices, a release not yet published)."""

from __future__ import annotations

import json

from edgegate_cli.rollout.plan import cohort_order

from .helpers import publish_releases


def register_fake(home, n: int, regions: dict[str, str] | None = None) -> None:
    """n devices (addresses never dialled: plan sends nothing)."""
    from edgegate_cli.fleet.devices import Device, upsert_device
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace(Home(home, "--home"))
    for i in range(n):
        upsert_device(ws.db, Device(device_id=f"dev-{i:02d}", address=f"https://127.0.0.1:{9000 + i}",
                                    device_type="board", region=(regions or {}).get(f"dev-{i:02d}"), tags={},
                                    active_release=None, previous_release=None, last_seen=None))


def plan(invoke, *args, expect=0):
    result = invoke("rollout", "plan", "qs@1.1.0", *args, "--json", expect=expect)
    return json.loads(result.stdout if expect == 0 else result.stdout or result.stderr)


def test_cohorts_are_deterministic_and_stages_cut_in_order(invoke, tmp_path, fresh_home):
    publish_releases(invoke, tmp_path)
    register_fake(fresh_home, 20)
    a = plan(invoke, "--strategy", "progressive", "--steps", "10,50", "--id", "ro-a")
    assert a == plan(invoke, "--strategy", "progressive", "--steps", "10,50", "--id", "ro-a")
    order = cohort_order("ro-a", [f"dev-{i:02d}" for i in range(20)])
    assert [s["devices"] for s in a["stages"]] == [order[:2], order[2:10], order[10:]]
    b = plan(invoke, "--strategy", "progressive", "--steps", "10,50", "--id", "ro-b")
    assert [s["devices"] for s in b["stages"]] != [s["devices"] for s in a["stages"]]
    assert [len(s["devices"]) for s in plan(invoke, "--strategy", "direct", "--id", "x")["stages"]] == [20]
    ab = plan(invoke, "--strategy", "ab", "--release-b", "qs@1.0.0", "--id", "x")["stages"]
    assert [len(s["devices"]) for s in ab] == [10, 10] and not set(ab[0]["devices"]) & set(ab[1]["devices"])
    # plan changes nothing
    assert json.loads(invoke("rollout", "list", "--json").stdout) == {"rollouts": []}


def test_regional_stages_follow_the_region_order(invoke, tmp_path, fresh_home):
    publish_releases(invoke, tmp_path)
    register_fake(fresh_home, 6, {f"dev-0{i}": "eu" if i < 2 else "us" for i in range(6)})
    stages = plan(invoke, "--strategy", "regional", "--regions", "us,eu", "--id", "r")["stages"]
    assert [(s["region"], len(s["devices"])) for s in stages] == [("us", 4), ("eu", 2)]
    stages = plan(invoke, "--strategy", "regional", "--regions", "us,eu", "--region-canary", "50",
                  "--id", "r")["stages"]
    assert [(s["name"], len(s["devices"])) for s in stages] == [("us canary", 2), ("us", 2), ("eu canary", 1),
                                                                 ("eu", 1)]


def test_refusals_at_plan_time(invoke, tmp_path, fresh_home):
    publish_releases(invoke, tmp_path)
    register_fake(fresh_home, 4)
    result = invoke("rollout", "plan", "qs@1.1.0", "--canary", "10", expect=2)
    assert "stage 10% of 4 device(s) rounds to 0 devices" in result.stderr
    result = invoke("rollout", "start", "qs@1.1.0", "--target", "region=nowhere", expect=2)
    assert "matches no device in the fleet" in result.stderr
    result = invoke("rollout", "start", "qs@9.9.9", expect=2)
    assert "release qs@9.9.9 is not in this home" in result.stderr
    result = invoke("rollout", "advance", expect=2)
    assert "give a rollout ID or --all" in result.stderr
    assert json.loads(invoke("rollout", "list", "--json").stdout) == {"rollouts": []}


def test_an_abort_during_an_advance_is_never_overwritten(invoke, tmp_path, fresh_home):
    """`rollout abort` writes without the advance lease; an advance that read the rollout before the abort must
    not commit its own transition over it (it finds rolling_back and rolls back instead)."""
    from datetime import UTC, datetime

    from edgegate_cli.rollout import ops
    from edgegate_cli.rollout import store as st
    from edgegate_cli.rollout.engine import _Advancer
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    publish_releases(invoke, tmp_path)
    register_fake(fresh_home, 4)
    invoke("rollout", "start", "qs@1.1.0", "--strategy", "direct", "--id", "ro-steer")
    ws = open_workspace(Home(fresh_home, "--home"))
    advancer = _Advancer(ws, "ro-steer", datetime.now(UTC), lambda _t: None, None)  # read: pushing
    ops.abort(ws, "ro-steer")
    assert advancer.transition(lambda: st.set_rollout(ws.db, "ro-steer", ws.db.now(), status="baking")) is False
    assert (st.get_rollout(ws.db, "ro-steer")["status"], advancer.row["status"]) == ("rolling_back", "rolling_back")
    fresh = _Advancer(ws, "ro-steer", datetime.now(UTC), lambda _t: None, None)
    assert fresh.transition(lambda: st.set_rollout(ws.db, "ro-steer", ws.db.now(), reason="ABORTED")) is True
