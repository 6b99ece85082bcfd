"""Genie profiles (SPEC §8): a `genie-t2t-run --profile` JSON from a physical device as GenAI evidence.

The real structure (shared reference data/genie_profile_llama3_2_1b_xiaomi15.json, Genie profile
header 0.1.0):
    {"header": {"artifact_type": "GENIE_PROFILE", ...}, "metadata": {...},
     "components": [{"name": "dialog0", "type": "dialog", "events": [
        {"type": "GenieDialog_create", "init-time": {"value": 1124713, "unit": "us"}, ...},
        {"type": "GenieDialog_query", "duration": 5726945,
         "time-to-first-token": {"value": 531665, "unit": "us"},
         "token-generation-rate": {"value": 38.5, "unit": "toks/sec"},
         "prompt-processing-rate": {"value": 1547.9, "unit": "toks/sec"},
         "num-prompt-tokens": {"value": 823, "unit": ""}, "num-generated-tokens": {...},
         "token-generation-time": {"value": 5191579, "unit": "us"}},
        {"type": "GenieDialog_free", ...}]}]}
`parse_genie_profile` reads every GenieDialog_query event into a normalized payload (times in µs,
rates in tokens/s, whatever units the file used); GENIE_CANDIDATES maps that payload onto the
canonical metrics, converting µs to ms at the mapping as SPEC §4 asks.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import InvalidInput

PAYLOAD_FORMAT = "genie-profile/1"
QUERY_EVENT = "GenieDialog_query"
# Mapping candidates in backends/local.py's CANDIDATES shape; the payload is `GenieEvidence.payload`.
GENIE_CANDIDATES = {
    "ttft_ms": {"source": {"path": "$.queries[*].ttft_us", "reduce": "median", "scale": 0.001}},
    "tps": {"source": {"path": "$.queries[*].tps", "reduce": "median"}},
    "prompt_tps": {"source": {"path": "$.queries[*].prompt_tps", "reduce": "median"}},
}
GENIE_UNAVAILABLE_REASON = "a genie-t2t-run --profile JSON reports token metrics only"

_TIME_TO_US = {"ns": 0.001, "us": 1.0, "µs": 1.0, "ms": 1000.0, "s": 1_000_000.0}
_RATE_UNITS = ("toks/sec", "toks/s", "tok/s", "tokens/s", "tokens/sec")
# payload key: (profile field, kind); the first three are required in every query event
_FIELDS = {
    "ttft_us": ("time-to-first-token", "time"),
    "tps": ("token-generation-rate", "rate"),
    "prompt_tps": ("prompt-processing-rate", "rate"),
    "num_prompt_tokens": ("num-prompt-tokens", "count"),
    "num_generated_tokens": ("num-generated-tokens", "count"),
    "token_generation_time_us": ("token-generation-time", "time"),
}
_REQUIRED = ("ttft_us", "tps", "prompt_tps")
_HINT = "expected the JSON written by genie-t2t-run --profile"


class GenieQuery(BaseModel):
    component: str  # the component's name, e.g. dialog0
    event_index: int  # index in that component's events
    ttft_us: float
    tps: float  # decode tokens/s as Genie reports it (num-generated-tokens / token-generation-time)
    prompt_tps: float
    num_prompt_tokens: int | None = None
    num_generated_tokens: int | None = None
    token_generation_time_us: float | None = None
    duration_us: float | None = None


class GenieEvidence(BaseModel):
    source: str
    sha256: str  # tagged, of the file's bytes
    queries: list[GenieQuery]
    ttft_ms: float  # medians over the queries, in canonical units
    tps: float
    prompt_tps: float
    init_time_us: float | None = None  # GenieDialog_create init-time, when present
    payload: dict  # the normalized payload the GENIE_CANDIDATES paths read


def parse_genie_profile(path: Path | str) -> GenieEvidence:
    """Read a `genie-t2t-run --profile` JSON; return its query metrics and the normalized payload

        {"format": "genie-profile/1", "artifact_type": "GENIE_PROFILE", "init_time_us": float|None,
         "queries": [{"component", "event_index", "ttft_us", "tps", "prompt_tps", "num_prompt_tokens",
                      "num_generated_tokens", "token_generation_time_us", "duration_us"}, ...]}

    Raises InvalidInput naming the file and the JSON path: malformed JSON, not a Genie profile,
    `missing field $.components[0].events[1].time-to-first-token`, a non-numeric or negative value,
    an unknown unit, or no GenieDialog_query event at all.
    """
    from ..files import read_regular
    from ..spec.schemas import parse_file

    src = str(path)
    doc = parse_file(path)
    if not isinstance(doc, dict):
        raise InvalidInput(f"{src}: $: expected a JSON object, got {type(doc).__name__}", path=src, hint=_HINT)
    kind = doc.get("header", {}).get("artifact_type") if isinstance(doc.get("header"), dict) else None
    if kind is not None and kind != "GENIE_PROFILE":
        raise InvalidInput(f"{src}: $.header.artifact_type: {kind!r} is not GENIE_PROFILE", path=src, hint=_HINT)
    queries, init_us = [], None
    for ci, component in enumerate(_list(doc, "components", "$", src)):
        where = f"$.components[{ci}]"
        if not isinstance(component, dict):
            raise InvalidInput(f"{src}: {where}: expected an object", path=src, hint=_HINT)
        for ei, event in enumerate(_list(component, "events", where, src)):
            at = f"{where}.events[{ei}]"
            if not isinstance(event, dict):
                raise InvalidInput(f"{src}: {at}: expected an object", path=src, hint=_HINT)
            if event.get("type") == "GenieDialog_create" and "init-time" in event:
                init_us = _quantity(event, "init-time", "time", at, src)
            if event.get("type") == QUERY_EVENT:
                queries.append(_query(event, str(component.get("name", ci)), ei, at, src))
    if not queries:
        raise InvalidInput(f"{src}: no {QUERY_EVENT} event in $.components[*].events; profile at least one "
                           "query with genie-t2t-run --profile", path=src, hint=_HINT)
    payload = {"format": PAYLOAD_FORMAT, "artifact_type": kind, "init_time_us": init_us,
               "queries": [q.model_dump() for q in queries]}
    return GenieEvidence(
        source=src, sha256="sha256:" + hashlib.sha256(read_regular(path)).hexdigest(), queries=queries,
        ttft_ms=statistics.median(q.ttft_us for q in queries) / 1000.0,
        tps=statistics.median(q.tps for q in queries), prompt_tps=statistics.median(q.prompt_tps for q in queries),
        init_time_us=init_us, payload=payload)


def _list(obj: dict, key: str, where: str, src: str) -> list:
    if key not in obj:
        raise InvalidInput(f"{src}: missing field {where}.{key}", path=src, field=f"{where}.{key}", hint=_HINT)
    if not isinstance(obj[key], list):
        raise InvalidInput(f"{src}: {where}.{key}: expected a list, got {type(obj[key]).__name__}",
                           path=src, hint=_HINT)
    return obj[key]


def _query(event: dict, component: str, index: int, at: str, src: str) -> GenieQuery:
    values: dict[str, Any] = {}
    for key, (field, kind) in _FIELDS.items():
        if key in _REQUIRED or field in event:
            values[key] = _quantity(event, field, kind, at, src)
    duration = event.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool) and math.isfinite(duration):
        values["duration_us"] = float(duration)
    return GenieQuery(component=component, event_index=index, **values)


def _quantity(event: dict, field: str, kind: str, at: str, src: str) -> float | int:
    """The value of a `{value, unit}` field, converted to µs (time), tokens/s (rate) or an int (count)."""
    where = f"{at}.{field}"
    if field not in event:
        raise InvalidInput(f"{src}: missing field {where}", path=src, field=where, hint=_HINT)
    item = event[field]
    if not isinstance(item, dict):
        raise InvalidInput(f"{src}: {where}: expected {{\"value\", \"unit\"}}, got {item!r}", path=src, hint=_HINT)
    for part in ("value", "unit"):
        if part not in item:
            raise InvalidInput(f"{src}: missing field {where}.{part}", path=src, field=f"{where}.{part}", hint=_HINT)
    value, unit = item["value"], item["unit"]
    if not isinstance(unit, str):
        raise InvalidInput(f"{src}: {where}.unit: {unit!r} is not a unit name (a string)", path=src, hint=_HINT)
    if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > 1e300 \
            or not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{src}: {where}.value: {value!r} is not a finite number >= 0", path=src, hint=_HINT)
    if kind == "count":
        if not float(value).is_integer():
            raise InvalidInput(f"{src}: {where}.value: {value!r} is not a whole number of tokens", path=src)
        return int(value)
    if kind == "time" and unit in _TIME_TO_US:
        return float(value) * _TIME_TO_US[unit]
    if kind == "rate" and unit in _RATE_UNITS:
        return float(value)
    known = ", ".join(_TIME_TO_US if kind == "time" else _RATE_UNITS)
    raise InvalidInput(f"{src}: {where}.unit: unknown unit {unit!r} (expected {known})", path=src, hint=_HINT)
