"""A rollout's plan (SPEC §10.4): strategy -> stages -> the exact devices of each, deterministic.

Cohorts: the target devices are ordered by sha256(rollout id ‖ "\\n" ‖ device id) and stages are cut from
that order by cumulative percentage (floor), the last stage taking the rest; a stage that rounds to zero
devices is refused here, at plan time (ZERO_DEVICE_STAGE). Regional stages follow the given region order
(each region's devices in cohort order), optionally led by a canary percentage inside each region.
A/B splits the targets in two disjoint equal cohorts (the order's even and odd positions), A on the
release, B on the other release, over the same window.

On the pull path (`--via s3://...`) there is no device list to cut: a stage is a cohort hash range
[0, hi) of the channel manifest, each device placing itself by sha256(rollout id ‖ device id)
(evidence/channel_manifest.cohort_position); `build_pull_plan` shows which of the devices reporting on
the channel fall in each stage, and refuses a stage none of them falls in, as the push path does.

Pure: no network, no store. `build_plan` takes the snapshot of devices (fleet.devices.Device).
"""

from __future__ import annotations

import hashlib
import math
import secrets

from pydantic import BaseModel, Field

from ..errors import InvalidInput

STRATEGIES = ("direct", "canary", "progressive", "regional", "ab")
ROLLOUT_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class ZeroDeviceStage(InvalidInput):
    code = "ZERO_DEVICE_STAGE"


class NoDevices(InvalidInput):
    code = "NO_DEVICES"


class Thresholds(BaseModel):
    """Analysis rules (defaults from the seed; settable per rollout)."""

    latency_pct: float = 20.0  # median or p90 up by more than this (and significant) = regression
    latency_abs_ms: float = 1.0  # ... and by more than this many ms (noise floor of histogram buckets)
    error_rate: float = 0.05  # inference error rate above this = regression
    accuracy_pct: float = 10.0  # reference agreement (cosine) down by more than this
    alpha: float = 0.05  # Mann-Whitney significance level
    min_samples: int = 20  # per side, else inconclusive
    abort_count: int | None = None  # failed activations >= count -> fail
    abort_pct: float = 50.0  # failed activations >= pct of executed -> fail
    min_executed: int = 1  # ... only once this many devices have executed
    consecutive_error_limit: int = 3  # analyses in error in a row -> fail

    def aborts(self, failed: int, executed: int) -> bool:
        """Failed activations that abort the stage: by count or share, once min_executed devices ran."""
        return executed >= self.min_executed and failed > 0 and (
            (self.abort_count is not None and failed >= self.abort_count) or failed * 100 / executed >= self.abort_pct)


class Rate(BaseModel):
    concurrency: int = 64
    per_minute: int | None = None
    device_timeout_s: float = 60.0
    retries: int = 2


class Stage(BaseModel):
    index: int
    name: str
    percent: float | None = None
    region: str | None = None
    release: str | None = None  # A/B: the B cohort's release
    devices: list[str]
    range_hi: int | None = None  # pull path: the stage covers cohort positions [0, range_hi) (millionths)


class Plan(BaseModel):
    rollout_id: str
    release: str
    strategy: str
    target: str
    bake_s: float
    max_bake_s: float
    thresholds: Thresholds = Field(default_factory=Thresholds)
    rate: Rate = Field(default_factory=Rate)
    stages: list[Stage]
    device_count: int
    via: str | None = None  # pull path: s3://BUCKET/PREFIX whose channel manifest carries the stages
    channel: str | None = None  # ... and the channel (its manifest's seed is the rollout id)


def new_rollout_id() -> str:
    return "ro-" + secrets.token_hex(6)


def check_rollout_id(value: str) -> str:
    if not value or len(value) > 64 or not set(value) <= ROLLOUT_ID_CHARS or not value[0].isalnum():
        raise InvalidInput(f"--id {value!r} is not a rollout id (letters, digits, '.', '_', '-'; at most 64)",
                           field="--id")
    return value


def cohort_order(rollout_id: str, device_ids: list[str]) -> list[str]:
    """Devices ordered by sha256(rollout id ‖ '\\n' ‖ device id): deterministic, different per rollout."""
    return sorted(device_ids, key=lambda d: (hashlib.sha256(f"{rollout_id}\n{d}".encode()).hexdigest(), d))


def parse_percents(text: str, option: str) -> list[float]:
    try:
        values = [float(p.strip().rstrip("%")) for p in text.split(",") if p.strip()]
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a comma-separated list of percentages", field=option) from None
    if not values or any(not 0 < v <= 100 for v in values) or values != sorted(set(values)):
        raise InvalidInput(f"{option} {text!r}: percentages must be increasing, each in (0, 100]", field=option)
    return values if values[-1] == 100 else [*values, 100.0]


def _cut(order: list[str], percents: list[float], label: str) -> list[tuple[float, list[str]]]:
    n, out, done = len(order), [], 0
    for pct in percents:
        upto = n if pct >= 100 else math.floor(n * pct / 100)
        chunk = order[done:upto]
        if not chunk:
            raise ZeroDeviceStage(f"{label}stage {pct:g}% of {n} device(s) rounds to 0 devices",
                                  hint="use fewer stages or larger percentages, or target more devices")
        out.append((pct, chunk))
        done = upto
    return out


def build_plan(*, rollout_id: str, release: str, strategy: str, target: str, devices: list, bake_s: float,
               max_bake_s: float, canary_pct: float = 10.0, steps: list[float] | None = None,
               regions: list[str] | None = None, release_b: str | None = None, region_canary_pct: float | None = None,
               thresholds: Thresholds | None = None, rate: Rate | None = None) -> Plan:
    """The exact stages and devices. Raises NoDevices, ZeroDeviceStage, InvalidInput (naming the option)."""
    if strategy not in STRATEGIES:
        raise InvalidInput(f"--strategy {strategy!r} is not one of {', '.join(STRATEGIES)}", field="--strategy")
    if not devices:
        raise NoDevices(f"--target {target!r} matches no device in the fleet",
                        hint="see `edgegate fleet list --filter ...`")
    if bake_s < 0 or max_bake_s < bake_s:
        raise InvalidInput(f"--max-bake {max_bake_s:g}s must be at least --bake {bake_s:g}s", field="--max-bake")
    order = cohort_order(rollout_id, [d.device_id for d in devices])
    stages: list[Stage] = []
    if strategy == "direct":
        stages.append(Stage(index=0, name="all", percent=100.0, devices=order))
    elif strategy in ("canary", "progressive"):
        percents = [canary_pct, 100.0] if strategy == "canary" else (steps or [10.0, 50.0, 100.0])
        if strategy == "canary" and not 0 < canary_pct < 100:
            raise InvalidInput(f"--canary {canary_pct:g} must be a percentage in (0, 100)", field="--canary")
        for i, (pct, chunk) in enumerate(_cut(order, percents, "")):
            name = "canary" if strategy == "canary" and i == 0 else f"{pct:g}%"
            stages.append(Stage(index=i, name=name, percent=pct, devices=chunk))
    elif strategy == "regional":
        stages = _regional(order, devices, regions, region_canary_pct)
    else:  # ab
        if not release_b:
            raise InvalidInput("--strategy ab needs --release-b NAME@VERSION", field="--release-b")
        if len(order) < 2:
            raise ZeroDeviceStage("A/B needs at least 2 devices (two non-empty cohorts)")
        half = len(order) // 2 * 2  # equal cohorts: an odd device out stays untouched
        stages.append(Stage(index=0, name="A", percent=50.0, devices=order[0:half:2]))
        stages.append(Stage(index=1, name="B", percent=50.0, release=release_b, devices=order[1:half:2]))
    return Plan(rollout_id=rollout_id, release=release, strategy=strategy, target=target, bake_s=bake_s,
                max_bake_s=max_bake_s, thresholds=thresholds or Thresholds(), rate=rate or Rate(), stages=stages,
                device_count=sum(len(s.devices) for s in stages))


def _regional(order: list[str], devices: list, regions: list[str] | None, canary_pct: float | None) -> list[Stage]:
    """One stage per region in the given order (each optionally led by a canary of canary_pct)."""
    by_region: dict[str, list[str]] = {}
    region_of = {d.device_id: d.region for d in devices}
    for device_id in order:
        by_region.setdefault(region_of[device_id] or "(none)", []).append(device_id)
    wanted = regions or sorted(by_region)
    missing = [r for r in by_region if r not in wanted]
    if missing:
        raise InvalidInput(f"--regions leaves out region(s) {', '.join(missing)} of the targets", field="--regions")
    stages: list[Stage] = []
    for region in wanted:
        chunk = by_region.get(region, [])
        if not chunk:
            raise ZeroDeviceStage(f"region {region} has 0 target devices", hint="drop it from --regions")
        parts = _cut(chunk, [canary_pct, 100.0], f"region {region}: ") if canary_pct else [(100.0, chunk)]
        for pct, part in parts:
            stages.append(Stage(index=len(stages), name=region + (" canary" if pct < 100 else ""), region=region,
                                percent=pct, devices=part))
    return stages


PULL_STRATEGIES = ("direct", "canary", "progressive")


def build_pull_plan(*, rollout_id: str, release: str, strategy: str, via: str, channel: str, devices: list[str],
                    bake_s: float, max_bake_s: float, canary_pct: float = 10.0, steps: list[float] | None = None,
                    thresholds: Thresholds | None = None, rate: Rate | None = None) -> Plan:
    """Stages as cohort ranges over the devices reporting on the channel (`devices`). Raises NoDevices,
    ZeroDeviceStage, InvalidInput naming the option."""
    from ..evidence.channel_manifest import SCALE, cohort_position

    if strategy not in PULL_STRATEGIES:
        raise InvalidInput(f"--strategy {strategy!r} is not available with --via: the channel manifest carries one "
                           f"cohort range ({', '.join(PULL_STRATEGIES)})", field="--strategy",
                           hint="regional and A/B rollouts need the push path: devices in `edgegate fleet`")
    if not devices:
        raise NoDevices(f"no device reports on channel {channel} under {via}",
                        hint="start agents with `edgegate agent serve --channel ...` first; they report after "
                             "their first poll")
    if bake_s < 0 or max_bake_s < bake_s:
        raise InvalidInput(f"--max-bake {max_bake_s:g}s must be at least --bake {bake_s:g}s", field="--max-bake")
    if strategy == "canary" and not 0 < canary_pct < 100:
        raise InvalidInput(f"--canary {canary_pct:g} must be a percentage in (0, 100)", field="--canary")
    percents = {"direct": [100.0], "canary": [canary_pct, 100.0],
                "progressive": steps or [10.0, 50.0, 100.0]}[strategy]
    placed = sorted((cohort_position(rollout_id, d), d) for d in devices)
    stages, lo = [], 0
    for i, pct in enumerate(percents):
        hi = SCALE if pct >= 100 else round(pct * SCALE / 100)
        chunk = [d for position, d in placed if lo <= position < hi]
        if not chunk:
            raise ZeroDeviceStage(f"stage {pct:g}% (cohort positions {lo}-{hi} of {SCALE}) holds none of the "
                                  f"{len(devices)} device(s) reporting on channel {channel}",
                                  hint="use larger percentages, or another --id: it seeds the cohort positions")
        name = "canary" if strategy == "canary" and i == 0 else ("all" if strategy == "direct" else f"{pct:g}%")
        stages.append(Stage(index=i, name=name, percent=pct, devices=chunk, range_hi=hi))
        lo = hi
    return Plan(rollout_id=rollout_id, release=release, strategy=strategy, target=f"channel {channel}",
                bake_s=bake_s, max_bake_s=max_bake_s, thresholds=thresholds or Thresholds(), rate=rate or Rate(),
                stages=stages, device_count=len(devices), via=via, channel=channel)
