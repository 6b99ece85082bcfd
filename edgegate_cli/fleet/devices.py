"""The fleet's device registry (SPEC §10.2): the `devices` table (m005 + m009_fleet_devices).

Minimal version of the fleet contract (/work/notes/contract14.md) written by the rollout helper; the
fleet helper's branch owns this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import NotFound


class DeviceNotFound(NotFound):
    code = "DEVICE_NOT_FOUND"


@dataclass(frozen=True)
class Device:
    device_id: str
    address: str
    device_type: str
    region: str | None
    tags: dict[str, str] = field(default_factory=dict)
    active_release: str | None = None
    previous_release: str | None = None
    last_seen: str | None = None


def _device(row: dict) -> Device:
    return Device(row["device_id"], row["address"] or "", row["device_type"] or "", row["region"],
                  json.loads(row["tags_json"] or "{}"), row["active_release"], row["previous_release"],
                  row["last_seen"])


def list_devices(db, device_filter=None) -> list[Device]:
    """Every device (matching `device_filter`), sorted by device_id."""
    devices = [_device(r) for r in db.query("SELECT * FROM devices ORDER BY device_id")]
    return [d for d in devices if device_filter is None or device_filter.matches(d)]


def get_device(db, device_id: str) -> Device:
    rows = list(db.query("SELECT * FROM devices WHERE device_id = ?", [device_id]))
    if not rows:
        raise DeviceNotFound(f"device {device_id} is not in the fleet", hint="see `edgegate fleet list`")
    return _device(rows[0])


def upsert_device(db, device: Device) -> bool:
    """Insert or update a device's registration (not its reported releases). True if anything changed."""
    now = db.now()
    row = {"device_id": device.device_id, "address": device.address, "device_type": device.device_type,
           "region": device.region, "tags_json": json.dumps(device.tags, sort_keys=True, separators=(",", ":"))}
    with db.atomic():
        old = list(db.query("SELECT * FROM devices WHERE device_id = ?", [device.device_id]))
        if old and all(old[0][k] == v for k, v in row.items()):
            return False
        db["devices"].upsert({**row, "updated_at": now, **({} if old else {"created_at": now})}, pk="device_id")
    return True


def record_status(db, device_id: str, *, active_release: str | None, previous_release: str | None, seen_at: str,
                  status: dict | None, error: str | None) -> None:
    with db.atomic():
        db["devices"].update(device_id, {
            "active_release": active_release, "previous_release": previous_release, "last_seen": seen_at,
            "last_status_json": json.dumps(status, sort_keys=True) if status is not None else None,
            "last_error": error, "updated_at": db.now()})
