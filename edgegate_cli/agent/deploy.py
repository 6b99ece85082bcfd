"""A deploy: accepted synchronously once every check of trust.py passes — the new highest version, the
nonce and the deployment are durable before the 202 — then staged, loaded, warmed and swapped in a
background thread:

    staging  hard-link the verified blobs into releases/<manifest sha256>/ (rehashed on the way)
    loading  a second ONNX Runtime session, while the active one keeps serving
    warming  `warmup` inferences; a failure here or in loading is LOAD_FAILED, the active model untouched
    active   persisted as active (the old active becomes previous), then the serving reference exchanged

One deployment at a time: a second deploy while one is in flight is refused (DEPLOY_IN_PROGRESS).
A deployment interrupted by a crash resumes when the agent starts again (every step is idempotent).
"""

from __future__ import annotations

import os
import secrets
import threading
import time

from ..evidence.release_manifest import ReleaseManifest, envelope_text
from .codes import AgentRefusal, Code
from .models import load_model, main_model_file, warm_up, warmup_feeds
from .runtime import Agent, log, public_deployment
from .state import IN_FLIGHT, utc_text
from .trust import (
    check_blobs,
    check_fresh,
    check_not_busy,
    check_release,
    check_version,
    parse_deploy,
    release_entries,
    verify_manifest,
)

LOAD_NICE = 10  # niceness of the deploy thread (0 normal, 19 lowest)


def accept_deploy(agent: Agent, body) -> dict:
    """Check a pushed deploy request and accept it (202) or raise the AgentRefusal (recorded)."""
    now = agent.clock()
    with agent.lock:
        try:
            request = parse_deploy(body)
            keep_until = check_fresh(request.nonce, request.issued_at, agent.state, now,
                                     agent.cfg.limits["replay_window_s"])
        except AgentRefusal as exc:
            raise agent.record(exc) from None
        view = _accept(agent, request.envelope, request.rollout_id, now,
                       lambda draft: draft["nonces"].__setitem__(request.nonce, keep_until))
    _start(agent, view["id"], request.envelope, time.monotonic())
    return view


def accept_release(agent: Agent, envelope: dict, rollout_id: str | None, now) -> dict:
    """Accept a release the agent fetched itself (the pull path, whose freshness is the channel manifest's
    version and expiry rather than a nonce): the same checks as a push from the manifest on, then the same
    deployment. Returns the deployment record or raises the AgentRefusal (recorded)."""
    with agent.lock:
        view = _accept(agent, envelope, rollout_id, now, None)
    _start(agent, view["id"], envelope, time.monotonic())
    return view


def precheck_release(agent: Agent, envelope: dict, now) -> ReleaseManifest:
    """Checks 3-7 of trust.py (signature and keys, expiry, INCOMPATIBLE, NO_EVIDENCE, DEPLOY_IN_PROGRESS,
    DOWNGRADE), recorded like any refusal: what the pull path runs before downloading a release's files."""
    with agent.lock:
        try:
            manifest = verify_manifest(envelope, agent.cfg, now)
            check_release(manifest, agent.cfg)
            check_not_busy(agent.state)
            check_version(manifest, agent.state)
        except AgentRefusal as exc:
            raise agent.record(exc) from None
    return manifest


def _accept(agent: Agent, envelope: dict, rollout_id: str | None, now, remember) -> dict:
    """Checks 3-8, then the new highest version (and what `remember` adds) and the deployment made durable
    together. The caller holds the lock and starts the deployment once it has released it."""
    manifest = precheck_release(agent, envelope, now)
    try:
        check_blobs(manifest, agent.blobs)
    except AgentRefusal as exc:
        raise agent.record(exc) from None
    dep = {"id": "dep-" + secrets.token_hex(6), "kind": "deploy", "status": "staging", "code": None,
           "message": None, "rollout_id": rollout_id, "accepted_at": utc_text(now),
           "release": {"name": manifest.name, "version": manifest.version, "sha256": manifest.identity,
                       "manifest_sha256": manifest.payload_sha256},
           "envelope": envelope}  # kept until the deployment ends, so a restart can resume it

    def change(draft: dict) -> None:
        draft["highest"][manifest.name] = manifest.version
        if remember is not None:
            remember(draft)
        draft["deployments"].append(dep)

    agent.commit(change)
    return public_deployment(dep)


def resume_interrupted(agent: Agent) -> None:
    """Continue the deployment a restart interrupted, if any (a rollback is not resumed: it fails, and
    nothing had changed)."""
    for dep in [d for d in agent.state["deployments"] if d["status"] in IN_FLIGHT]:
        if dep["kind"] != "deploy" or not dep.get("envelope"):
            agent.fail(dep["id"], AgentRefusal(Code.INTERNAL, "interrupted by an agent restart; nothing changed"))
            continue
        log.info("resuming deployment %s after a restart", dep["id"])
        agent.set_status(dep["id"], "staging")
        _start(agent, dep["id"], dep["envelope"], time.monotonic())


def _start(agent: Agent, dep_id: str, envelope: dict, started: float) -> None:
    threading.Thread(target=run_deployment, args=(agent, dep_id, envelope, started), name=f"deploy-{dep_id}",
                     daemon=True).start()


def release_record(manifest: ReleaseManifest) -> dict:
    """What state.json keeps about a release: enough to load it again after a restart."""
    files = [list(e) for e in release_entries(manifest)]
    model_paths = [f.path for f in manifest.files]
    return {"name": manifest.name, "version": manifest.version, "sha256": manifest.identity,
            "manifest_sha256": manifest.payload_sha256, "dir": f"releases/{manifest.payload_sha256[7:]}",
            "model_file": "model/" + main_model_file(model_paths), "files": files,
            "input_specs": manifest.input_specs, "reference": manifest.reference is not None}


def run_deployment(agent: Agent, dep_id: str, envelope: dict, started: float) -> None:
    """Stage, load, warm and activate; any failure ends the deployment failed with its code."""
    _lower_priority()
    try:
        # Checked again: a deployment resumed after a restart meets today's keys, revocations and clock.
        manifest = verify_manifest(envelope, agent.cfg, agent.clock())
        release = release_record(manifest)
        agent.blobs.link_release([tuple(f) for f in release["files"]], agent.cfg.state_dir / release["dir"],
                                 {"release.dsse.json": envelope_text(envelope).encode()})
        agent.set_status(dep_id, "loading")
        model = _load_and_warm(agent, dep_id, release)
        agent.activate(model, dep_id, "deploy", started)
    except AgentRefusal as exc:
        agent.fail(dep_id, exc)
    except Exception as exc:  # disk full, a bug: the deployment fails, the agent keeps serving
        log.exception("deployment %s failed unexpectedly", dep_id)
        agent.fail(dep_id, AgentRefusal(Code.INTERNAL, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))


def _lower_priority() -> None:
    """Make this (deploy) thread yield the CPU to inference: on Linux a thread has its own nice value,
    so hashing, loading and warming the new model do not slow the requests the old one serves."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(LOAD_NICE, os.getpriority(os.PRIO_PROCESS, tid)))
    except (AttributeError, OSError):  # not Linux, or not permitted: the deploy runs at normal priority
        pass


def _load_and_warm(agent: Agent, dep_id: str, release: dict):
    root = agent.cfg.state_dir / release["dir"]
    model = load_model(release, root / release["model_file"], agent.cfg.threads)
    agent.set_status(dep_id, "warming")
    warm_up(model, agent.cfg.warmup, warmup_feeds(model, release.get("input_specs")),
            agent.cfg.inject_latency_ms / 1000)
    return model
