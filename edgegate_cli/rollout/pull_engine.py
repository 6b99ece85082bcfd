"""A rollout over the pull path (SPEC §10.5): the same persisted state machine as a push rollout
(engine.py), where "push a stage" is "write the channel manifest with a wider cohort range" and what the
devices run is read from their status reports on the store, never asked of them.

    start     the release's objects go to the store (blobs, then its signed manifest); the channel's
              current release is recorded as the rollback target. Nothing changes on the channel yet.
    pushing   the channel manifest gets {rollout: {id, release, seed = rollout id, ranges: [[0, hi]]}}:
              devices whose sha256(seed ‖ id) position is below hi move, the others keep `current`.
              The counters in every report are snapshotted: the bake's window starts here.
    baking    after the bake, the reports say who runs the release (succeeded), who refused it
              (rejected, with the agent's code: failed activations) and the counters; the analysis is
              analysis.judge, candidate = the stage's devices on the release, baseline = the devices
              outside the range on the previous release over the same window (else the candidates'
              own history before the update). No device converged yet is inconclusive, never healthy.
    completed the last stage passed: the channel's current becomes the release and the rollout ends.
    rolling_back  one signed rollback directive (cohort `channel:<name>`, from the release to the
              previous one) and current = previous are written to the channel, once; then every device
              that ran (or may have run) the release must report the previous one, having seen that
              channel version, before the rollback deadline — else rollback_failed and the rollout ends
              failed: ROLLBACK_INCOMPLETE, as on the push path.

The release box's work per stage is a few small objects whatever the fleet size; reading the reports
(one LIST page per 1,000 devices, one GET each) is the part that grows with it (bench/pull_scale.py).
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

from ..context import format_utc
from ..evidence.channel_manifest import SCALE, cohort_position
from . import store as st
from .analysis import merge, window
from .engine import AdvanceResult, _Advancer
from .plan import Plan
from .reports import Reports, read_reports

DIRECTIVE_LIFETIME = timedelta(days=7)  # a device offline for days still finds its way down


def open_channel_store(plan: Plan):
    """(ObjectStore, S3Location) of the plan's `--via` root, credentials resolved now."""
    from ..objectstore import ObjectStore, parse_s3_url
    from .reports import THREADS

    location = parse_s3_url(plan.via)
    store = ObjectStore(location, max_connections=THREADS)
    store.require_credentials()
    return store, location


def complete_on_channel(ws, plan: Plan, signer=None) -> int:
    """The rollout's release becomes the channel's current one and the rollout leaves the manifest."""
    from ..errors import InvalidInput
    from ..evidence.keys import load_signing_key
    from ..registry.channel import promote_rollout, update_channel

    def change(body: dict) -> dict:
        if body["rollout"] and body["rollout"]["id"] == plan.rollout_id:
            return promote_rollout(body)
        if body["current"] and f"{body['current']['name']}@{body['current']['version']}" == plan.release:
            return body  # done already (an advance that stopped between the write and its record)
        raise InvalidInput(f"channel {plan.channel} no longer carries rollout {plan.rollout_id}",
                           hint="someone else changed the channel; see `edgegate releases` and the store")

    store, location = open_channel_store(plan)
    update = update_channel(ws, store, location, plan.channel, signer or load_signing_key(ws), change,
                            command="rollout")
    with ws.db.atomic():
        st.event(ws.db, plan.rollout_id, "channel", ws.db.now(), what=f"{plan.release} is current",
                 version=update.version, payload_sha256=update.payload_sha256)
    return update.version


def stage_of(plan: Plan, device_id: str) -> int:
    """The first stage whose cohort range holds the device."""
    position = cohort_position(plan.rollout_id, device_id)
    return next(s.index for s in plan.stages if position < (s.range_hi or SCALE))


def start_pull_rollout(ws, plan: Plan, *, progress=lambda _t: None) -> AdvanceResult:
    """Upload the release, check the channel can carry the rollout, store the plan (status pushing,
    stage 0). Raises NotFound, InvalidInput (no current release, a rollout already on the channel, the
    release already current, an id in use), Store* errors."""
    from ..errors import InvalidInput
    from ..registry.channel import read_channel_doc
    from ..registry.push import upload_release

    store, location = open_channel_store(plan)
    doc, version = read_channel_doc(ws, store, location, plan.channel)
    where = location.url(location.key(f"channels/{plan.channel}.json"))
    current = (doc or {}).get("current")
    if current is None:
        raise InvalidInput(f"{where}: channel {plan.channel} has no current release to roll back to",
                           hint="put one there first: `edgegate releases push NAME@VERSION s3://...`")
    if doc.get("rollout") is not None:
        raise InvalidInput(f"{where}: channel {plan.channel} already carries rollout {doc['rollout']['id']}",
                           hint="finish or abort it first: `edgegate rollout abort ID`")
    if f"{current['name']}@{current['version']}" == plan.release:
        raise InvalidInput(f"{where}: {plan.release} is already the current release of channel {plan.channel}")
    entry = next(r for r in doc["releases"] if (r["name"], r["version"]) == (current["name"], current["version"]))
    up = upload_release(ws, plan.release, store, location, progress=progress)
    if up.channel != plan.channel:
        raise InvalidInput(f"{plan.release} is a release of channel {up.channel}, not {plan.channel}",
                           field="--channel")
    db, now = ws.db, ws.db.now()
    with db.atomic():
        if list(db.query("SELECT id FROM rollouts WHERE id = ?", [plan.rollout_id])):
            raise InvalidInput(f"rollout {plan.rollout_id} already exists", field="--id")
        db["rollouts"].insert({"id": plan.rollout_id, "release": plan.release, "status": "pushing",
                               "rollback_release": f"{current['name']}@{current['version']}",
                               "rollback_identity": entry["identity"], "created_at": now, "strategy": plan.strategy,
                               "plan_json": plan.model_dump_json(), "stage": 0, "paused": 0, "updated_at": now,
                               "identity": up.entry["identity"]})
        for stage in plan.stages:
            db["rollout_stages"].insert({"rollout_id": plan.rollout_id, "stage": stage.index, "name": stage.name,
                                         "status": "pending", "errors_in_row": 0})
            db["rollout_targets"].insert_all(  # one statement per batch: a fleet of 100,000 starts in seconds
                (_target(plan, location, device_id, stage.index, rank, now)
                 for rank, device_id in enumerate(stage.devices)), ignore=True)
        st.event(db, plan.rollout_id, "started", now, release=plan.release, devices=plan.device_count,
                 via=plan.via, channel=plan.channel, channel_version=version, uploaded=up.uploaded)
    return AdvanceResult(rollout_id=plan.rollout_id, status="pushing", stage=0, actions=["started"])


def _target(plan: Plan, location, device_id: str, stage: int, rank: int, now: str) -> dict:
    return {"rollout_id": plan.rollout_id, "device_id": device_id, "stage": stage, "rank": rank,
            "address": location.url(location.key(f"status/{device_id}/status.json")), "release": plan.release,
            "state": "pending", "attempts": 0, "updated_at": now}


class PullAdvancer(_Advancer):
    """The push advancer's transitions and analysis rules, over the channel manifest and the reports."""

    def __init__(self, *args):
        super().__init__(*args)
        self.store, self.location = open_channel_store(self.plan)

    # -- the store -------------------------------------------------------------------------------

    def reports(self) -> Reports:
        """Every report on the channel; targets learn what their device runs (new devices are added to
        the stage their position falls in)."""
        reports = read_reports(self.store, self.location, self.plan.channel)
        targets = {t["device_id"]: t for t in st.targets(self.db, self.id)}
        identity, stage = self.row["identity"], self.row["stage"]
        with self.db.atomic():
            for device_id, r in reports.devices.items():
                t = targets.get(device_id)
                if t is None:
                    self.db["rollout_targets"].insert(_target(self.plan, self.location, device_id,
                                                              stage_of(self.plan, device_id), len(targets), self.iso),
                                                      ignore=True)
                    t = targets[device_id] = next(iter(self.db.query(
                        "SELECT * FROM rollout_targets WHERE rollout_id = ? AND device_id = ?", [self.id, device_id])))
                    if t["stage"] <= stage and self.row["status"] in ("pushing", "baking"):
                        st.set_target(self.db, self.id, device_id, self.iso, state="pushing")
                        t["state"] = "pushing"
                fields = {"reported_sha256": r.active_sha256}
                if not t["previous_json"] and r.active_sha256 and r.active_sha256 != identity:
                    name, _, version = (r.active_release or "@").partition("@")
                    fields["previous_json"] = st.dumps({"name": name, "version": version, "sha256": r.active_sha256})
                if t["state"] == "pushing" and r.active_sha256 == identity:
                    fields.update(state="succeeded", code=None, message=None)
                elif t["state"] == "pushing" and r.poll_status == "refused" and r.poll_release == self.row["release"]:
                    fields.update(state="rejected", code=r.poll_code, message=r.poll_message)
                if any(t.get(k) != v for k, v in fields.items()):
                    st.set_target(self.db, self.id, device_id, self.iso, **fields)
                    if "state" in fields and fields["state"] != t["state"]:
                        st.event(self.db, self.id, "device", self.iso, device=device_id, **fields)
        return reports

    def write_channel(self, change, what: str) -> int:
        from ..evidence.keys import load_signing_key
        from ..registry.channel import update_channel

        signer = self.signer or load_signing_key(self.ws)
        update = update_channel(self.ws, self.store, self.location, self.plan.channel, signer, change,
                                command="rollout advance")
        with self.db.atomic():
            st.event(self.db, self.id, "channel", self.iso, what=what, version=update.version,
                     payload_sha256=update.payload_sha256)
        self.actions.append(f"channel {self.plan.channel} version {update.version}: {what}")
        return update.version

    # -- pushing: a wider range --------------------------------------------------------------------

    def push_stage(self) -> None:
        from ..registry.channel import with_release, with_rollout
        from ..registry.push import upload_release

        stage = self.row["stage"]
        hi = self.plan.stages[stage].range_hi or SCALE
        up = upload_release(self.ws, self.row["release"], self.store, self.location)  # a HEAD each when there
        with self.db.atomic():  # one statement, whatever the fleet size
            self.db.execute("UPDATE rollout_targets SET state = 'pushing', attempts = coalesce(attempts, 0) + 1, "
                            "updated_at = ? WHERE rollout_id = ? AND stage <= ? AND state = 'pending'",
                            [self.iso, self.id, stage])
        name, version = self.row["release"].split("@", 1)
        self.progress(f"stage {stage}: cohort range [0, {hi}) of {SCALE} on channel {self.plan.channel}")
        self.write_channel(lambda b: with_rollout(with_release(b, up.entry, make_current=False),
                                                  rollout_id=self.id, name=name, version=version, seed=self.id,
                                                  ranges=[[0, hi]]), f"stage {stage} range [0, {hi})")
        snapshot = {d: r.counters for d, r in self.reports().devices.items()}
        self.transition(lambda: (st.set_stage(self.db, self.id, stage, status="baking", pushed_at=self.iso,
                                              bake_started_at=self.iso, snapshot_json=st.dumps(snapshot)),
                                 st.set_rollout(self.db, self.id, self.iso, status="baking"),
                                 st.event(self.db, self.id, "baking", self.iso, stage=stage)))

    # -- baking: the same analysis, from the reports -----------------------------------------------

    def analyse(self, stage: int, snapshot: dict) -> dict:
        reports = self.reports()
        release, previous = self.row["release"], self.row["rollback_release"]
        rows = st.targets(self.db, self.id)
        cand_rows = [t for t in rows if t["stage"] <= stage and t["state"] == "succeeded"]
        failed = [t for t in rows if t["stage"] <= stage and t["state"] == "rejected"]
        done = len(cand_rows) + len(failed)
        if self.plan.thresholds.aborts(len(failed), done):
            return {"outcome": "fail", "reason": "FAILED_ACTIVATIONS", "numbers": self.activation_numbers(failed, done)}
        waiting = [t["device_id"] for t in rows if t["stage"] <= stage and t["state"] == "pushing"]
        if not cand_rows:  # nobody converged yet (a poll interval away, or offline): no data is never healthy
            return {"outcome": "inconclusive", "reason": "NOT_CONVERGED",
                    "numbers": {"waiting": waiting[:50], "unreadable_reports": len(reports.unreadable)}}
        counters = {d: r.counters for d, r in reports.devices.items()}
        cand = merge([window(counters.get(t["device_id"], {}), snapshot.get(t["device_id"]), release)
                      for t in cand_rows])
        control = [d for d, r in reports.devices.items()
                   if r.active_release == previous and stage_of(self.plan, d) > stage]
        ctl = merge([window(counters[d], snapshot.get(d), previous) for d in control])
        history = {t["device_id"]: json.loads(t["previous_json"]) for t in cand_rows if t["previous_json"]}
        result = self.judge(cand, ctl, len(control), history, snapshot)
        result["numbers"].update(devices=len(cand_rows), waiting=len(waiting),
                                 unreadable_reports=len(reports.unreadable))
        return result

    def on_completed(self) -> None:
        version = complete_on_channel(self.ws, self.plan, self.signer)
        self.actions.append(f"channel {self.plan.channel} version {version}: {self.row['release']} is current")

    # -- rolling back through the channel ----------------------------------------------------------

    def _rollback_version(self) -> int | None:
        rows = list(self.db.query("SELECT detail_json FROM rollout_events WHERE rollout_id = ? AND kind = 'channel' "
                                  "AND json_extract(detail_json, '$.what') = 'rollback' ORDER BY id DESC LIMIT 1",
                                  [self.id]))
        return json.loads(rows[0]["detail_json"])["version"] if rows else None

    def roll_back(self) -> None:
        version = self._rollback_version()
        if version is None:
            version = self._write_rollback()
        reports = self.reports()  # first: a device reporting for the first time is added as pending ...
        with self.db.atomic():  # ... and, its range never opened, has nothing to undo
            self.db.execute("UPDATE rollout_targets SET state = 'skipped', updated_at = ? WHERE rollout_id = ? AND "
                            "state = 'pending'", [self.iso, self.id])
        back_sha = self.row["rollback_identity"]
        pending = []
        with self.db.atomic():
            for t in st.targets(self.db, self.id):
                if t["state"] not in ("succeeded", "pushing", "rollback_pending"):
                    continue
                r = reports.devices.get(t["device_id"])
                if r is not None and r.active_sha256 == back_sha and (r.channel_version or 0) >= version:
                    # back on the previous release, having seen the rollback: undone (or, for a device that
                    # never took the release, nothing to undo)
                    state = "skipped" if t["state"] == "pushing" else "rolled_back"
                    st.set_target(self.db, self.id, t["device_id"], self.iso, state=state, code=None, message=None)
                    st.event(self.db, self.id, "device", self.iso, device=t["device_id"], state=state)
                    continue
                pending.append(t)
                if t["state"] == "succeeded":  # it runs the release: it must come back
                    st.set_target(self.db, self.id, t["device_id"], self.iso, state="rollback_pending")
        self.finish_rollback(pending, f"not yet back on {self.row['rollback_release']}; the next advance looks again",
                             "never reported the previous release (having seen the rollback) before the rollback "
                             "deadline")

    def _write_rollback(self) -> int:
        """The channel's current goes back to the previous release, with the signed directive that lets a
        device that took the release go down to it (agents never go down without one: DOWNGRADE)."""
        from ..evidence import rollback_directive as rd
        from ..evidence.keys import load_signing_key
        from ..registry.channel import with_rollbacks

        signer = self.signer or load_signing_key(self.ws)
        name, version = self.row["rollback_release"].split("@", 1)
        issued = self.ws.ctx.clock.now()  # what devices check: the real time, even under --now
        directive = rd.sign_rollback_directive(rd.build_rollback_directive(
            rollout_id=self.id, cohort=f"channel:{self.plan.channel}", from_sha256=self.row["identity"],
            to_name=name, to_version=version, to_sha256=self.row["rollback_identity"], nonce=secrets.token_hex(16),
            issued_at=format_utc(issued), expires_at=format_utc(issued + DIRECTIVE_LIFETIME)), signer)
        self.progress(f"rolling back channel {self.plan.channel} to {self.row['rollback_release']}")
        return self.write_channel(lambda b: with_rollbacks(b, [directive], current={"name": name, "version": version}),
                                  "rollback")
