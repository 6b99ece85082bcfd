"""Names inside an evidence bundle that both its writer and its readers use: the format number, the
directory of each device's raw payloads, and where a baseline blob sits."""

from __future__ import annotations

import re

BUNDLE_FORMAT = 1


def device_slugs(devices: list[str]) -> dict[str, str]:
    """A directory name per device (`local:cpu` -> `local-cpu`), unique within the run."""
    out: dict[str, str] = {}
    for device in devices:
        slug = re.sub(r"[^a-z0-9._]+", "-", device.lower()).strip("-.") or "device"
        candidate, n = slug, 2
        while candidate in out.values():
            candidate, n = f"{slug}-{n}", n + 1
        out[device] = candidate
    return out


def baseline_file(digest: str) -> str:
    """Where a baseline blob (mapping or payload) sits in a bundle: named by its own sha256."""
    return f"baselines/{digest}.json"
