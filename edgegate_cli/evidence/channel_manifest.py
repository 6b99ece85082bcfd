"""The signed channel manifest of the pull path (SPEC §10.5): what every device on a channel should run,
in one small DSSE-signed file the release box rewrites per stage (`<root>/channels/<channel>.json`).

    {"channel_format": 1, "channel": "stable",
     "version": 7,                                  # a counter: agents refuse a lower one (CHANNEL_ROLLBACK)
     "issued_at": "...Z", "expires_at": "...Z",     # agents refuse it after expires_at (CHANNEL_EXPIRED)
     "publisher": "eg-<16 hex>",                    # the key id that signs it
     "releases": [{"name", "version", "identity": "sha256:<model identity>",
                   "manifest": {"sha256", "size"},  # the release.dsse.json blob at <root>/blobs/sha256/<hex>
                   "evidence": {"sha256", "size"} | null}],
     "current": {"name", "version"} | null,         # what every device outside the rollout cohort runs
     "rollout": {"id", "release": {"name", "version"}, "seed", "ranges": [[lo, hi], ...]} | null,
     "rollbacks": [<signed rollback directive envelope>, ...]}

A device's cohort position is `sha256(seed ‖ device id)`'s first 8 bytes as a fraction of 2^64, in
millionths (an integer in [0, 1000000)); it is in the rollout when `lo <= position < hi` for a range.
Rollback directives in a channel name the cohort `channel:<name>`: every device on the channel whose
active model is the directive's `from_sha256` goes back to its `to_*` release.

Standard library, `dsse`, `errors` and `signed_json` only: the edge agent and the download SDK import it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from ..errors import ChannelExpired, ChannelRollback, InvalidInput, ManifestInvalid, VerificationFailed
from . import dsse
from .signed_json import (
    KEY_ID_RE,
    TEXT_RE,
    canonical_json,
    check_digest,
    check_keys,
    check_match,
    check_name,
    check_semver,
    check_time,
    fail,
    load_canonical,
    show,
    verify_signatures,
)

PAYLOAD_TYPE = "application/vnd.edgegate.channel+json"
CHANNEL_FORMAT = 1
MAX_BYTES = 1 << 20  # a channel manifest larger than this is refused unread (TUF bounds metadata too)
MAX_RELEASES = 100
MAX_ROLLBACKS = 16
MAX_ENVELOPE_BYTES = 1 << 20  # a release manifest envelope named by a channel
SCALE = 1_000_000  # cohort positions and ranges are in millionths of the fleet
KEYS = {"channel_format", "channel", "version", "issued_at", "expires_at", "publisher", "releases", "current",
        "rollout", "rollbacks"}
ROLLOUT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


@dataclass(frozen=True)
class ChannelRelease:
    name: str
    version: str
    identity: str  # "sha256:<hex>" model identity
    manifest_sha256: str  # "sha256:<hex>" of the release.dsse.json bytes
    manifest_size: int
    evidence: dict | None  # {"sha256", "size"} of evidence.zip

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Rollout:
    id: str
    name: str
    version: str
    seed: str
    ranges: tuple[tuple[int, int], ...]

    def includes(self, device_id: str) -> bool:
        position = cohort_position(self.seed, device_id)
        return any(lo <= position < hi for lo, hi in self.ranges)


@dataclass(frozen=True)
class ChannelManifest:
    channel: str
    version: int
    issued_at: str
    expires_at: str
    publisher: str
    releases: tuple[ChannelRelease, ...]
    current: tuple[str, str] | None  # (name, version)
    rollout: Rollout | None
    rollbacks: tuple[dict, ...]  # signed rollback directive envelopes (verified by whoever applies one)
    raw_payload: bytes
    payload_sha256: str

    def release(self, name: str, version: str) -> ChannelRelease | None:
        return next((r for r in self.releases if (r.name, r.version) == (name, version)), None)

    def desired_for(self, device_id: str) -> tuple[ChannelRelease | None, str | None]:
        """(the release this device should run, the rollout id when that is the rollout's release)."""
        if self.rollout is not None and self.rollout.includes(device_id):
            return self.release(self.rollout.name, self.rollout.version), self.rollout.id
        return (self.release(*self.current) if self.current else None), None

    @property
    def cohort(self) -> str:
        """The cohort name rollback directives carried by this channel use."""
        return channel_cohort(self.channel)


def channel_cohort(channel: str) -> str:
    return f"channel:{channel}"


def cohort_position(seed: str, device_id: str) -> int:
    """The device's place in [0, SCALE): sha256(seed ‖ device id), first 8 bytes, as millionths of 2^64."""
    digest = hashlib.sha256(seed.encode("utf-8") + device_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") * SCALE >> 64


# -- building (the release box) ------------------------------------------------------------------------

def build_channel(*, channel: str, version: int, issued_at: str, expires_at: str, publisher: str,
                  releases: list[dict], current: dict | None = None, rollout: dict | None = None,
                  rollbacks: list[dict] | tuple = ()) -> dict:
    """The channel document (pure). Raises InvalidInput naming the field when it would not parse."""
    doc = {"channel_format": CHANNEL_FORMAT, "channel": channel, "version": version, "issued_at": issued_at,
           "expires_at": expires_at, "publisher": publisher, "releases": list(releases), "current": current,
           "rollout": rollout, "rollbacks": list(rollbacks)}
    try:
        parse_channel_payload(canonical_json(doc), where=f"channel {channel}")
    except (VerificationFailed, ValueError, TypeError) as exc:
        raise InvalidInput(getattr(exc, "message", str(exc))) from None
    return doc


def sign_channel(doc: dict, signer) -> dict:
    """The DSSE envelope of a channel document, signed by `signer` (a signing.Signer)."""
    return dsse.sign_envelope(canonical_json(doc), PAYLOAD_TYPE, signer)


# -- verification (agents, the SDK, the release box reading back) --------------------------------------

def verify_channel_envelope(envelope, trusted_keys: dsse.TrustedKeys, *, now: datetime, where: str,
                            channel: str | None = None, allow_expired: bool = False) -> ChannelManifest:
    """Verify a channel envelope: signatures (KEY_UNTRUSTED, SIGNATURE_INVALID, KEY_REVOKED), the payload
    and, when given, the expected `channel` name (MANIFEST_INVALID), then expiry against `now`, the
    update's fixed start time (CHANNEL_EXPIRED; skipped with `allow_expired`, for the release box renewing
    it). Version order is `check_version`'s business."""
    payload, signers = verify_signatures(envelope, trusted_keys, payload_type=PAYLOAD_TYPE, now=now, where=where)
    manifest = parse_channel_payload(payload, where=where)
    if manifest.publisher not in signers:
        raise ManifestInvalid(f"{where}: publisher is {manifest.publisher} but the channel manifest was signed by "
                              f"{', '.join(sorted(signers))}")
    if channel is not None and manifest.channel != channel:
        raise ManifestInvalid(f"{where}: this is the manifest of channel {manifest.channel}, not {channel}",
                              hint="a channel's manifest lives at <root>/channels/<channel>.json")
    if not allow_expired and dsse.parse_utc(manifest.expires_at, what="expires_at") <= now:
        raise ChannelExpired(f"{where}: channel {manifest.channel} version {manifest.version} expired at "
                             f"{manifest.expires_at}", hint="the release box must re-sign the channel "
                                                            "(`edgegate releases push` again) at least weekly")
    return manifest


def check_version(manifest: ChannelManifest, seen: dict | None, where: str) -> bool:
    """Against the highest version seen ({version, payload_sha256} or None): True when newer, False when
    it is the one already seen (nothing new). Raises ChannelRollback for a lower version, or the same
    version with other content (two different manifests can never share a version)."""
    if seen is None or manifest.version > seen["version"]:
        return True
    if manifest.version < seen["version"]:
        raise ChannelRollback(f"{where}: channel {manifest.channel} version {manifest.version} is lower than "
                              f"version {seen['version']}, already seen", hint="an old or replayed manifest "
                              "is being served; the release box writes a higher version every time")
    if manifest.payload_sha256 != seen["payload_sha256"]:
        raise ChannelRollback(f"{where}: channel {manifest.channel} version {manifest.version} was already seen "
                              "with other content", hint="the release box never reuses a version number")
    return False


def parse_channel_payload(payload: bytes, *, where: str) -> ChannelManifest:
    """Parse channel payload bytes strictly (canonical JSON, every field, no other); ManifestInvalid."""
    if len(payload) > MAX_BYTES:
        raise ManifestInvalid(f"{where}: the channel manifest is over {MAX_BYTES} bytes")
    doc = check_keys(load_canonical(payload, where), KEYS, where, "channel manifest")
    if type(doc["channel_format"]) is not int or doc["channel_format"] != CHANNEL_FORMAT:
        raise fail(where, "channel_format", f"is {show(doc['channel_format'])}; this EdgeGate reads format "
                                            f"{CHANNEL_FORMAT} (upgrade EdgeGate)")
    check_name(doc["channel"], where, "channel")
    if type(doc["version"]) is not int or not 1 <= doc["version"] < 2**53:
        raise fail(where, "version", f"is {show(doc['version'])}, not a counter from 1")
    check_time(doc["issued_at"], where, "issued_at")
    check_time(doc["expires_at"], where, "expires_at")
    if doc["expires_at"] <= doc["issued_at"]:  # the fixed format orders as text
        raise fail(where, "expires_at", f"{doc['expires_at']} is not after issued_at {doc['issued_at']}")
    check_match(doc["publisher"], KEY_ID_RE, where, "publisher", "a key id (eg- and 16 hex)")
    releases = _releases(doc["releases"], where)
    listed = {(r.name, r.version) for r in releases}
    current = None
    if doc["current"] is not None:
        current = _ref(doc["current"], where, "current", listed)
    rollout = _rollout(doc["rollout"], where, listed) if doc["rollout"] is not None else None
    rollbacks = doc["rollbacks"]
    if not isinstance(rollbacks, list) or len(rollbacks) > MAX_ROLLBACKS or \
            not all(isinstance(r, dict) for r in rollbacks):
        raise fail(where, "rollbacks", f"is not a list of at most {MAX_ROLLBACKS} envelopes")
    return ChannelManifest(channel=doc["channel"], version=doc["version"], issued_at=doc["issued_at"],
                           expires_at=doc["expires_at"], publisher=doc["publisher"], releases=releases,
                           current=current, rollout=rollout, rollbacks=tuple(rollbacks), raw_payload=payload,
                           payload_sha256="sha256:" + hashlib.sha256(payload).hexdigest())


def _blob_ref(value, where: str, field: str, max_size: int) -> dict:
    check_keys(value, {"sha256", "size"}, where, field)
    check_digest(value["sha256"], where, f"{field}.sha256")
    if type(value["size"]) is not int or not 0 < value["size"] <= max_size:
        raise fail(where, f"{field}.size", f"is {show(value['size'])}, not a size in bytes up to {max_size}")
    return value


def _releases(entries, where: str) -> tuple[ChannelRelease, ...]:
    if not isinstance(entries, list) or len(entries) > MAX_RELEASES:
        raise fail(where, "releases", f"is not a list of at most {MAX_RELEASES} releases")
    out = []
    for i, entry in enumerate(entries):
        field = f"releases[{i}]"
        check_keys(entry, {"name", "version", "identity", "manifest", "evidence"}, where, field)
        check_name(entry["name"], where, f"{field}.name")
        check_semver(entry["version"], where, f"{field}.version")
        check_digest(entry["identity"], where, f"{field}.identity")
        manifest = _blob_ref(entry["manifest"], where, f"{field}.manifest", MAX_ENVELOPE_BYTES)
        evidence = None if entry["evidence"] is None else _blob_ref(entry["evidence"], where, f"{field}.evidence",
                                                                      2**40)
        out.append(ChannelRelease(entry["name"], entry["version"], entry["identity"], manifest["sha256"],
                                  manifest["size"], evidence))
    refs = [(r.name, r.version) for r in out]
    if len(set(refs)) != len(refs):
        raise fail(where, "releases", "lists a release twice")
    return tuple(out)


def _ref(value, where: str, field: str, listed: set) -> tuple[str, str]:
    check_keys(value, {"name", "version"}, where, field)
    ref = (check_name(value["name"], where, f"{field}.name"), check_semver(value["version"], where,
                                                                             f"{field}.version"))
    if ref not in listed:
        raise fail(where, field, f"names {ref[0]}@{ref[1]}, which the releases list does not hold")
    return ref


def _rollout(value, where: str, listed: set) -> Rollout:
    check_keys(value, {"id", "release", "seed", "ranges"}, where, "rollout")
    check_match(value["id"], ROLLOUT_ID_RE, where, "rollout.id", "a rollout id")
    name, version = _ref(value["release"], where, "rollout.release", listed)
    check_match(value["seed"], TEXT_RE, where, "rollout.seed", "a short printable string")
    ranges = value["ranges"]
    if not isinstance(ranges, list) or not 1 <= len(ranges) <= 64:
        raise fail(where, "rollout.ranges", "is not a list of 1 to 64 [lo, hi] pairs")
    previous_hi = 0
    for i, pair in enumerate(ranges):
        ok = (isinstance(pair, list) and len(pair) == 2 and all(type(v) is int for v in pair)
              and previous_hi <= pair[0] < pair[1] <= SCALE)
        if not ok:
            raise fail(where, f"rollout.ranges[{i}]", f"is {show(pair)}, not [lo, hi] with lo < hi, in order, "
                                                      f"without overlap, within 0..{SCALE}")
        previous_hi = pair[1]
    return Rollout(value["id"], name, version, value["seed"], tuple((lo, hi) for lo, hi in ranges))
