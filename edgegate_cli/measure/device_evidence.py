"""Evidence from physical devices (SPEC §8): `genie-t2t-run --profile` JSON files fed to a run.

A Genie profile gives token metrics (ttft_ms, tps, prompt_tps) that AI Hub jobs cannot produce.
Each file becomes a raw payload of its device, read through the metric-mapping mechanism: the
run's mapping snapshot gains the Genie entries, so `gate check` re-derives them like any other.
"""

from __future__ import annotations

from pydantic import BaseModel

from ..errors import InvalidInput

KINDS = ("genie",)


class Evidence(BaseModel):
    device: str
    kind: str
    path: str
    payload: dict


def parse_evidence(specs: list[str], devices: list[str], source: str) -> list[Evidence]:
    """Parse `--evidence [DEVICE=]genie:FILE` values; the device may be omitted for a one-device pipeline.

    Raises InvalidInput for a malformed value, an unknown device or kind, or a malformed file.
    """
    from .genie import parse_genie_profile

    out = []
    for spec in specs:
        device, _, rest = spec.rpartition("=") if "=" in spec else ("", "", spec)
        kind, sep, path = rest.partition(":")
        if not sep or kind not in KINDS or not path:
            raise InvalidInput(f"--evidence {spec!r}: expected [DEVICE=]genie:FILE")
        if not device:
            if len(devices) != 1:
                raise InvalidInput(f"--evidence {spec!r}: name the device (DEVICE=genie:FILE); {source} runs "
                                   f"on {len(devices)} devices")
            device = devices[0]
        if device not in devices:
            raise InvalidInput(f"--evidence {spec!r}: {device!r} is not one of {source}'s devices "
                               f"({', '.join(devices)})")
        out.append(Evidence(device=device, kind=kind, path=path, payload=parse_genie_profile(path).payload))
    return out


def mapping_with_evidence(mapping: dict, evidence: list[Evidence], created_at: str) -> dict:
    """The run's mapping: the backend's, with its token metrics read from the Genie evidence.

    Evidence is explicit: when given, ttft_ms / tps / prompt_tps come from the profiles only.

    Genie entries are marked stable: unlike a backend's payloads, every evidence file is checked
    field by field when it is parsed (a missing field is refused), so no key can silently vanish.
    """
    if not evidence:
        return mapping
    from .genie import GENIE_CANDIDATES, PAYLOAD_FORMAT
    from .mapping import derive_mapping

    genie = derive_mapping("genie", [e.payload for e in evidence], GENIE_CANDIDATES, unavailable={},
                           probe_run_id="evidence", created_at=created_at, payload_format=PAYLOAD_FORMAT)
    merged = {**mapping, "metrics": dict(mapping["metrics"]),
              "evidence_formats": sorted({e.payload.get("format", "") for e in evidence})}
    for name in GENIE_CANDIDATES:
        if genie["metrics"][name]["available"]:
            merged["metrics"][name] = {**genie["metrics"][name], "stable": True}
    return merged


def check_evidence_coverage(pipeline, evidence: list[Evidence]) -> None:
    """A required gate on a metric only evidence provides needs evidence for every device it gates."""
    from ..errors import MissingRequiredMetric
    from .genie import GENIE_CANDIDATES

    covered = {e.device for e in evidence}
    for gate in pipeline.gates:
        if not gate.required or gate.metric not in GENIE_CANDIDATES:
            continue
        missing = [d for d in pipeline.devices if (gate.device in (None, d)) and d not in covered]
        if missing:
            raise MissingRequiredMetric(f"{pipeline.source}: gate {gate.label!r} needs {gate.metric} on "
                                        f"{', '.join(missing)}, which only a Genie profile provides here",
                                        hint="pass --evidence DEVICE=genie:FILE for each of those devices")
