"""The double's in-memory state: models, datasets, jobs, blobs, and how jobs move through their states.

A job's state advances on the status GETs the client makes (`GET /api/v1/jobs/<id>/`), so polling is
exercised without wall-clock waits: with `polls_before_done = N` the first N status GETs answer an
in-progress state (CREATED, then the kind's running states) and GET N+1 answers the final state.
`hold_running_s` additionally keeps every job non-final until that many seconds after its creation.
Results (ProfileDetail, output dataset, compiled model bytes) are produced when a job reaches DONE.
"""

from __future__ import annotations

import random
import re
import string
import threading
import time
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp
from qai_hub import public_api_pb2 as pb

from . import payloads
from .devices import DeviceSpec

_ALNUM = string.ascii_lowercase + string.digits
DATASET_LIFETIME_S = 30 * 24 * 3600  # datasets expire after 30 days (SDK docstring)
HUB_VERSION = "aihub-protocol-double"

# In-progress states per kind, in the order the SDK's progress bar expects them (SDK_SURFACE.md §5).
_PROGRESS = {
    "compile": [pb.JOB_STATE_CREATED, pb.JOB_STATE_OPTIMIZING_MODEL],
    "profile": [pb.JOB_STATE_CREATED, pb.JOB_STATE_PROVISIONING_DEVICE, pb.JOB_STATE_MEASURING_PERFORMANCE],
    "inference": [pb.JOB_STATE_CREATED, pb.JOB_STATE_PROVISIONING_DEVICE, pb.JOB_STATE_RUNNING_INFERENCE],
}
FINAL_STATES = (pb.JOB_STATE_DONE, pb.JOB_STATE_FAILED)


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


@dataclass
class FailureRule:
    """Fail matching jobs with this reason. kind: "compile", "inference" (profiling or not), "profile"
    (inference with profiling on) or None for any; device: exact device name or None; times: how many
    jobs to fail (None: all)."""

    reason: str
    kind: str | None = None
    device: str | None = None
    failure_type: int = pb.JOB_FAILURE_TYPE_RUNTIME_UNKNOWN
    times: int | None = None
    model: str | None = None  # only jobs on this model id (e.g. a cached compile that still exists)
    name: str | None = None  # only jobs whose name contains this (e.g. "repeat 1/3": every attempt of it)

    def matches(self, kind: str, profiling: bool, device: str, model: str = "", name: str = "") -> bool:
        if self.times is not None and self.times <= 0:
            return False
        kind_ok = (kind == "inference" and profiling) if self.kind == "profile" else self.kind in (None, kind)
        return (kind_ok and (self.device is None or self.device == device) and self.model in (None, model)
                and (self.name is None or self.name in name))


@dataclass
class StoredModel:
    model_id: str
    name: str
    model_type: int
    is_directory: bool
    created: float
    data: bytes | None = None
    upload_id: str = ""
    parts: dict[int, bytes] = field(default_factory=dict)
    producer_id: str = ""
    info: payloads.ModelInfo | None = None
    metadata: dict[int, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        ext = ".zip" if self.is_directory and not self.name.endswith(".zip") else ""
        return self.name + ext


@dataclass
class StoredDataset:
    dataset_id: str
    name: str
    created: float
    permanent: bool = False
    data: bytes | None = None
    producer_id: str = ""


@dataclass
class StoredJob:
    job_id: str
    kind: str  # "compile" | "inference"
    name: str
    options: str
    created: float
    model_id: str
    device: DeviceSpec
    devices: list[DeviceSpec]
    polls_before_done: int
    profiling: bool = False
    runtime: str = ""  # compile: the --target_runtime; inference: the model's runtime
    dataset_id: str = ""
    input_specs: pb.NamedTensorTypeList | None = None
    failure: FailureRule | None = None
    polls: int = 0
    state: int = pb.JOB_STATE_CREATED
    started: float | None = None
    finished: float | None = None
    failure_reason: str = ""
    failure_type: int = pb.JOB_FAILURE_TYPE_UNSPECIFIED
    target_model_id: str = ""
    output_dataset_id: str = ""
    detail: pb.ProfileDetail | None = None
    odd_states: list[int] = field(default_factory=list)  # states answered before the normal progression
    member: DeviceSpec | None = None  # the physical device a "(Family)" job ran on

    @property
    def progress_kind(self) -> str:
        return "profile" if self.kind == "inference" and self.profiling else self.kind

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES


def parse_options(options: str) -> dict[str, str]:
    """`--flag value` / `--flag=value` / bare `--flag` into a dict (the server-side option parser)."""
    parsed: dict[str, str] = {}
    tokens = options.split()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            i += 1
            continue
        key, eq, value = token[2:].partition("=")
        if not eq and i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            value = tokens[i + 1]
            i += 1
        parsed[key] = value
        i += 1
    return parsed


class OptionError(ValueError):
    """An option value the server refuses at job creation (400)."""


def target_runtime(options: dict[str, str]) -> str:
    runtime = options.get("target_runtime", payloads.DEFAULT_TARGET_RUNTIME) or payloads.DEFAULT_TARGET_RUNTIME
    if runtime not in payloads.TARGET_RUNTIMES:
        raise OptionError(f"Invalid value for --target_runtime: '{runtime}'. "
                          f"Choose from {', '.join(payloads.TARGET_RUNTIMES)}.")
    return runtime


def profiler_iterations(options: dict[str, str]) -> int:
    raw = options.get("max_profiler_iterations", "")
    if not raw:
        return payloads.DEFAULT_ITERATIONS
    if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1:
        raise OptionError(f"Invalid value for --max_profiler_iterations: '{raw}'. Expected a positive integer.")
    return int(raw)


class Store:
    """All objects the double knows, guarded by one lock (the HTTP server is threaded)."""

    def __init__(self, double, seed: int):
        self.double = double
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self.models: dict[str, StoredModel] = {}
        self.datasets: dict[str, StoredDataset] = {}
        self.jobs: dict[str, StoredJob] = {}
        self.blobs: dict[str, tuple[bytes, str]] = {}  # download key -> (bytes, filename)

    # ---- ids -----------------------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        existing = set(self.models) | set(self.datasets) | set(self.jobs) | set(self.blobs)
        while True:
            candidate = prefix + "".join(self._rng.choice(_ALNUM) for _ in range(8))
            if candidate not in existing:
                return candidate

    # ---- jobs ------------------------------------------------------------------------------------------
    def observe(self, job: StoredJob, *, poll: bool) -> None:
        """Advance `job` as of now; `poll` is True for status GETs, which count towards completion."""
        if job.done:
            return
        if poll:
            job.polls += 1
        now = time.time()
        if poll and job.odd_states:  # UNSPECIFIED (0) or a state this SDK does not know
            job.state = job.odd_states.pop(0)
            job.polls -= 1
            return
        if now - job.created < self.double.queue_s:  # queued: CREATED until a device is free
            job.state = pb.JOB_STATE_CREATED
            job.polls = min(job.polls, 1)
            return
        held = now - job.created < self.double.hold_running_s
        if job.polls > job.polls_before_done and not held:
            self.finish(job, now)
            return
        seq = _PROGRESS[job.progress_kind]
        n = max(job.polls_before_done, 1)
        idx = 0 if job.polls <= 1 else min(len(seq) - 1, round((job.polls - 1) * (len(seq) - 1) / max(n - 1, 1)))
        job.state = seq[idx]
        if job.state != pb.JOB_STATE_CREATED and job.started is None:
            job.started = now

    def finish(self, job: StoredJob, now: float | None = None) -> None:
        now = time.time() if now is None else now
        job.started = job.started or now
        job.finished = now
        failure = job.failure or self._dependency_failure(job)
        if failure is None:
            try:
                if job.kind == "compile":
                    self._compile(job)
                else:
                    self._infer(job)
            except payloads.InputMismatch as exc:
                failure = FailureRule(reason=str(exc), failure_type=pb.JOB_FAILURE_TYPE_INVALID_INPUTS)
        if failure is not None:
            job.state = pb.JOB_STATE_FAILED
            job.failure_reason = failure.reason
            job.failure_type = failure.failure_type
            return
        job.state = pb.JOB_STATE_DONE
        job.failure_type = pb.JOB_FAILURE_TYPE_SUCCESS

    def _dependency_failure(self, job: StoredJob) -> FailureRule | None:
        model = self.models.get(job.model_id)
        producer = self.jobs.get(model.producer_id) if model is not None and model.producer_id else None
        if producer is None:
            return None
        if not producer.done:
            self.finish(producer)
        if producer.state == pb.JOB_STATE_FAILED:
            return FailureRule(reason="One or more inputs to this job failed to be produced.",
                               failure_type=pb.JOB_FAILURE_TYPE_RUNTIME_FAILED_DEPENDENCY)
        return None

    def _compile(self, job: StoredJob) -> None:
        source = self.models[job.model_id]
        target = self.models[job.target_model_id]
        target.data, target.is_directory = payloads.target_model_bytes(
            job.runtime, source.data or b"", source.is_directory)
        target.info = source.info
        target.metadata = {pb.MODEL_METADATA_KEY_QAIRT_SDK_VERSION: "v" + self.double.qairt_version}

    def _source_of(self, model: StoredModel) -> StoredModel:
        """The uploaded model a compiled model came from (outputs are computed on it)."""
        producer = self.jobs.get(model.producer_id) if model.producer_id else None
        return self.models[producer.model_id] if producer is not None else model

    def _infer(self, job: StoredJob) -> None:
        model = self.models[job.model_id]
        source = self._source_of(model)
        options = parse_options(job.options)
        iterations = profiler_iterations(options)
        inputs = None
        if job.dataset_id:
            inputs = payloads.read_h5(self.datasets[job.dataset_id].data or b"")
            batches = len(next(iter(inputs.values()), []))
            iterations = max(1, iterations // max(batches, 1))
        knobs = self.double.profile_knobs(job.device.name)
        speed = 1.0
        if job.member is not None:  # each physical member of a family is a little faster or slower
            speed = 1.0 + knobs.member_spread * (2 * payloads.rng_for(job.member.name).random() - 1)
        req = payloads.ProfileRequest(
            seed=job.job_id, device=job.device, info=source.info, model_bytes=len(source.data or b""),
            runtime=job.runtime, compute_unit=options.get("compute_unit"),
            iterations=iterations, knobs=knobs, profiling=job.profiling, speed=speed,
            qairt_version=self.double.qairt_version)
        job.detail = payloads.synth_profile(req) if knobs.detail else None
        if inputs is not None and not self.double.omit_outputs:
            outputs = payloads.compute_outputs(source.info, inputs, self.double.output_rel_noise, job.job_id)
            out = StoredDataset(self.new_id("d"), f"{job.name}-outputs", time.time(),
                                data=payloads.h5_bytes(outputs), producer_id=job.job_id)
            self.datasets[out.dataset_id] = out
            job.output_dataset_id = out.dataset_id
