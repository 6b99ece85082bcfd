"""What a deploy must pass before the agent accepts it (SPEC §10.3, ROLLOUT.md lesson 5), in order:

1. request shape (INVALID_REQUEST)
2. REPLAY: issued_at within ±replay_window_s of the device clock, nonce never seen
3. the manifest: signature by a trusted key (SIGNATURE_INVALID, KEY_UNTRUSTED), key not revoked
   (KEY_REVOKED), a valid release (MANIFEST_INVALID), not expired (MANIFEST_EXPIRED)
4. INCOMPATIBLE: the device type is in `compatible` (or it is empty) and the format runs here
5. NO_EVIDENCE: when the agent requires evidence, the release carries a passed verdict
6. DEPLOY_IN_PROGRESS: one deployment at a time (a second is refused, never queued)
7. DOWNGRADE: the version is above the highest ever accepted for that name
8. every file and reference blob is held with the declared length (BLOB_MISSING, LENGTH_MISMATCH)

All pure checks over the request, the state and the blob store: nothing here writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import InvalidInput, VerificationFailed
from ..evidence.dsse import parse_utc
from ..evidence.release_manifest import ReleaseManifest, verify_release_envelope
from .blobs import BlobStore
from .codes import AgentRefusal, Code, from_verification
from .config import AgentConfig
from .models import SERVED_FORMATS
from .state import in_flight

NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}\Z")
ROLLOUT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
DEPLOY_FIELDS = {"manifest", "rollout_id", "nonce", "issued_at"}


@dataclass(frozen=True)
class DeployRequest:
    envelope: dict
    rollout_id: str | None
    nonce: str
    issued_at: datetime


def parse_deploy(body) -> DeployRequest:
    """The deploy body {manifest, nonce, issued_at, rollout_id?}; INVALID_REQUEST naming the field."""
    def bad(message: str) -> AgentRefusal:
        return AgentRefusal(Code.INVALID_REQUEST, message,
                            hint='POST {"manifest": <release envelope>, "nonce", "issued_at", "rollout_id"}')

    if not isinstance(body, dict):
        raise bad("the deploy body is not a JSON object")
    unknown = sorted(set(body) - DEPLOY_FIELDS)
    if unknown:
        raise bad(f"unknown field {unknown[0][:40]!r} (fetching files from URLs is not supported yet)")
    if not isinstance(body.get("manifest"), dict):
        raise bad("manifest is missing or not an object (the release's DSSE envelope)")
    if not isinstance(body.get("nonce"), str) or not NONCE_RE.match(body["nonce"]):
        raise bad("nonce is missing or not 16-128 characters of [A-Za-z0-9_-]")
    rollout_id = body.get("rollout_id")
    if rollout_id is not None and (not isinstance(rollout_id, str) or not ROLLOUT_RE.match(rollout_id)):
        raise bad("rollout_id is not a rollout id ([A-Za-z0-9._-], at most 128)")
    try:
        issued_at = parse_utc(body.get("issued_at"), what="issued_at")
    except InvalidInput as exc:
        raise bad(exc.message) from None
    return DeployRequest(body["manifest"], rollout_id, body["nonce"], issued_at)


def check_fresh(nonce: str, issued_at: datetime, state: dict, now: datetime, window_s: float) -> str:
    """REPLAY unless issued_at is within the window and the nonce is unseen. Returns keep_until for the nonce."""
    if abs((now - issued_at).total_seconds()) > window_s:
        raise AgentRefusal(Code.REPLAY, f"issued_at {issued_at.isoformat()} is more than {window_s:g} s from the "
                                        f"device clock ({now.isoformat()})",
                           hint="send a freshly issued request; check the clocks of the release box and device")
    if nonce in state["nonces"]:
        raise AgentRefusal(Code.REPLAY, f"nonce {nonce} was already used", hint="every request needs a new nonce")
    return (max(issued_at, now) + timedelta(seconds=window_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def verify_manifest(envelope: dict, cfg: AgentConfig, now: datetime) -> ReleaseManifest:
    try:
        return verify_release_envelope(envelope, cfg.trusted_keys, now=now, where="manifest")
    except VerificationFailed as exc:
        raise from_verification(exc) from None


def check_release(manifest: ReleaseManifest, cfg: AgentConfig) -> None:
    """INCOMPATIBLE and NO_EVIDENCE."""
    label = f"{manifest.name} {manifest.version}"
    if manifest.compatible and cfg.device_type not in manifest.compatible:
        raise AgentRefusal(Code.INCOMPATIBLE, f"{label} is for device types {', '.join(manifest.compatible)}; "
                                              f"this device is {cfg.device_type}")
    if manifest.model_format not in SERVED_FORMATS:
        raise AgentRefusal(Code.INCOMPATIBLE, f"{label} is a {manifest.model_format} model; this agent serves "
                                              f"{', '.join(SERVED_FORMATS)} with ONNX Runtime")
    if cfg.require_evidence and manifest.evidence is None:
        raise AgentRefusal(Code.NO_EVIDENCE, f"{label} was published without evidence and this device requires it",
                           hint="publish from a passed run, or set require_evidence = false on the device")
    if cfg.require_evidence and manifest.evidence["verdict"] != "passed":
        raise AgentRefusal(Code.NO_EVIDENCE, f"{label}: its evidence verdict is {manifest.evidence['verdict']}, "
                                             "not passed")


def check_not_busy(state: dict) -> None:
    busy = in_flight(state)
    if busy is not None:
        release = busy.get("release") or {}
        raise AgentRefusal(Code.DEPLOY_IN_PROGRESS, f"deployment {busy['id']} ({release.get('name')} "
                                                    f"{release.get('version')}) is {busy['status']}",
                           hint=f"wait for GET /v1/deployments/{busy['id']} to end, then retry with a new nonce")


def check_version(manifest: ReleaseManifest, state: dict) -> None:
    import semver

    highest = state["highest"].get(manifest.name)
    if highest is not None and semver.Version.parse(manifest.version).compare(highest) <= 0:
        raise AgentRefusal(Code.DOWNGRADE, f"{manifest.name} {manifest.version} is not above {highest}, the highest "
                                           "version this device accepted",
                           hint="publish a higher version; only a signed rollback directive goes down")


def release_entries(manifest: ReleaseManifest) -> list[tuple[str, str, int]]:
    """(path in the release directory, blob hex, size) for the model files and reference .npz files."""
    entries = [(f"model/{f.path}", f.hexdigest, f.size) for f in manifest.files]
    for side in ("inputs", "outputs"):
        if manifest.reference:
            ref = manifest.reference[side]
            entries.append((f"reference/{side}.npz", ref["sha256"].removeprefix("sha256:"), ref["size"]))
    return entries


def check_blobs(manifest: ReleaseManifest, blobs: BlobStore) -> None:
    missing = []
    for rel, hexdigest, size in release_entries(manifest):
        held = blobs.size(hexdigest)
        if held is None:
            missing.append(f"{rel} (sha256:{hexdigest})")
        elif held != size:
            raise AgentRefusal(Code.LENGTH_MISMATCH, f"{rel}: blob sha256:{hexdigest} holds {held} bytes, the "
                                                     f"manifest says {size}")
    if missing:
        raise AgentRefusal(Code.BLOB_MISSING, f"{len(missing)} blob(s) not on this device: {', '.join(missing[:3])}",
                           hint="PUT each file to /v1/blobs/sha256:<hex> before POST /v1/deploy")
