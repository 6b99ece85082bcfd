"""`rollout start` and the push path's advancer: the persisted state machine (SPEC §10.4); `advance.py`
takes the lease and picks this advancer or the pull path's (pull_engine.py).

    pushing --(stage's devices pushed, abort criteria ok)--> baking
    baking  --(bake elapsed, analysis pass)--> pushing next stage | completed
            --(analysis inconclusive before max_bake)--> baking (wait)
            --(fail, INCONCLUSIVE_TIMEOUT at max_bake, errors in a row, abort criteria)--> rolling_back
    rolling_back --(every device that has or may have the new release reports the previous one)--> rolled_back

`advance` takes the lease, then makes transitions until it must wait (a bake) or the rollout ends. Each
transition is committed before the network call that depends on it: a device is marked `pushing` before
its push, `rolling_back` (with reason and numbers) is written before any directive is sent — so an advance
killed at any point is resumed by the next one, which re-checks what the agents report.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timedelta

from pydantic import BaseModel

from ..context import format_utc
from ..errors import InvalidInput
from . import store as st
from .analysis import judge, merge, parse_metrics, window
from .plan import Plan, Thresholds
from .push import Payload, push_device, rollback_device
from .wire import gather_bounded, open_client

FAILED_PUSH = ("failed", "rejected", "timed_out")


class AdvanceResult(BaseModel):
    rollout_id: str
    status: str
    stage: int | None
    actions: list[str]
    reason: str | None = None
    finished: bool = False
    lease_held_by: str | None = None


def _parse(text: str) -> datetime:
    from ..evidence.dsse import parse_utc

    return parse_utc(text, what="time")


def load_payload(ws, release: str, rollout_id: str) -> Payload:
    from ..registry.manifests import read_manifest
    from ..registry.records import find_release

    row = find_release(ws, release)
    _, envelope, manifest = read_manifest(ws, row)
    blobs = [(f.sha256, f.size) for f in manifest.files]
    if manifest.reference:
        blobs += [(manifest.reference[s]["sha256"], manifest.reference[s]["size"]) for s in ("inputs", "outputs")]
    return Payload(rollout_id, f"{row['name']}@{row['version']}", manifest.identity, envelope,
                   tuple((d, str(ws.cas.path_of(d)), size) for d, size in blobs))


def start_rollout(ws, plan: Plan, devices: list) -> AdvanceResult:
    """Store the plan and its target snapshot (status pushing, stage 0). Nothing is sent yet."""
    payload = load_payload(ws, plan.release, plan.rollout_id)  # NotFound for an unpublished release
    for stage in plan.stages:
        if stage.release:
            load_payload(ws, stage.release, plan.rollout_id)
    by_id, db, now = {d.device_id: d for d in devices}, ws.db, ws.db.now()
    actives = [d.active_release for d in devices if d.active_release]
    with db.atomic():
        if list(db.query("SELECT id FROM rollouts WHERE id = ?", [plan.rollout_id])):
            raise InvalidInput(f"rollout {plan.rollout_id} already exists", field="--id")
        db["rollouts"].insert({"id": plan.rollout_id, "release": payload.release, "status": "pushing",
                               "rollback_release": max(set(actives), key=actives.count) if actives else None,
                               "created_at": now, "strategy": plan.strategy, "plan_json": plan.model_dump_json(),
                               "stage": 0, "paused": 0, "updated_at": now, "identity": payload.identity})
        for stage in plan.stages:
            db["rollout_stages"].insert({"rollout_id": plan.rollout_id, "stage": stage.index, "name": stage.name,
                                         "status": "pending", "errors_in_row": 0})
            for rank, device_id in enumerate(stage.devices):
                db["rollout_targets"].insert({
                    "rollout_id": plan.rollout_id, "device_id": device_id, "address": by_id[device_id].address,
                    "stage": stage.index, "rank": rank, "release": stage.release or payload.release,
                    "state": "pending", "attempts": 0, "updated_at": now})
        st.event(db, plan.rollout_id, "started", now, release=payload.release, devices=plan.device_count)
    return AdvanceResult(rollout_id=plan.rollout_id, status="pushing", stage=0, actions=["started"])


class _Device:  # what the agent client needs of a target row
    def __init__(self, row: dict):
        self.device_id, self.address = row["device_id"], row["address"]


class _Advancer:
    def __init__(self, ws, rollout_id, now, progress, signer):
        self.ws, self.db, self.id, self.now, self.progress, self.signer = ws, ws.db, rollout_id, now, progress, signer
        self.iso = format_utc(now)
        self.actions: list[str] = []
        self.row = st.get_rollout(self.db, rollout_id)
        self.plan = Plan.model_validate_json(self.row["plan_json"])

    def reload(self) -> None:
        self.row = st.get_rollout(self.db, self.id)

    def commit(self, fn) -> None:
        with self.db.atomic():
            fn()
        self.reload()

    def transition(self, fn) -> bool:
        """Commit `fn` only if nobody steered the rollout since this advance read it (`rollout abort` or
        `pause` write without the lease, so an abort during a long push is never overwritten). False when
        skipped; the advance then continues from the state it finds."""
        seen = (self.row["status"], self.row["paused"], self.row["stage"])
        with self.db.atomic():
            now = st.get_rollout(self.db, self.id)
            applied = (now["status"], now["paused"], now["stage"]) == seen and not now["finished_at"]
            if applied:
                fn()
        self.reload()
        return applied

    def result(self) -> AdvanceResult:
        return AdvanceResult(rollout_id=self.id, status=self.row["status"], stage=self.row["stage"],
                             actions=self.actions, reason=self.row["reason"],
                             finished=self.row["finished_at"] is not None)

    def run(self) -> AdvanceResult:
        for _ in range(2 * len(self.plan.stages) + 4):
            status = self.row["status"]
            if self.row["finished_at"] or (self.row["paused"] and status != "rolling_back"):
                break
            if status == "pushing":
                self.push_stage()
            elif status == "baking":
                if not self.bake():
                    break
            elif status == "rolling_back":
                self.roll_back()
                break
            else:
                break
        return self.result()

    # -- pushing ---------------------------------------------------------------------------------

    def push_stage(self) -> None:
        stage = self.row["stage"]
        rows = [t for t in st.targets(self.db, self.id, stage) if t["state"] in ("pending", "pushing")]
        if rows:
            self.commit(lambda: [st.set_target(self.db, self.id, t["device_id"], self.iso, state="pushing",
                                               attempts=(t["attempts"] or 0) + 1) for t in rows])
            payloads = {t["release"]: None for t in rows}
            generation = next(iter(self.db.query("SELECT count(*) AS n FROM rollout_events WHERE rollout_id = ? "
                                                 "AND kind = 'retry'", [self.id])))["n"]
            for release in payloads:
                payloads[release] = replace(load_payload(self.ws, release, self.id), generation=generation)
            self.progress(f"stage {stage}: pushing {len(rows)} device(s)")
            self._fan_out(rows, lambda client, t: push_device(client, _Device(t), payloads[t["release"]],
                                                               timeout_s=self.plan.rate.device_timeout_s,
                                                               retries=self.plan.rate.retries))
            self.actions.append(f"pushed stage {stage} ({len(rows)} device(s))")
        done = st.targets(self.db, self.id, stage)
        failed = [t for t in done if t["state"] in FAILED_PUSH]
        if self.plan.thresholds.aborts(len(failed), len(done)):
            self.start_rollback("FAILED_ACTIVATIONS", self.activation_numbers(failed, len(done)))
            return
        snapshot = self._snapshot(stage)
        self.transition(lambda: (st.set_stage(self.db, self.id, stage, status="baking", pushed_at=self.iso,
                                          bake_started_at=self.iso, snapshot_json=st.dumps(snapshot)),
                             st.set_rollout(self.db, self.id, self.iso, status="baking"),
                             st.event(self.db, self.id, "baking", self.iso, stage=stage)))

    def activation_numbers(self, failed: list[dict], executed: int) -> dict:
        th = self.plan.thresholds
        return {"failed": len(failed), "executed": executed, "abort_count": th.abort_count, "abort_pct": th.abort_pct,
                "devices": {t["device_id"]: t["code"] for t in failed}}

    def _fan_out(self, rows, make) -> None:
        async def main():
            async with open_client(self.ws, self.plan.rate) as client:
                async def one(t):
                    try:
                        result = await make(client, t)
                    finally:
                        await client.forget(_Device(t))
                    self._record(t, result)
                await gather_bounded([lambda t=t: one(t) for t in rows], self.plan.rate)
        asyncio.run(main())

    def _record(self, t: dict, result: dict) -> None:
        fields = {k: result.get(k) for k in ("state", "code", "message", "reported_sha256")}
        if result.get("previous") is not None:
            fields["previous_json"] = st.dumps(result["previous"])
        if result.get("deployment_id"):
            fields["deployment_id"] = result["deployment_id"]
        with self.db.atomic():
            st.set_target(self.db, self.id, t["device_id"], self.iso, **fields)
            st.event(self.db, self.id, "device", self.iso, device=t["device_id"], **fields)

    # -- baking and analysis -----------------------------------------------------------------------

    def _control(self, stage: int) -> list[dict]:
        return [t for t in st.targets(self.db, self.id) if t["stage"] > stage and t["state"] == "pending"]

    def _metrics(self, rows) -> tuple[dict, list[str]]:
        out, errors = {}, []

        async def main():
            async with open_client(self.ws, self.plan.rate) as client:
                async def one(t):
                    try:
                        out[t["device_id"]] = parse_metrics(await client.metrics(_Device(t)))
                    except Exception as exc:  # unreachable or unreadable: the analysis is `error`
                        errors.append(f"{t['device_id']}: {type(exc).__name__}: {str(exc)[:160]}")
                    finally:
                        await client.forget(_Device(t))
                await gather_bounded([lambda t=t: one(t) for t in rows], self.plan.rate)
        asyncio.run(main())
        return out, errors

    def _snapshot(self, stage: int) -> dict:
        rows = [t for t in st.targets(self.db, self.id, stage) if t["state"] == "succeeded"] + self._control(stage)
        return self._metrics(rows)[0]

    def bake(self) -> bool:
        """Analyse once the bake has elapsed. True when the state changed (the caller continues)."""
        stage = self.row["stage"]
        srow = st.stage_row(self.db, self.id, stage)
        started = _parse(srow["bake_started_at"])
        if self.now < started + timedelta(seconds=self.plan.bake_s):
            left = (started + timedelta(seconds=self.plan.bake_s) - self.now).total_seconds()
            self.actions.append(f"baking stage {stage}: {left:.0f} s left")
            return False
        analysis = self.analyse(stage, json.loads(srow["snapshot_json"] or "{}"))
        timed_out = self.now >= started + timedelta(seconds=self.plan.max_bake_s)
        errors_in_row = (srow["errors_in_row"] or 0) + 1 if analysis["outcome"] == "error" else 0
        outcome = analysis["outcome"]
        if outcome == "inconclusive" and timed_out:
            outcome, analysis["reason"] = "fail", "INCONCLUSIVE_TIMEOUT"
        if outcome == "error" and errors_in_row >= self.plan.thresholds.consecutive_error_limit:
            outcome, analysis["reason"] = "fail", "CONSECUTIVE_ERRORS"
        analysis.update(final_outcome=outcome, analysed_at=self.iso)
        self.commit(lambda: (st.set_stage(self.db, self.id, stage, analysis_json=st.dumps(analysis),
                                          errors_in_row=errors_in_row, outcome=outcome),
                             st.event(self.db, self.id, "analysis", self.iso, stage=stage, **analysis)))
        self.actions.append(f"stage {stage} analysis: {outcome} ({analysis['reason']})")
        if outcome == "fail":
            self.start_rollback(analysis["reason"], analysis["numbers"])
            return True
        if outcome != "pass":
            return False
        last = stage == len(self.plan.stages) - 1
        if last:
            self.on_completed()
        self.transition(lambda: (
            st.set_stage(self.db, self.id, stage, status="passed", finished_at=self.iso),
            st.set_rollout(self.db, self.id, self.iso, **({"status": "completed", "finished_at": self.iso,
                                                            "reason": "COMPLETED"} if last else
                                                           {"status": "pushing", "stage": stage + 1})),
            st.event(self.db, self.id, "completed" if last else "promoted", self.iso, stage=stage)))
        return True

    def on_completed(self) -> None:
        """Called when the last stage passed, before the rollout is marked completed (the pull path makes
        the release the channel's current one here)."""

    def analyse(self, stage: int, snapshot: dict) -> dict:
        release = self.row["release"]
        cand_rows = [t for t in st.targets(self.db, self.id, stage) if t["state"] == "succeeded"]
        control = self._control(stage)
        now_counters, errors = self._metrics(cand_rows + control)
        cand_errors = [e for e in errors if e.split(":")[0] in {t["device_id"] for t in cand_rows}]
        if cand_errors or not cand_rows:  # a stage device that cannot be read is never healthy
            return {"outcome": "error", "reason": "METRICS_UNAVAILABLE",
                    "numbers": {"errors": cand_errors or ["no device of the stage runs the release"]}}
        control = [t for t in control if t["device_id"] in now_counters]  # an unreachable control is left out
        cand = merge([window(now_counters[t["device_id"]], snapshot.get(t["device_id"]), t["release"])
                      for t in cand_rows])  # an A/B stage B pushes its own release
        previous = {t["device_id"]: json.loads(t["previous_json"]) for t in cand_rows if t["previous_json"]}
        ctl = merge([window(now_counters[t["device_id"]], snapshot.get(t["device_id"]), v)
                     for t in control for v in now_counters[t["device_id"]] if v not in (release, t["release"])])
        result = self.judge(cand, ctl, len(control), previous, snapshot)
        result["numbers"]["devices"] = len(cand_rows)
        return result

    def judge(self, cand: dict, ctl: dict, control_devices: int, previous: dict, snapshot: dict) -> dict:
        """Judge the candidates' window against the control cohort's (`ctl`, same window) when it has data,
        else against the same devices' previous release before the update (`previous`: device -> release)."""
        if ctl["count"] >= self.plan.thresholds.min_samples:
            base, kind = ctl, f"control cohort ({control_devices} device(s) on the previous release, same window)"
        else:
            base = merge([window(snapshot.get(d, {}), None, f"{p['name']}@{p['version']}")
                          for d, p in previous.items()])
            kind = "the same devices before the update (previous release)"
        return judge(cand, base, self.plan.thresholds or Thresholds(), baseline_kind=kind)

    # -- rollback --------------------------------------------------------------------------------

    def start_rollback(self, reason: str, numbers: dict) -> None:
        """Persist rolling_back with the reason and numbers before any directive leaves (unless a steer got
        there first: an abort already is a rollback)."""
        self.transition(lambda: (st.set_rollout(self.db, self.id, self.iso, status="rolling_back", reason=reason,
                                            numbers_json=st.dumps(numbers)),
                             st.event(self.db, self.id, "rolling_back", self.iso, reason=reason, numbers=numbers)))
        self.actions.append(f"rolling back: {reason}")

    def roll_back(self) -> None:
        from ..evidence.keys import load_signing_key

        signer = self.signer or load_signing_key(self.ws)
        rows = [t for t in st.targets(self.db, self.id)
                if t["state"] in ("succeeded", "pushing", "failed", "timed_out", "rollback_pending")]
        never = [t for t in st.targets(self.db, self.id) if t["state"] == "pending"]
        with self.db.atomic():
            for t in never:  # never sent: nothing to undo (a `rejected` device keeps its agent's code)
                st.set_target(self.db, self.id, t["device_id"], self.iso, state="skipped")
        todo = [t for t in rows if t["previous_json"]]
        for t in rows:
            if not t["previous_json"]:  # we never saw it run anything: it cannot have a rollback target
                self._record(t, {"state": "skipped_offline", "code": "NO_PREVIOUS",
                                 "message": "the device never reported a release before the push"})
        self.progress(f"rolling back {len(todo)} device(s)")

        identities = {r: load_payload(self.ws, r, self.id).identity for r in {t["release"] for t in todo}}

        async def one(client, t):
            result = await rollback_device(client, _Device(t), rollout_id=self.id,
                                           new_identity=identities[t["release"]],
                                           previous=json.loads(t["previous_json"]), signer=signer,
                                           timeout_s=self.plan.rate.device_timeout_s, retries=self.plan.rate.retries)
            if result["state"] == "unreachable":  # it has, or may have (a push that timed out), the release
                may_have = t["state"] in ("succeeded", "pushing", "timed_out", "rollback_pending") \
                    or t["reported_sha256"] == identities[t["release"]]
                result["state"] = "rollback_pending" if may_have else "skipped_offline"
            return result
        self._fan_out(todo, one)
        pending = [t for t in st.targets(self.db, self.id) if t["state"] == "rollback_pending"]
        self.finish_rollback(pending, "unreachable; the next advance retries",
                             "never reported the previous release before the rollback deadline")

    def finish_rollback(self, pending: list[dict], waiting: str, timed_out: str) -> None:
        """Wait for `pending` devices until the rollback deadline; then they are rollback_failed and the
        rollout ends failed: ROLLBACK_INCOMPLETE, else rolled_back."""
        if pending and self.now < self._rollback_deadline():
            self.actions.append(f"rollback: {len(pending)} device(s) {waiting}")
            return
        with self.db.atomic():  # past the deadline: what did not report the previous release has failed
            for t in pending:
                st.set_target(self.db, self.id, t["device_id"], self.iso, state="rollback_failed",
                              code="ROLLBACK_TIMEOUT", message=timed_out)
        failed = [t["device_id"] for t in st.targets(self.db, self.id) if t["state"] == "rollback_failed"]
        if failed:  # completion is what the agents report: these still run, or may run, the new release
            numbers = {**json.loads(self.row["numbers_json"] or "{}"), "rollback_failed": failed}
            self.commit(lambda: (st.set_rollout(self.db, self.id, self.iso, status="failed", finished_at=self.iso,
                                                reason="ROLLBACK_INCOMPLETE", numbers_json=st.dumps(numbers)),
                                 st.event(self.db, self.id, "failed", self.iso, rollback_failed=failed)))
            self.actions.append(f"rollback incomplete: {len(failed)} device(s) not back on the previous release")
            return
        self.commit(lambda: (st.set_rollout(self.db, self.id, self.iso, status="rolled_back", finished_at=self.iso),
                             st.event(self.db, self.id, "rolled_back", self.iso)))
        self.actions.append("rolled back")

    def _rollback_deadline(self) -> datetime:
        """How long unreachable devices are retried: max_bake after the rollback began (at least 10 minutes)."""
        began = next(iter(self.db.query("SELECT min(at) AS at FROM rollout_events WHERE rollout_id = ? AND "
                                        "kind IN ('rolling_back', 'abort')", [self.id])))["at"]
        start = _parse(began) if began else self.now
        return start + timedelta(seconds=max(self.plan.max_bake_s, 600.0))
