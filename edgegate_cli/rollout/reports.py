"""The pull agents' status reports, as the release box reads them (SPEC §10.5): every
`<root>/status/<device id>/status.json` on the store, listed and fetched concurrently, each checked and
reduced to what a rollout needs (what runs, what the last poll said, the inference counters).

A report is written by a device with its own credentials: it is data, not trusted input. One that is too
large, not JSON, about another device or another channel, or of an unknown format is left out and counted
(`unreadable`), never fatal: one broken device must not stop the fleet's rollout.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import EdgeGateError
from .analysis import Counters, parse_metrics

MAX_REPORT_BYTES = 256 << 10
REPORT_FORMAT = 1
THREADS = 16


@dataclass(frozen=True)
class DeviceReport:
    device_id: str
    reported_at: str
    active_sha256: str | None
    active_release: str | None  # NAME@VERSION
    channel_version: int | None  # the channel version the device has seen
    poll_status: str | None  # ok | refused | error
    poll_code: str | None
    poll_message: str | None
    poll_release: str | None  # the release the channel asked this device to run, at its last poll
    counters: Counters = field(default_factory=dict)


@dataclass
class Reports:
    devices: dict[str, DeviceReport]
    unreadable: dict[str, str]  # device id (or key) -> why it was left out
    requests: int = 0


def status_prefix(location) -> str:
    return location.key("status/")


def read_reports(store, location, channel: str, *, threads: int = THREADS) -> Reports:
    """Every readable report of a device on `channel` under `location`. Raises the store's errors for a
    failed LIST (the analysis cannot run without it); a report that cannot be fetched is `unreadable`."""
    prefix = status_prefix(location)
    keys = [o.key for o in store.list(prefix) if o.key.endswith("/status.json")]
    out = Reports({}, {}, requests=1 + len(keys) // 1000)

    def one(key: str):
        device_id = key[len(prefix):-len("/status.json")]
        try:
            with store.get_stream(key, max_bytes=MAX_REPORT_BYTES) as chunks:
                data = b"".join(chunks)
            return device_id, parse_report(data, device_id, channel)
        except EdgeGateError as exc:
            return device_id, exc.message
        except (json.JSONDecodeError, UnicodeDecodeError):
            return device_id, "not JSON"
        except ValueError as exc:  # parse_report's own words
            return device_id, str(exc)
        except (TypeError, KeyError, AttributeError) as exc:  # a field of the wrong type
            return device_id, f"malformed ({type(exc).__name__})"

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for device_id, result in pool.map(one, keys):
            out.requests += 1
            if isinstance(result, DeviceReport):
                out.devices[device_id] = result
            elif result is not None:
                out.unreadable[device_id] = result
    return out


def parse_report(data: bytes, device_id: str, channel: str) -> DeviceReport | None:
    """The report of `device_id`, or None when it is about another channel (that device is not ours).
    Raises ValueError naming what is wrong."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("report_format") != REPORT_FORMAT:
        raise ValueError(f"report_format is not {REPORT_FORMAT}")
    if doc.get("device_id") != device_id:
        raise ValueError("the report names another device than its key")
    on = doc.get("channel") or {}
    if on.get("name") != channel:
        return None
    active, poll = doc.get("active") or {}, doc.get("poll") or {}
    seen = on.get("seen") or {}
    metrics = doc.get("metrics")
    return DeviceReport(
        device_id=device_id, reported_at=_text(doc.get("reported_at")) or "",
        active_sha256=_text(active.get("sha256")),
        active_release=f"{active['name']}@{active['version']}" if active.get("name") and active.get("version")
        else None,
        channel_version=seen.get("version") if type(seen.get("version")) is int else None,
        poll_status=_text(poll.get("status")), poll_code=_text(poll.get("code")),
        poll_message=_text(poll.get("message")), poll_release=_text(poll.get("release")),
        counters=parse_metrics(metrics) if isinstance(metrics, str) else {})


def _text(value) -> str | None:
    return value[:500] if isinstance(value, str) else None
