"""The agent's durable state: `<state_dir>/state.json`, replaced by write-temp, fsync, rename (and an
fsync of the directory) **before** the agent acknowledges anything that changed it, so a restart can
never reopen a downgrade or a replay.

    {"state_format": 1,
     "active":   {name, version, sha256 (model identity), manifest_sha256, dir, since, deployment_id} | null,
     "previous": the same | null,                       # the rollback target, kept loaded and on disk
     "highest":  {release name: highest accepted version},
     "nonces":   {nonce: keep_until},                   # pruned once a replay would fail the time check anyway
     "deployments": [{id, kind, status, code, message, release, rollout_id, accepted_at, ...}],  # newest last
     "refusals": {code: count}, "recent_refusals": [{at, code, message}],
     "channels": {channel: {version, payload_sha256, seen_at}}}   # pull mode: the highest version seen
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvalidInput, StateTooNew

STATE_FORMAT = 1
KEEP_DEPLOYMENTS = 50
KEEP_REFUSALS = 20
IN_FLIGHT = ("staging", "loading", "warming")


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def empty_state() -> dict:
    return {"state_format": STATE_FORMAT, "active": None, "previous": None, "highest": {}, "nonces": {},
            "deployments": [], "refusals": {}, "recent_refusals": [], "channels": {}}


class StateFile:
    """Reads and atomically replaces state.json in `root` (created 0700 when missing)."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / "state.json"

    def load(self) -> dict:
        """The saved state, or an empty one. Raises InvalidInput for an unreadable file, StateTooNew for a
        newer format (never guess at a state this agent does not understand)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise InvalidInput(f"{self.root}: cannot create the agent's state_dir ({exc.strerror})") from None
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return empty_state()
        except OSError as exc:
            raise InvalidInput(f"{self.path}: cannot read the agent state ({exc.strerror})") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"{self.path}: not valid JSON ({exc})",
                               hint="the file is only ever replaced whole; restore it from a backup") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("state_format"), int):
            raise InvalidInput(f"{self.path}: not an agent state file (no state_format)")
        if doc["state_format"] > STATE_FORMAT:
            raise StateTooNew(f"{self.path}: state format {doc['state_format']} is newer than this agent's "
                              f"({STATE_FORMAT})", hint="run the newer EdgeGate agent, or give another state_dir")
        return {**empty_state(), **doc}

    def save(self, doc: dict) -> None:
        """Write-temp, fsync, rename, fsync the directory. Returns only once the new state is durable."""
        tmp = self.path.with_name(f".state.json.{os.getpid()}.tmp")
        data = json.dumps(doc, sort_keys=True, indent=1, allow_nan=False).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(self.root)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(doc: dict, now: datetime) -> None:
    """Drop nonces whose keep_until has passed and all but the newest deployments (in flight kept)."""
    stamp = utc_text(now)
    doc["nonces"] = {n: until for n, until in doc["nonces"].items() if until > stamp}
    deployments = doc["deployments"]
    if len(deployments) > KEEP_DEPLOYMENTS:
        old, recent = deployments[:-KEEP_DEPLOYMENTS], deployments[-KEEP_DEPLOYMENTS:]
        doc["deployments"] = [d for d in old if d["status"] in IN_FLIGHT] + recent


def record_refusal(doc: dict, code: str, message: str, now: datetime) -> None:
    doc["refusals"][code] = doc["refusals"].get(code, 0) + 1
    doc["recent_refusals"] = [*doc["recent_refusals"], {"at": utc_text(now), "code": code,
                                                       "message": message}][-KEEP_REFUSALS:]


def find_deployment(doc: dict, deployment_id: str) -> dict | None:
    return next((d for d in doc["deployments"] if d["id"] == deployment_id), None)


def in_flight(doc: dict) -> dict | None:
    return next((d for d in doc["deployments"] if d["status"] in IN_FLIGHT), None)
