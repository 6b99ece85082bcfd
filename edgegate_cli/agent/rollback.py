"""The signed way down (ROLLOUT.md lesson 6): a rollback directive, signed by a trusted publisher key,
returns the device to the model it still holds (the previous one). In order it must pass:

    the signature rules of a release (SIGNATURE_INVALID, KEY_UNTRUSTED, KEY_REVOKED, MANIFEST_INVALID),
    expiry (MANIFEST_EXPIRED), an unseen nonce and an issued_at not in the future (REPLAY),
    naming this device or one of its cohorts (WRONG_DEVICE), no deployment in flight (DEPLOY_IN_PROGRESS),
    from_sha256 = the active model (ROLLBACK_MISMATCH), to_* = the previous model (NO_ROLLBACK_TARGET).

The previous model is usually still loaded, so the swap is immediate; after a restart it is loaded
(files rehashed) and warmed first. The highest accepted version is never lowered: a later deploy of a
version at or below it is still a DOWNGRADE.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

from ..errors import VerificationFailed
from ..evidence.dsse import parse_utc
from ..evidence.rollback_directive import RollbackDirective, verify_rollback_envelope
from .codes import AgentRefusal, Code, from_verification
from .runtime import Agent
from .state import utc_text
from .trust import check_not_busy


def _check(agent: Agent, body, now, cohorts: tuple[str, ...]) -> RollbackDirective:
    if not isinstance(body, dict) or set(body) != {"directive"} or not isinstance(body["directive"], dict):
        raise AgentRefusal(Code.INVALID_REQUEST, 'the body must be {"directive": <signed rollback directive>}')
    try:
        directive = verify_rollback_envelope(body["directive"], agent.cfg.trusted_keys, now=now, where="directive")
    except VerificationFailed as exc:
        raise from_verification(exc) from None
    window = timedelta(seconds=agent.cfg.limits["replay_window_s"])
    if directive.nonce in agent.state["nonces"]:
        raise AgentRefusal(Code.REPLAY, f"directive nonce {directive.nonce} was already used")
    if parse_utc(directive.issued_at, what="issued_at") > now + window:
        raise AgentRefusal(Code.REPLAY, f"directive issued_at {directive.issued_at} is in the future "
                                        f"(device clock {utc_text(now)})")
    cohorts = (*agent.cfg.cohorts, *cohorts)
    if directive.device_id != agent.cfg.device_id and directive.cohort not in cohorts:
        raise AgentRefusal(Code.WRONG_DEVICE, f"the directive names device {directive.device_id} / cohort "
                                              f"{directive.cohort}; this is {agent.cfg.device_id} in cohorts "
                                              f"{', '.join(cohorts) or '(none)'}")
    check_not_busy(agent.state)
    active, previous = agent.state["active"], agent.state["previous"]
    if active is None or active["sha256"] != directive.from_sha256:
        raise AgentRefusal(Code.ROLLBACK_MISMATCH, f"the directive leaves {directive.from_sha256}, but the active "
                                                   f"model is {active['sha256'] if active else 'none'}")
    target = (directive.to_name, directive.to_version, directive.to_sha256)
    if previous is None or (previous["name"], previous["version"], previous["sha256"]) != target:
        held = f"{previous['name']} {previous['version']} ({previous['sha256']})" if previous else "nothing"
        raise AgentRefusal(Code.NO_ROLLBACK_TARGET, f"the directive returns to {directive.to_name} "
                                                    f"{directive.to_version} ({directive.to_sha256}); this device "
                                                    f"holds {held} as its rollback target")
    return directive


def rollback(agent: Agent, body, *, cohorts: tuple[str, ...] = ()) -> dict:
    """Check and apply a rollback directive; return the deployment record (status active). `cohorts` are
    cohorts the device is in besides its config's (a pull agent is in `channel:<name>` of its channel).

    Raises AgentRefusal (recorded); LOAD_FAILED when the held model no longer loads (nothing changed).
    """
    now, started = agent.clock(), time.monotonic()
    with agent.lock:
        try:
            directive = _check(agent, body, now, cohorts)
        except AgentRefusal as exc:
            raise agent.record(exc) from None
        target = agent.state["previous"]
        dep = {"id": "dep-" + secrets.token_hex(6), "kind": "rollback", "status": "loading", "code": None,
               "message": None, "rollout_id": directive.rollout_id, "accepted_at": utc_text(now),
               "signer": directive.signer, "from_sha256": directive.from_sha256,
               "release": {k: target[k] for k in ("name", "version", "sha256", "manifest_sha256")}}

        def change(draft: dict) -> None:
            draft["nonces"][directive.nonce] = directive.expires_at
            draft["deployments"].append(dep)

        agent.commit(change)
    held = agent.slot.previous
    try:
        if held is None or held.release["manifest_sha256"] != target["manifest_sha256"]:
            held = agent.load_release(target, verify=True)
        agent.activate(held, dep["id"], "rollback", started)
    except AgentRefusal as exc:
        agent.fail(dep["id"], exc)
        raise
    return agent.deployment(dep["id"])
