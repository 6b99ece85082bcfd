"""One device's push and one device's rollback, over the fleet's agent client (mutual TLS), each bounded
by the per-device timeout and retried (tenacity) on transport failures only.

Push: status (a device already reporting the target identity is done: a no-op); HEAD/PUT each blob it
lacks; POST /v1/deploy with the idempotency nonce sha256(rollout ‖ device ‖ identity) — so a second push of
the same device by a resumed or concurrent advancer is refused by the agent itself (REPLAY) and never
deploys twice — then GET /v1/deployments/ID until active or failed, and the agent's /v1/status must report
the identity (success is what the agent reports, never bookkeeping).

Rollback: a signed directive naming the device (from = new identity, to = the previous release), then the
agent must report the previous identity.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

IN_FLIGHT = ("staging", "loading", "warming")
POLL_S = 0.05


@dataclass(frozen=True)
class Payload:
    rollout_id: str
    release: str  # NAME@VERSION
    identity: str
    envelope: dict
    blobs: tuple[tuple[str, str, int], ...]  # (sha256:hex, path, size)
    generation: int = 0  # `rollout retry`s so far: a retried push is a new request, a resumed one is not


def wire_now() -> str:
    """Times on the wire are real UTC (agents check freshness against their clock), never the --now clock."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def push_nonce(rollout_id: str, device_id: str, identity: str, generation: int = 0) -> str:
    """The deploy's idempotency key: the same for every advance that resumes a push (the agent refuses the
    second as REPLAY), new after `rollout retry` (whose push must not be mistaken for the failed one)."""
    text = f"{rollout_id}\n{device_id}\n{identity}" + (f"\n{generation}" if generation else "")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _result(state: str, code: str | None = None, message: str | None = None, **extra) -> dict:
    return {"state": state, "code": code, "message": message, **extra}


async def _retrying(call, retries: int):
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

    from ..fleet.agent_client import AgentUnreachable

    async for attempt in AsyncRetrying(stop=stop_after_attempt(retries + 1), reraise=True,
                                       retry=retry_if_exception_type(AgentUnreachable),
                                       wait=wait_exponential(multiplier=0.2, max=2)):
        with attempt:
            return await call()


async def _wait_identity(client, device, identity: str, deadline: float) -> dict:
    """Poll /v1/status until the device reports `identity` active with no deployment in flight."""
    loop = asyncio.get_running_loop()
    while True:
        status = await client.status(device)
        active = (status.get("active") or {}).get("sha256")
        dep = status.get("deployment") or {}
        if active == identity and dep.get("status") not in IN_FLIGHT:
            return _result("succeeded", reported_sha256=active, deployment_id=dep.get("id"))
        if dep.get("status") == "failed" and active != identity:
            return _result("failed", dep.get("code"), dep.get("message"), reported_sha256=active,
                           deployment_id=dep.get("id"))
        if loop.time() > deadline:
            return _result("timed_out", "TIMEOUT", "the device did not report the release in time",
                           reported_sha256=active)
        await asyncio.sleep(POLL_S)


async def push_device(client, device, payload: Payload, *, timeout_s: float, retries: int) -> dict:
    from ..fleet.agent_client import AgentError, AgentUnreachable

    deadline = asyncio.get_running_loop().time() + timeout_s
    seen: dict = {}

    async def run() -> dict:
        status = await _retrying(lambda: client.status(device), retries)
        active = status.get("active")
        # the rollback target: what ran before this push (or, when already on the release, what it holds)
        seen["previous"] = status.get("previous") if (active or {}).get("sha256") == payload.identity else active
        if status.get("device_id") != device.device_id:
            return _result("rejected", "DEVICE_MISMATCH", f"the agent at {device.address} is "
                           f"{status.get('device_id')!r}, not {device.device_id!r}")
        if (status.get("active") or {}).get("sha256") == payload.identity:
            return _result("succeeded", reported_sha256=payload.identity, message="already active (no-op)")
        for digest, path, _size in payload.blobs:
            if not await _retrying(lambda d=digest: client.has_blob(device, d), retries):
                await _retrying(lambda d=digest, p=path: client.put_blob(device, d, p), retries)
        body = {"manifest": payload.envelope, "nonce": push_nonce(payload.rollout_id, device.device_id,
                                                                   payload.identity, payload.generation),
                "issued_at": wire_now(), "rollout_id": payload.rollout_id}
        try:
            await _retrying(lambda: client.deploy(device, body), retries)
        except AgentError as exc:
            if exc.code not in ("REPLAY", "DEPLOY_IN_PROGRESS"):  # REPLAY: an earlier push of ours was accepted
                return _result("rejected", exc.code, exc.message)
        return await _wait_identity(client, device, payload.identity, deadline)

    try:
        result = await asyncio.wait_for(run(), timeout_s)
    except TimeoutError:
        result = _result("timed_out", "TIMEOUT", f"no answer within {timeout_s:g} s")
    except AgentUnreachable as exc:
        result = _result("timed_out", "UNREACHABLE", str(exc))
    except AgentError as exc:
        result = _result("rejected", exc.code, exc.message)
    previous = seen.get("previous")
    result["previous"] = {k: previous[k] for k in ("name", "version", "sha256")} if previous else None
    return result


async def rollback_device(client, device, *, rollout_id: str, new_identity: str, previous: dict, signer,
                          timeout_s: float, retries: int) -> dict:
    """Return the device to `previous` ({name, version, sha256}); terminal state rolled_back or
    rollback_failed (with the agent's code), or 'unreachable'."""
    from ..evidence.rollback_directive import build_rollback_directive, sign_rollback_directive
    from ..fleet.agent_client import AgentError, AgentUnreachable

    deadline = asyncio.get_running_loop().time() + timeout_s

    async def run() -> dict:
        while True:
            status = await _retrying(lambda: client.status(device), retries)
            active = (status.get("active") or {}).get("sha256")
            if active == previous["sha256"] and (status.get("deployment") or {}).get("status") not in IN_FLIGHT:
                return _result("rolled_back", reported_sha256=active)
            if (status.get("deployment") or {}).get("status") in IN_FLIGHT:
                await asyncio.sleep(POLL_S)  # our deploy is still landing: wait for it, then go back
                continue
            if active != new_identity:
                return _result("rollback_failed", "UNEXPECTED_RELEASE", f"the device runs {active}, neither the "
                               f"new release nor the previous one", reported_sha256=active)
            now = datetime.now(UTC)
            doc = build_rollback_directive(
                rollout_id=rollout_id, device_id=device.device_id, from_sha256=new_identity,
                to_name=previous["name"], to_version=previous["version"], to_sha256=previous["sha256"],
                nonce=secrets.token_hex(16), issued_at=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                expires_at=(now + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            try:
                await client.rollback(device, {"directive": sign_rollback_directive(doc, signer)})
            except AgentError as exc:
                if exc.code != "DEPLOY_IN_PROGRESS":
                    return _result("rollback_failed", exc.code, exc.message, reported_sha256=active)
            result = await _wait_identity(client, device, previous["sha256"], deadline)
            return _result("rolled_back", reported_sha256=previous["sha256"]) if result["state"] == "succeeded" \
                else _result("rollback_failed", result["code"], result["message"])

    try:
        return await asyncio.wait_for(run(), timeout_s)
    except (TimeoutError, AgentUnreachable) as exc:
        return _result("unreachable", "UNREACHABLE", str(exc) or "timed out")
