"""`rollout advance`: take the rollout's lease, then let the advancer of its path make the transitions it
may — engine._Advancer pushes to agents over mutual TLS, pull_engine.PullAdvancer rewrites a channel
manifest and reads status reports. Both share the state machine and the analysis rules."""

from __future__ import annotations

from datetime import datetime

from . import store as st
from .engine import AdvanceResult, _Advancer
from .plan import Plan
from .pull_engine import PullAdvancer


def advance(ws, rollout_id: str, *, now: datetime, owner: str | None = None, progress=lambda _t: None,
            signer=None) -> AdvanceResult:
    """One advance of `rollout_id` as of `now` (the Context clock, or `--now`)."""
    owner = owner or st.owner_id()
    try:
        with st.lease(ws.db, rollout_id, now, owner):
            plan = Plan.model_validate_json(st.get_rollout(ws.db, rollout_id)["plan_json"])
            advancer = PullAdvancer if plan.via else _Advancer
            return advancer(ws, rollout_id, now, progress, signer).run()
    except st.LeaseHeld as exc:
        row = st.get_rollout(ws.db, rollout_id)
        return AdvanceResult(rollout_id=rollout_id, status=row["status"], stage=row["stage"], actions=[],
                             reason=exc.message, lease_held_by=exc.message.split(" by ")[1].split(" (")[0])
