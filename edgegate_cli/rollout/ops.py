"""Reading and steering a rollout: plan (from the fleet), status, list, explain, pause, resume,
promote, abort, retry. Each steering command is one persisted transition (with an event); the network
work it implies is done by the next `advance`."""

from __future__ import annotations

import json
from collections import Counter

from pydantic import BaseModel

from ..errors import InvalidInput
from . import store as st
from .plan import Plan, Rate, Thresholds, build_plan, new_rollout_id


def make_plan(ws, *, release: str, strategy: str, target: str, rollout_id: str | None, bake_s: float,
              max_bake_s: float | None, canary_pct: float, steps: list[float] | None, regions: list[str] | None,
              release_b: str | None, thresholds: Thresholds, rate: Rate,
              region_canary_pct: float | None = None) -> tuple[Plan, list]:
    from ..fleet.devices import list_devices
    from ..fleet.filters import parse_filter
    from ..registry.records import find_release

    row = find_release(ws, release)  # NotFound: a release not yet published
    if release_b:
        find_release(ws, release_b)
    devices = list_devices(ws.db, parse_filter(target))
    plan = build_plan(rollout_id=rollout_id or new_rollout_id(), release=f"{row['name']}@{row['version']}",
                      strategy=strategy, target=target, devices=devices, bake_s=bake_s,
                      max_bake_s=max_bake_s if max_bake_s is not None else max(bake_s * 3, bake_s + 60),
                      canary_pct=canary_pct, steps=steps, regions=regions, release_b=release_b,
                      region_canary_pct=region_canary_pct,
                      thresholds=thresholds, rate=rate)
    return plan, devices


def make_pull_plan(ws, *, release: str, strategy: str, via: str, channel: str | None, rollout_id: str | None,
                   bake_s: float, max_bake_s: float | None, canary_pct: float, steps: list[float] | None,
                   thresholds: Thresholds, rate: Rate) -> Plan:
    """A plan over the pull path: the devices are those reporting on the channel under `via` (their
    status reports), placed by sha256(rollout id ‖ device id). Raises NotFound, Store* errors, and
    build_pull_plan's refusals."""
    from ..registry.manifests import read_manifest
    from ..registry.records import find_release
    from .plan import build_pull_plan
    from .pull_engine import open_channel_store
    from .reports import read_reports

    row = find_release(ws, release)
    channel = channel or read_manifest(ws, row)[2].channel
    ref = f"{row['name']}@{row['version']}"
    rollout_id = rollout_id or new_rollout_id()
    probe = Plan(rollout_id=rollout_id, release=ref, strategy=strategy, target="", bake_s=0, max_bake_s=0,
                 stages=[], device_count=0, via=via, channel=channel)
    store, location = open_channel_store(probe)
    reports = read_reports(store, location, channel)
    return build_pull_plan(rollout_id=rollout_id, release=ref, strategy=strategy, via=location.url(),
                           channel=channel, devices=sorted(reports.devices), bake_s=bake_s,
                           max_bake_s=max_bake_s if max_bake_s is not None else max(bake_s * 3, bake_s + 60),
                           canary_pct=canary_pct, steps=steps, thresholds=thresholds, rate=rate)


class RolloutStatus(BaseModel):
    id: str
    release: str
    strategy: str
    status: str
    stage: int | None
    stages: int
    paused: bool
    reason: str | None
    numbers: dict | None
    created_at: str
    finished_at: str | None
    devices: dict[str, int]
    targets: list[dict]
    stage_rows: list[dict]


def status(db, rollout_id: str) -> RolloutStatus:
    row = st.get_rollout(db, rollout_id)
    targets = st.targets(db, rollout_id)
    stages = list(db.query("SELECT * FROM rollout_stages WHERE rollout_id = ? ORDER BY stage", [rollout_id]))
    for s in stages:
        s["analysis"] = json.loads(s.pop("analysis_json") or "null")
        s.pop("snapshot_json", None)
    return RolloutStatus(
        id=row["id"], release=row["release"], strategy=row["strategy"], status=row["status"], stage=row["stage"],
        stages=len(stages), paused=bool(row["paused"]), reason=row["reason"],
        numbers=json.loads(row["numbers_json"]) if row["numbers_json"] else None, created_at=row["created_at"],
        finished_at=row["finished_at"], devices=dict(Counter(t["state"] for t in targets)),
        targets=[{k: t[k] for k in ("device_id", "stage", "release", "state", "code", "message", "reported_sha256")}
                 for t in targets], stage_rows=stages)


def list_rollouts(db) -> list[dict]:
    return [{k: r[k] for k in ("id", "release", "strategy", "status", "stage", "created_at", "finished_at")}
            for r in db.query("SELECT * FROM rollouts WHERE plan_json IS NOT NULL ORDER BY created_at DESC, id")]


def explain(db, rollout_id: str) -> dict:
    s = status(db, rollout_id)
    plan = Plan.model_validate_json(st.get_rollout(db, rollout_id)["plan_json"])
    return {"id": s.id, "status": s.status, "reason": s.reason, "numbers": s.numbers,
            "thresholds": plan.thresholds.model_dump(), "bake_s": plan.bake_s, "max_bake_s": plan.max_bake_s,
            "stages": [{"stage": r["stage"], "name": r["name"], "status": r["status"], "outcome": r["outcome"],
                        "analysis": r["analysis"]} for r in s.stage_rows]}


def _steer(ws, rollout_id: str, kind: str, allowed: tuple[str, ...], **fields) -> RolloutStatus:
    db, now = ws.db, ws.db.now()
    with db.atomic():
        row = st.get_rollout(db, rollout_id)
        if row["finished_at"] or row["status"] not in allowed:
            raise InvalidInput(f"rollout {rollout_id} is {row['status']}; {kind} applies to "
                               f"{' or '.join(allowed)} rollouts", field="ID")
        if kind == "promote":
            stage = row["stage"]
            last = stage == len(Plan.model_validate_json(row["plan_json"]).stages) - 1
            st.set_stage(db, rollout_id, stage, status="passed", outcome="promoted", finished_at=now)
            fields = {"status": "completed", "finished_at": now, "reason": "PROMOTED"} if last else \
                {"status": "pushing", "stage": stage + 1}
        if kind == "retry":
            for t in st.targets(db, rollout_id, row["stage"]):
                if t["state"] in ("failed", "rejected", "timed_out"):
                    st.set_target(db, rollout_id, t["device_id"], now, state="pending")
        st.set_rollout(db, rollout_id, now, **fields)
        st.event(db, rollout_id, kind, now, **fields)
    return status(db, rollout_id)


def pause(ws, rid): return _steer(ws, rid, "pause", ("pushing", "baking"), paused=1)
def resume(ws, rid): return _steer(ws, rid, "resume", ("pushing", "baking"), paused=0)


def promote(ws, rid):
    row = st.get_rollout(ws.db, rid)
    plan = Plan.model_validate_json(row["plan_json"])
    if plan.via and row["status"] == "baking" and not row["finished_at"] and row["stage"] == len(plan.stages) - 1:
        from .pull_engine import complete_on_channel  # the last pull stage: the release becomes current now

        complete_on_channel(ws, plan)
    return _steer(ws, rid, "promote", ("baking",))


def retry(ws, rid):
    if Plan.model_validate_json(st.get_rollout(ws.db, rid)["plan_json"]).via:
        raise InvalidInput(f"rollout {rid} runs over the pull path: an agent that refused the release tries again "
                           "when the channel changes", field="ID", hint="fix the cause, then abort and start a "
                                                                        "new rollout")
    return _steer(ws, rid, "retry", ("pushing", "baking"))


def abort(ws, rid):
    return _steer(ws, rid, "abort", ("pushing", "baking", "rolling_back"), status="rolling_back",
                  reason="ABORTED", numbers_json=st.dumps({"by": "rollout abort"}))
