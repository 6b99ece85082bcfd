"""Writing a channel manifest (SPEC §10.5) on an S3-compatible store: read what is there, change it,
sign it with a higher version and a fresh expiry, write it, audit it.

Callers upload every object the new manifest names **before** calling `update_channel` (content-addressed
blobs never change), so a reader sees either the old manifest or the new one, each complete.

The version never decreases: the next one is above both the store's copy and every version this home
has written to that channel (audit events `channel_published`), so a channel object deleted or rolled
back in the bucket cannot make agents see an old number again. Two writers of one home are serialised
by the state database's write lock; two homes writing one channel are not supported.

The pure document changes a rollout needs (item 3 of issue 15): `with_release`, `with_rollout`,
`promote_rollout`, `with_rollbacks`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from pydantic import BaseModel

from ..errors import InvalidInput
from ..evidence import channel_manifest as cm
from ..evidence.dsse import format_utc, parse_envelope
from ..evidence.keys import trusted_keys
from ..evidence.release_manifest import envelope_text
from ..store.state import record_audit

DEFAULT_EXPIRY = timedelta(days=7)
EVENT = "channel_published"


class ChannelUpdate(BaseModel):
    url: str  # the channel manifest's s3:// URL (what agents are given)
    channel: str
    version: int
    previous_version: int | None
    payload_sha256: str
    issued_at: str
    expires_at: str
    current: str | None  # NAME@VERSION
    rollout: dict | None
    releases: int


def channel_key(location, channel: str) -> str:
    return location.key(f"channels/{channel}.json")


def read_channel_doc(ws, store, location, channel: str) -> tuple[dict | None, int]:
    """(the verified channel document on the store or None, its version or 0). An expired one is read
    (renewing it is the point); one this home cannot verify is refused with the signature's code."""
    key = channel_key(location, channel)
    if store.head(key) is None:
        return None, 0
    with store.get_stream(key, max_bytes=cm.MAX_BYTES) as chunks:
        data = b"".join(chunks)
    where = location.url(key)
    try:
        envelope = json.loads(data)
    except ValueError:
        raise InvalidInput(f"{where}: the channel manifest there is not JSON",
                           hint="delete the object if it is not a channel manifest; agents keep their floor") from None
    manifest = cm.verify_channel_envelope(envelope, trusted_keys(ws), now=ws.ctx.clock.now(), where=where,
                                          channel=channel, allow_expired=True)
    return json.loads(manifest.raw_payload), manifest.version


def audited_version(ws, url: str) -> int:
    """The highest channel version this home ever wrote to `url`."""
    row = ws.db.execute("SELECT MAX(CAST(json_extract(detail_json, '$.version') AS INTEGER)) FROM audit_events "
                        "WHERE event = ? AND json_extract(detail_json, '$.url') = ?", [EVENT, url]).fetchone()
    return int(row[0] or 0)


def update_channel(ws, store, location, channel: str, signer, change: Callable[[dict], dict], *,
                   expires_in: timedelta = DEFAULT_EXPIRY, command: str = "releases push") -> ChannelUpdate:
    """Apply `change` (a pure function of {releases, current, rollout, rollbacks}) to the channel's
    document and write it signed by `signer`, with version = max(store, audited) + 1 and expires_at =
    now + `expires_in`. Raises Store* errors, the refusal of a manifest this home cannot verify, and
    InvalidInput for a change that makes an invalid manifest. Nothing is written on any error."""
    key = channel_key(location, channel)
    url = location.url(key)
    with ws.db.atomic():  # one writer per home at a time; the store is read again under the lock
        doc, stored = read_channel_doc(ws, store, location, channel)
        version = max(stored, audited_version(ws, url)) + 1
        body = change({k: (doc or {}).get(k, d) for k, d in (("releases", []), ("current", None),
                                                             ("rollout", None), ("rollbacks", []))})
        now = ws.ctx.clock.now()
        new = cm.build_channel(channel=channel, version=version, issued_at=format_utc(now),
                               expires_at=format_utc(now + expires_in), publisher=signer.key_id,
                               releases=body["releases"], current=body["current"], rollout=body["rollout"],
                               rollbacks=_live_rollbacks(body["rollbacks"], format_utc(now)))
        envelope = cm.sign_channel(new, signer)
        store.put_bytes(key, envelope_text(envelope).encode(), content_type="application/json",
                        cache_control="no-cache")
        manifest = cm.parse_channel_payload(cm.canonical_json(new), where=url)
        result = ChannelUpdate(url=url, channel=channel, version=version, previous_version=stored or None,
                               payload_sha256=manifest.payload_sha256, issued_at=new["issued_at"],
                               expires_at=new["expires_at"], rollout=new["rollout"],
                               current=f"{new['current']['name']}@{new['current']['version']}" if new["current"]
                               else None, releases=len(new["releases"]))
        record_audit(ws.db, command, EVENT, result.model_dump())
    return result


def _live_rollbacks(envelopes: list[dict], now: str) -> list[dict]:
    """The directives whose expires_at has not passed (an expired one would only be refused)."""
    live = []
    for envelope in envelopes:
        _, payload, _ = parse_envelope(envelope)
        if json.loads(payload)["expires_at"] > now:
            live.append(envelope)
    return live


# -- pure changes -------------------------------------------------------------------------------------

def _same(a: dict | None, name: str, version: str) -> bool:
    return a is not None and (a["name"], a["version"]) == (name, version)


def with_release(body: dict, entry: dict, *, make_current: bool) -> dict:
    """`entry` listed (replacing an entry of the same NAME@VERSION); with `make_current`, every device
    outside a rollout runs it, and a rollout of that same release ends (it was promoted). Refuses
    (InvalidInput) to make a lower version of the current release's name current: agents would refuse
    it as DOWNGRADE (going back is a rollout's rollback)."""
    import semver

    name, version = entry["name"], entry["version"]
    current = body["current"]
    if make_current and current and current["name"] == name and \
            semver.Version.parse(version).compare(current["version"]) < 0:
        raise InvalidInput(f"{name}@{version} is below {name}@{current['version']}, the channel's current release",
                           hint="agents refuse a lower version (DOWNGRADE); go back with a rollout's rollback")
    releases = [r for r in body["releases"] if not _same(r, name, version)] + [entry]
    out = {**body, "releases": releases}
    if make_current:
        out["current"] = {"name": name, "version": version}
        if out["rollout"] and _same(out["rollout"]["release"], name, version):
            out["rollout"] = None
    return _prune(out)


def with_rollout(body: dict, *, rollout_id: str, name: str, version: str, seed: str,
                 ranges: list[list[int]]) -> dict:
    """The rollout cohort (devices whose position falls in `ranges`, millionths) runs NAME@VERSION,
    which must be listed."""
    if not any(_same(r, name, version) for r in body["releases"]):
        raise InvalidInput(f"{name}@{version} is not on the channel yet; push its objects first")
    return {**body, "rollout": {"id": rollout_id, "release": {"name": name, "version": version}, "seed": seed,
                                "ranges": [list(r) for r in ranges]}}


def promote_rollout(body: dict) -> dict:
    """The rollout's release becomes current for every device; the rollout ends."""
    if body["rollout"] is None:
        raise InvalidInput("the channel has no rollout to promote")
    release = body["rollout"]["release"]
    return {**body, "current": dict(release), "rollout": None}


def with_rollbacks(body: dict, directives: list[dict], *, current: dict) -> dict:
    """End the rollout: `current` ({name, version}) runs everywhere again, and the signed rollback
    directives (cohort `channel:<name>`) take the devices that had the rollout's release back to it."""
    return {**body, "current": dict(current), "rollout": None, "rollbacks": [*body["rollbacks"], *directives]}


def _prune(body: dict) -> dict:
    """At most cm.MAX_RELEASES entries: the oldest that neither current nor the rollout names go first."""
    releases = list(body["releases"])
    keep = [r for r in (body["current"], (body["rollout"] or {}).get("release")) if r]
    while len(releases) > cm.MAX_RELEASES:
        victim = next(r for r in releases if not any(_same(k, r["name"], r["version"]) for k in keep))
        releases.remove(victim)
    return {**body, "releases": releases}
