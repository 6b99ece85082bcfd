"""Pipelines: load a pipeline file, apply defaults and hard limits (SPEC §3), resolve paths."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, Field

from ..canonical import canonical_json, sha256_hex
from ..errors import InvalidInput, LimitExceeded
from .schemas import load_document

MAX_DEVICES = 5
MAX_REPEATS = 5
DEFAULT_REPEATS = 3
WARMUP = 1
DEFAULT_ITERATIONS = 50
DEFAULT_TIMEOUT_S = 1200
MAX_TIMEOUT_S = 2700
MAX_REGRESSION_PCT_LIMIT = 1000.0
STARVED_OFF_CPU = 0.10
MAX_STARVED_SHARE = 0.5


class Gate(BaseModel):
    """An absolute gate (`metric op value`) or a relative one (`baseline` + `max_regression_pct`)."""

    metric: str
    op: str | None = None  # absolute gates only; a relative gate ignores it
    value: float | None = None  # absolute gates only
    baseline: str | None = None  # relative gates: last-passed | RUN_ID | path/to/bundle.zip
    max_regression_pct: float | None = None  # relative gates: (0, 1000)
    statistic: str | None = None  # relative gates: median (default, SPEC) or p25 (bench/decision_quality.py)
    baseline_mode: str | None = None  # relative gates: paired (default where possible) or recorded (SPEC §6 item 7)
    required: bool = True
    device: str | None = None
    name: str | None = None

    @property
    def relative(self) -> bool:
        return self.baseline is not None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.relative:
            p25 = " (p25)" if self.statistic == "p25" else ""
            return f"{self.metric}{p25} within {self.max_regression_pct:g}% of {self.baseline}"
        return f"{self.metric} {self.op} {self.value:g}"


class FlakePolicy(BaseModel):
    latency_cv: float = 0.20
    throughput_cv: float = 0.15


class NoisyHostPolicy(BaseModel):
    """When a run measured the host rather than the model (SPEC §6 item 7; defaults by bench/decision_quality.py)."""

    starved_off_cpu: float = STARVED_OFF_CPU  # a repeat whose median iteration waited for the CPU longer is starved
    max_starved_share: float = MAX_STARVED_SHARE  # at least this share of a gate's repeats starved: NOISY_HOST


class RunPolicy(BaseModel):
    warmup: int = WARMUP
    repeats: int = DEFAULT_REPEATS
    iterations: int = DEFAULT_ITERATIONS
    timeout_s: float = DEFAULT_TIMEOUT_S
    threads: int = 1
    seed: int = 0
    flake: FlakePolicy = Field(default_factory=FlakePolicy)
    noisy_host: NoisyHostPolicy = Field(default_factory=NoisyHostPolicy)


class ModelRef(BaseModel):
    path: str
    input_specs: dict[str, dict] | None = None
    dataset: str | None = None
    reference_outputs: str | None = None


class Pipeline(BaseModel):
    name: str
    backend: str
    devices: list[str]
    model: ModelRef | None = None
    promptpack: dict | None = None
    run_policy: RunPolicy = Field(default_factory=RunPolicy)
    gates: list[Gate]
    source: str = ""  # the file it came from
    sha256: str = ""  # of the canonical JSON of the document as written

    def document(self) -> dict:
        """The pipeline as stored in runs and bundles: everything but the source bookkeeping."""
        return self.model_dump(mode="json", exclude={"source", "sha256"})


def check_max_regression_pct(value: float, *, where: str = "max_regression_pct") -> float:
    """Return `value` as a float if 0 < value < 1000; raise InvalidInput naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value < MAX_REGRESSION_PCT_LIMIT:
        raise InvalidInput(f"{where}: {value!r} is out of range; it must be greater than 0 and less than 1000 "
                           "(a percentage, e.g. 10 for 10 %)", field="max_regression_pct")
    return float(value)


def _check_limits(doc: dict, source: str) -> None:
    policy = doc.get("run_policy") or {}
    checks = [
        (len(doc["devices"]) > MAX_DEVICES, "$.devices",
         f"{len(doc['devices'])} devices exceed the limit of {MAX_DEVICES} devices per run"),
        ("warmup" in policy and policy["warmup"] != WARMUP, "$.run_policy.warmup",
         f"warmup {policy.get('warmup')} breaks the limit: warmup is exactly {WARMUP} repeat"),
        (policy.get("repeats", DEFAULT_REPEATS) > MAX_REPEATS, "$.run_policy.repeats",
         f"repeats {policy.get('repeats')} exceeds the limit of {MAX_REPEATS} measurement repeats"),
        (policy.get("timeout_s", DEFAULT_TIMEOUT_S) > MAX_TIMEOUT_S, "$.run_policy.timeout_s",
         f"timeout_s {policy.get('timeout_s')} exceeds the limit of {MAX_TIMEOUT_S} s (45 min)"),
    ]
    for broken, path, message in checks:
        if broken:
            raise LimitExceeded(f"{source}: {path}: {message}", path=source, field=path)


def _refuse_nul_paths(doc: dict, model_override: str | None, source: str) -> None:
    model = doc.get("model") or {}
    for where, value in [*((f"$.model.{k}", model.get(k)) for k in ("path", "dataset", "reference_outputs")),
                         ("$.promptpack.path", (doc.get("promptpack") or {}).get("path")),
                         ("--model", model_override)]:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput(f"{source}: {where}: a path cannot contain a NUL character", path=source)


def load_pipeline(path: Path | str, *, model_override: str | None = None) -> Pipeline:
    """Parse, validate and limit-check a pipeline file; model paths become absolute.

    Raises InvalidInput (missing file, malformed YAML/JSON, schema violation) or LimitExceeded.
    """
    path = Path(path)
    doc = load_document(path, "pipeline")
    source = str(path)
    _check_limits(doc, source)
    for i, gate in enumerate(doc["gates"]):
        if "max_regression_pct" in gate:
            check_max_regression_pct(gate["max_regression_pct"], where=f"{source}: $.gates[{i}].max_regression_pct")
        if gate.get("device") and gate["device"] not in doc["devices"]:
            raise InvalidInput(f"{source}: $.gates[{i}].device: {gate['device']!r} is not in the "
                               f"pipeline's devices ({', '.join(doc['devices'])})", path=source)
    if doc["backend"] == "local":
        for i, device in enumerate(doc["devices"]):
            if not device.startswith("local:"):
                raise InvalidInput(f"{source}: $.devices[{i}]: {device!r} is not a local device; the local "
                                   "backend runs on local:cpu (or local:<execution provider>)", path=source)
    base = path.resolve().parent
    model = dict(doc.get("model") or {})
    _refuse_nul_paths(doc, model_override, source)
    if model_override:
        model["path"] = str(Path(model_override).resolve())
    for key in ("path", "dataset", "reference_outputs"):
        if model.get(key):
            model[key] = str((base / model[key]).resolve())
    pack = dict(doc["promptpack"]) if doc.get("promptpack") else None
    if pack and pack.get("path"):
        pack["path"] = str((base / pack["path"]).resolve())
    if not model.get("path"):
        raise InvalidInput(f"{source}: $.model.path: no model given; add model.path to the pipeline "
                           "or pass --model PATH", path=source)
    return Pipeline(**{**doc, "model": model or None, "promptpack": pack}, source=source,
                    sha256=sha256_hex(canonical_json(doc)))
