"""One poll of a pull-mode agent (SPEC §10.5): the channel manifest says what this device should run; the
agent checks it like TUF checks its timestamp role, then converges through the push path's own code.

    1. fix the update's start time from the agent's clock (every expiry below is checked against it)
    2. fetch the channel manifest (at most 1 MiB); its signature by a trusted publisher key, its channel
       name and expiry (CHANNEL_EXPIRED); its version against the highest seen (CHANNEL_ROLLBACK)
    3. a newer version is made durable in state.json before anything is acted on
    4. this device's release: the rollout's when sha256(seed ‖ device id) falls in its ranges, else current
    5. already active: nothing to do. Above the highest accepted version: fetch the release manifest (digest
       and length from the channel), the push path's checks 3-7 (deploy.precheck_release), then each file
       into the blob store with its digest and length checked while streaming (DIGEST_MISMATCH,
       LENGTH_MISMATCH: nothing is activated), then deploy.accept_release: stage, load, warm, swap.
       Not above it: only a signed rollback directive carried by the channel goes down (rollback.rollback,
       cohort `channel:<name>`), else DOWNGRADE.

A refusal is recorded once per manifest and not retried until the channel changes; a store failure
(unreachable, 5xx, missing object) is an `error` that the next poll retries.
"""

from __future__ import annotations

import logging
import os
import time

from ..errors import EdgeGateError, LengthMismatch, VerificationFailed
from ..evidence import channel_manifest as cm
from ..evidence.dsse import parse_envelope
from ..evidence.rollback_directive import parse_rollback_payload
from .codes import AgentRefusal, Code, from_verification
from .deploy import accept_release, precheck_release
from .rollback import rollback
from .runtime import Agent
from .state import utc_text
from .trust import release_entries, verify_manifest

log = logging.getLogger("edgegate.agent.pull")
DEPLOY_WAIT_S = 900.0


class Puller:
    """Polls one channel for one agent. `fetcher` is a download.Fetcher (its retry policy is the poll's)."""

    def __init__(self, agent: Agent, location, fetcher):
        self.agent, self.location, self.fetcher = agent, location, fetcher
        self.last_manifest: cm.ChannelManifest | None = None
        self._refused: dict[tuple, AgentRefusal] = {}  # what was refused -> its refusal, recorded once

    def poll_once(self) -> dict:
        """One poll; never raises. Returns {at, status: ok|refused|error, action, code, message, ...}."""
        started = self.agent.clock()
        result = {"at": utc_text(started), "status": "ok", "action": "none", "code": None, "message": None,
                  "channel_version": None, "release": None, "rollout_id": None}
        try:
            result.update(self._poll(started))
        except AgentRefusal as exc:
            result.update(status="refused", code=exc.code, message=exc.message)
        except EdgeGateError as exc:  # the store: unreachable, refused, missing object; retried next poll
            result.update(status="error", code=exc.code, message=exc.message)
        except Exception as exc:  # a bug: the agent keeps serving, the report says so
            log.exception("poll of %s failed unexpectedly", self.location.where)
            result.update(status="error", code="INTERNAL", message=f"{type(exc).__name__}: {str(exc)[:200]}")
        return result

    def _remember(self, key: tuple, exc: AgentRefusal) -> None:
        """Keep a refusal so the same manifest is not refused (and recorded) again at every poll. A busy
        agent or an internal failure is not a verdict on the release: those are retried."""
        if exc.code in (Code.DEPLOY_IN_PROGRESS, Code.INTERNAL):
            return
        if len(self._refused) >= 32:
            self._refused.clear()
        self._refused[key] = exc

    def _poll(self, now) -> dict:
        from ..download.channel import read_channel

        try:
            manifest = read_channel(self.fetcher, self.location, self.agent.cfg.trusted_keys, now=now)
            seen = self.agent.state["channels"].get(manifest.channel)
            newer = cm.check_version(manifest, seen, self.location.where)
        except VerificationFailed as exc:
            key = ("channel", exc.code, exc.message)
            if key not in self._refused:
                self._remember(key, self.agent.record(from_verification(exc)))
            raise self._refused[key] from None
        self.last_manifest = manifest
        if newer:  # TUF: persist the new version before acting on it
            self.agent.commit(lambda draft: draft["channels"].__setitem__(manifest.channel, {
                "version": manifest.version, "payload_sha256": manifest.payload_sha256, "seen_at": utc_text(now)}))
        entry, rollout_id = manifest.desired_for(self.agent.cfg.device_id)
        out = {"channel_version": manifest.version, "rollout_id": rollout_id,
               "release": entry.ref if entry else None}
        active = self.agent.state["active"]
        if entry is None or (active and (active["name"], active["version"], active["sha256"])
                             == (entry.name, entry.version, entry.identity)):
            return out
        key = (manifest.payload_sha256, entry.ref)
        if key in self._refused:
            raise self._refused[key]
        try:
            return out | self._converge(manifest, entry, rollout_id, now)
        except AgentRefusal as exc:  # already recorded where it was raised
            self._remember(key, exc)
            raise

    def _converge(self, manifest: cm.ChannelManifest, entry, rollout_id: str | None, now) -> dict:
        from ..download.channel import read_release_envelope

        directive = self._rollback_for(manifest, entry)
        if directive is not None:
            record = rollback(self.agent, {"directive": directive}, cohorts=(manifest.cohort,))
            return {"action": "rolled_back", "deployment": record["id"]}
        envelope = read_release_envelope(self.fetcher, self.location, entry, self.agent.blobs.tmp)
        try:
            release = verify_manifest(envelope, self.agent.cfg, now)
        except AgentRefusal as exc:
            raise self.agent.record(exc) from None
        if (release.name, release.version, release.identity, release.channel) != \
                (entry.name, entry.version, entry.identity, manifest.channel):  # no mix and match (TUF)
            raise self.agent.record(AgentRefusal(
                Code.MANIFEST_INVALID, f"{self.location.where}: the channel lists {entry.ref} ({entry.identity}) "
                                       f"on {manifest.channel}, but its manifest is {release.name}@{release.version} "
                                       f"({release.identity}) on {release.channel}"))
        precheck_release(self.agent, envelope, now)
        self._download(release)
        record = accept_release(self.agent, envelope, rollout_id, now)
        final = self._wait(record["id"])
        if final["status"] != "active":
            raise AgentRefusal(Code(final["code"]) if final["code"] in Code.__members__ else Code.INTERNAL,
                               final["message"] or "the deployment failed")
        return {"action": "deployed", "deployment": record["id"]}

    def _rollback_for(self, manifest: cm.ChannelManifest, entry) -> dict | None:
        """The channel's rollback directive from the active model to `entry`, when the agent cannot reach
        `entry` going up (its version is not above the highest accepted). Unverified here: rollback()
        checks it as it checks a pushed one."""
        import semver

        active, highest = self.agent.state["active"], self.agent.state["highest"].get(entry.name)
        if active is None or highest is None or semver.Version.parse(entry.version).compare(highest) > 0:
            return None
        for envelope in manifest.rollbacks:
            try:
                _, payload, _ = parse_envelope(envelope)
                d = parse_rollback_payload(payload, where="directive")
            except VerificationFailed:
                continue
            if d.from_sha256 == active["sha256"] and (d.to_name, d.to_version, d.to_sha256) == \
                    (entry.name, entry.version, entry.identity):
                return envelope
        return None

    def _download(self, release) -> None:
        """Every file of the release into the blob store, at most its declared length, digest checked."""
        limit = int(self.agent.cfg.limits["max_blob_bytes"])
        for rel, hexdigest, size in release_entries(release):
            if size > limit:
                raise self.agent.record(AgentRefusal(Code.BODY_TOO_LARGE, f"{rel} is {size} bytes; this agent's "
                                                                          f"max_blob_bytes is {limit}"))
            if self.agent.blobs.size(hexdigest) == size:
                continue  # already here (content-addressed): not fetched again
            blob = self.location.blob(hexdigest, size)
            dest = self.agent.blobs.path(hexdigest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.fetcher.fetch(blob, dest, tmp_dir=self.agent.blobs.tmp)
            except VerificationFailed as exc:
                code = Code.LENGTH_MISMATCH if isinstance(exc, LengthMismatch) else Code.DIGEST_MISMATCH
                raise self.agent.record(AgentRefusal(code, f"{rel}: {exc.message}; nothing activated")) from None
            os.chmod(dest, 0o444)

    def _wait(self, dep_id: str) -> dict:
        deadline = time.monotonic() + DEPLOY_WAIT_S
        while time.monotonic() < deadline:
            record = self.agent.deployment(dep_id)
            if record["status"] in ("active", "failed"):
                return record
            time.sleep(0.05)
        raise AgentRefusal(Code.INTERNAL, f"deployment {dep_id} did not end within {DEPLOY_WAIT_S:.0f} s")

