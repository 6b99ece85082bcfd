"""The store side of the pull tests: put a hand-made release's objects in a bucket as `releases push`
lays them out, write signed channel manifests (including ones the release box would never write:
expired, lower versions, foreign signers), read the agents' status reports, and start pull agents."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

from edgegate_cli.evidence import channel_manifest as cm
from edgegate_cli.evidence import dsse
from edgegate_cli.evidence import release_manifest as rm

from .releases import Release

PREFIX = "edge"


def utc(**delta) -> str:
    return dsse.format_utc(datetime.now(UTC) + timedelta(**delta))


def channel_url(bucket: str, channel: str = "stable") -> str:
    return f"s3://{bucket}/{PREFIX}/channels/{channel}.json"


def put_blob(client, bucket: str, data: bytes, *, stored: bytes | None = None) -> str:
    """Put `data` under its sha256 (or, to tamper, other bytes `stored` under data's address); returns hex."""
    hexdigest = hashlib.sha256(data).hexdigest()
    client.put_object(Bucket=bucket, Key=f"{PREFIX}/blobs/sha256/{hexdigest}", Body=data if stored is None else stored)
    return hexdigest


def upload_release(client, bucket: str, release: Release, *, tamper: dict[str, bytes] | None = None) -> dict:
    """Every blob of `release` and its manifest into the bucket; `tamper` replaces the stored bytes of
    some (path -> bytes). Returns the channel entry."""
    for path, data in release.files:
        put_blob(client, bucket, data, stored=(tamper or {}).get(path))
    envelope = rm.envelope_text(release.envelope).encode()
    put_blob(client, bucket, envelope)
    return {"name": release.name, "version": release.version, "identity": release.identity,
            "manifest": {"sha256": "sha256:" + hashlib.sha256(envelope).hexdigest(), "size": len(envelope)},
            "evidence": None}


def write_channel(client, bucket: str, signer, *, version: int, releases: list[dict], current: dict | None,
                  rollout: dict | None = None, rollbacks=(), expires_at: str | None = None,
                  issued_at: str | None = None, channel: str = "stable") -> dict:
    doc = cm.build_channel(channel=channel, version=version, issued_at=issued_at or utc(minutes=-1),
                           expires_at=expires_at or utc(days=7), publisher=signer.key_id, releases=releases,
                           current=current, rollout=rollout, rollbacks=list(rollbacks))
    envelope = cm.sign_channel(doc, signer)
    client.put_object(Bucket=bucket, Key=f"{PREFIX}/channels/{channel}.json", Body=json.dumps(envelope).encode())
    return envelope


def report(client, bucket: str, device_id: str) -> dict | None:
    try:
        body = client.get_object(Bucket=bucket, Key=f"{PREFIX}/status/{device_id}/status.json")["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def wait_reports(client, bucket: str, devices: list[str], check, what: str, timeout: float = 90.0) -> dict:
    """Poll the status reports (bounded) until `check(report)` holds for every device; return them."""
    deadline, last = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        last = {d: report(client, bucket, d) for d in devices}
        if all(r is not None and check(r) for r in last.values()):
            return last
        time.sleep(0.1)
    summary = {d: r and {"poll": r["poll"], "active": r["active"], "seen": r["channel"]["seen"]}
               for d, r in last.items()}
    raise AssertionError(f"not every device reached {what} within {timeout} s: {summary}")


def seen(version: int):
    """A report check: the device has seen channel `version` and its poll after that ended."""
    return lambda r: (r["channel"]["seen"] or {}).get("version") == version and r["poll"]["channel_version"] == version


def active_version(r: dict) -> str | None:
    return r["active"]["version"] if r["active"] else None


def pull_agent(agent_factory, server, bucket: str, device_id: str, *, poll: float = 0.5, **settings):
    """A started agent in pull mode on the bucket's stable channel, with the store's credentials."""
    return agent_factory(device_id=device_id, args=("--channel", channel_url(bucket), "--poll", str(poll)),
                         env=server.env(), **settings)


def position(seed: str, device_id: str) -> int:
    """The cohort position, computed here independently of the agent: sha256(seed ‖ id)[:8] in millionths."""
    return int(hashlib.sha256((seed + device_id).encode()).hexdigest()[:16], 16) * 1_000_000 >> 64
