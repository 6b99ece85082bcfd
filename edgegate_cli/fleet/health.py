"""`fleet health`: poll every device's /v1/status concurrently (bounded), record what was seen.

A device that does not answer is recorded with its error and reported unreachable, never healthy; its
last_seen stays the last time it did answer.
"""

from __future__ import annotations

import asyncio

from .devices import Device, record_status


def _release(part) -> str | None:
    if not isinstance(part, dict) or not part.get("name"):
        return None
    return f"{part['name']}@{part['version']}"


async def _poll_all(tls, devices: list[Device], concurrency: int, timeout: float, advance) -> list[dict]:
    from .agent_client import AgentClient

    gate = asyncio.Semaphore(concurrency)
    async with AgentClient(tls.ssl_context(), timeout=timeout) as client:
        async def one(device: Device) -> dict:
            async with gate:
                try:
                    status = await client.status(device)
                    result = {"device_id": device.device_id, "reachable": True, "status": status, "error": None}
                except Exception as exc:  # noqa: BLE001 - AgentUnreachable / AgentError, reported per device
                    result = {"device_id": device.device_id, "reachable": False, "status": None,
                              "error": f"{getattr(exc, 'code', type(exc).__name__)}: {exc}"}
            advance(device.device_id)
            return result
        return list(await asyncio.gather(*(one(d) for d in devices)))


def poll_health(db, tls, devices: list[Device], *, concurrency: int = 32, timeout: float = 10.0,
                advance=lambda _: None) -> list[dict]:
    """Poll `devices`, record each result (record_status) and return one row per device."""
    results = asyncio.run(_poll_all(tls, devices, concurrency, timeout, advance))
    by_id = {d.device_id: d for d in devices}
    rows = []
    for res in results:
        device, status = by_id[res["device_id"]], res["status"]
        if status is not None:
            active, previous = _release(status.get("active")), _release(status.get("previous"))
            health = "healthy" if status.get("device_id") == device.device_id else "wrong-device"
            record_status(db, device.device_id, active_release=active, previous_release=previous,
                          seen_at=db.now(), status=status, error=None if health == "healthy" else health)
        else:
            active, previous, health = device.active_release, device.previous_release, "unreachable"
            record_status(db, device.device_id, active_release=active, previous_release=previous,
                          seen_at=device.last_seen, status=None, error=res["error"])
        rows.append({"device_id": device.device_id, "health": health, "active_release": active,
                     "previous_release": previous, "error": res["error"]})
    return rows
