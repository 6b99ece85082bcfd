"""Executing a run (SPEC §5): preflight, measure on every device, collect, evaluate, persist.

Input checks that need no state happen before the run exists (`preflight.check_inputs`: bad input
leaves nothing behind); everything after `create_run` is recorded as state transitions, and any
failure ends the run in `error` with its code.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from ..backends.base import MeasureRequest, Notice, Progress, sdk_output_to_stderr
from ..canonical import canonical_json
from ..errors import EdgeGateError, Verdict
from ..gating.evaluate import Evaluation, GateResult, verdict_from_payloads
from ..measure.mapping import MetricValue
from ..spec.pipeline import Pipeline
from ..store.artifacts import add_ref, store_bytes
from ..store.runs import Heartbeat, create_run, record_notices, transition
from ..store.state import record_audit
from ..store.workspace import Workspace
from .inputs import ingest_model, model_inputs
from .paired import paired_evidence, plan_pairing, store_paired
from .preflight import check_inputs, check_required_metrics, ensure_mapping, provided_inputs


@dataclass(frozen=True)
class RunRequest:
    """What `run` is asked to do: the pipeline (model override applied) and how to treat its run."""

    pipeline: Pipeline
    wait: bool = False  # queue behind another run of this home instead of failing with RUN_ACTIVE
    evidence: tuple[str, ...] = ()  # `[DEVICE=]genie:FILE` device profiles that add token metrics
    require_baseline: bool = False  # a relative gate without a baseline is NO_BASELINE (exit 3), not skipped
    allow_foreign_baseline: bool = False  # a baseline run id may be of another pipeline or device


@dataclass
class _RunJob:
    """A run that exists: its request, what preflight resolved, and where it works."""

    ws: Workspace
    request: RunRequest
    run_id: str
    backend: object
    info: object  # spec.model_info.ModelInfo
    pack: object | None  # the PromptPack of a GenAI run
    feeds: dict | None  # what each model input is fed (preflight's plan), None for GenAI
    device_evidence: list
    tmp: Path
    progress: Progress
    started: float  # time.monotonic() at the start: the run's timeout counts from here

    @property
    def pipeline(self) -> Pipeline:
        return self.request.pipeline


class RunOutcome(BaseModel):
    run_id: str
    pipeline: str
    backend: str
    status: str
    verdict: Verdict
    error_code: str | None = None
    error_detail: str | None = None
    model: dict
    inputs: dict
    devices: dict[str, dict[str, MetricValue]]
    gates: list[GateResult]
    duration_s: float
    bundle: dict | None = None  # set by `run --bundle`: path, sha256, key_id


def execute_run(ws: Workspace, request: RunRequest, progress: Progress) -> RunOutcome:
    """Run `request.pipeline` end to end and return its outcome (verdict passed / failed / error).

    Raises InvalidInput/LimitExceeded before the run exists; RunActive if another run holds the
    home (unless `request.wait`); run errors (MISSING_REQUIRED_METRIC, DEVICE_JOB_FAILED, TIMEOUT...)
    after marking the run. A flaky or missing metric found at evaluation is returned as verdict
    `error`, not raised. Relative gates resolve their baselines before any device time (see
    `baselines`): a missing one is skipped (NO_BASELINE), or raises NoBaseline under
    `require_baseline`; a run id of another pipeline or device raises InvalidInput unless
    `allow_foreign_baseline`.
    """
    from ..measure.device_evidence import parse_evidence

    started = time.monotonic()
    pipeline = request.pipeline
    backend, info, pack, feeds = check_inputs(pipeline, ws)
    device_evidence = parse_evidence(list(request.evidence), pipeline.devices, pipeline.source)
    run_id = create_run(ws.db, pipeline=pipeline.name, pipeline_path=pipeline.source,
                        pipeline_sha256=pipeline.sha256, backend=pipeline.backend, devices=pipeline.devices,
                        policy=pipeline.run_policy.model_dump(), gates=[g.model_dump() for g in pipeline.gates],
                        wait=request.wait, on_wait=progress)
    progress(f"run {run_id} started")
    try:
        with Heartbeat(ws.db, run_id), tempfile.TemporaryDirectory(prefix="edgegate-run-") as tmp:
            return _execute(_RunJob(ws=ws, request=request, run_id=run_id, backend=backend, info=info, pack=pack,
                                    feeds=feeds, device_evidence=device_evidence, tmp=Path(tmp), progress=progress,
                                    started=started))
    except EdgeGateError as err:
        transition(ws.db, run_id, Verdict.ERROR, err.code, {"error_code": err.code, "error_detail": err.message,
                                                            "verdict": Verdict.ERROR})
        raise
    except BaseException as exc:
        code = "INTERRUPTED" if isinstance(exc, KeyboardInterrupt) else "INTERNAL"
        transition(ws.db, run_id, Verdict.ERROR, code, {"error_code": code, "verdict": Verdict.ERROR,
                                                        "error_detail": f"{type(exc).__name__}: {exc}"})
        raise


def _resolve_baselines(job: _RunJob):
    """Relative gates' baselines (evidence, records), recorded in the run (and their blobs referenced by it)
    before measuring; (None, {}) without relative gates."""
    from ..errors import NoBaseline
    from ..gating.baselines import missing_baselines, resolve_baselines

    ws, pipeline, run_id = job.ws, job.pipeline, job.run_id
    if not any(g.relative for g in pipeline.gates):
        return None, {}
    evidence, records = resolve_baselines(ws, pipeline, exclude_run=run_id,
                                          allow_foreign=job.request.allow_foreign_baseline)
    missing = missing_baselines(evidence)
    if missing and job.request.require_baseline:
        raise NoBaseline(f"{pipeline.source}: --require-baseline: no baseline for {'; '.join(missing)}",
                         hint="run the pipeline once without --require-baseline, or pin one with "
                              "`edgegate gate baseline set`")
    for line in missing:
        job.progress(f"NO_BASELINE: {line}; the relative gate will be skipped")
    for rec in records.values():
        for digest in [rec.get("mapping_sha256"), *rec.get("payloads", [])]:
            if digest:
                add_ref(ws.db, digest, "run", run_id)
    with ws.db.atomic():
        ws.db["runs"].update(run_id, {"baselines_json": json.dumps(records, sort_keys=True)})
    return evidence, records


def _execute(job: _RunJob) -> RunOutcome:
    from ..backends.base import RawPayload
    from ..measure.device_evidence import check_evidence_coverage, mapping_with_evidence
    from ..spec.promptpack_format import effective_cases

    ws, pipeline, run_id, info, pack, progress = job.ws, job.pipeline, job.run_id, job.info, job.pack, job.progress
    transition(ws.db, run_id, "preparing")
    mapping, mapping_sha, caps_sha = ensure_mapping(ws, pipeline, progress)
    if job.device_evidence:
        check_evidence_coverage(pipeline, job.device_evidence)
        mapping = mapping_with_evidence(mapping, job.device_evidence, ws.db.now())
        mapping_sha = store_bytes(ws.db, ws.cas, canonical_json(mapping), "metric_mappings",
                                  f"{run_id}-mapping.json")
    check_required_metrics(pipeline, mapping, pipeline.backend)
    baselines, records = _resolve_baselines(job)
    model_sha, model_desc = ingest_model(ws, info)
    inputs_path, inputs = model_inputs(ws, pipeline, info, pack, job.tmp, job.feeds)
    inputs_sha = inputs["sha256"]
    for digest in {model_sha, inputs_sha, mapping_sha, caps_sha, *model_desc["files"].values()}:
        add_ref(ws.db, digest, "run", run_id)
    transition(ws.db, run_id, "submitting", fields={
        "model_sha256": model_sha, "model_name": model_desc["name"], "model_json": json.dumps(model_desc),
        "inputs_json": json.dumps(inputs), "mapping_sha256": mapping_sha, "capabilities_sha256": caps_sha,
        "pipeline_json": json.dumps(pipeline.document(), sort_keys=True)})
    policy = pipeline.run_policy
    deadline = job.started + policy.timeout_s
    transition(ws.db, run_id, "running")
    requests = [MeasureRequest(
        run_id=run_id, device=device, model_form=info.form,
        model_path=info.path if info.form == "genai" else (info.onnx_path or info.path),
        model_source=info.path, model_sha256=model_sha, input_specs=pipeline.model.input_specs,
        inputs_path=inputs_path, reference_outputs=pipeline.model.reference_outputs,
        iterations=policy.iterations, warmup=policy.warmup, repeats=policy.repeats, threads=policy.threads,
        deadline=deadline, context_length=info.context_length, starved_off_cpu=policy.noisy_host.starved_off_cpu,
        cases=effective_cases(pack.document) if pack else None,
        promptpack={"id": pack.pack_id, "version": pack.version, "sha256": pack.sha256} if pack else None)
        for device in pipeline.devices]
    plans = plan_pairing(ws, pipeline, job.backend, records, requests, info, job.tmp) if records else {}
    if records:
        with ws.db.atomic():
            ws.db["runs"].update(run_id, {"baselines_json": json.dumps(records, sort_keys=True)})
    notices: list[tuple[str, str, str]] = []

    def measuring(text, *args, **kwargs) -> None:  # device threads call it under measure_devices' lock
        if isinstance(text, Notice):  # e.g. a resubmitted AI Hub job: an event of the run, not just a line
            notices.append((ws.db.now(), text.code, str(text)))
        progress(text, *args, **kwargs)

    try:
        raw, paired = measure_devices(job.backend, requests, measuring, plans)
    finally:
        record_notices(ws.db, run_id, notices)
    # Device evidence joins its device's payloads after the measured repeats.
    raw.extend(RawPayload(device=e.device, repeat_index=1000 + i, warmup=False, data=e.payload)
               for i, e in enumerate(job.device_evidence))
    transition(ws.db, run_id, "collecting")
    with ws.db.atomic():
        for p in raw:
            digest = store_bytes(ws.db, ws.cas, canonical_json(p.data), "raw_payload",
                                 f"{run_id}-{p.device}-{p.repeat_index}.json")
            add_ref(ws.db, digest, "run", run_id)
            ws.db["run_payloads"].insert({"run_id": run_id, "device": p.device, "repeat_index": p.repeat_index,
                                          "warmup": int(p.warmup), "sha256": digest, "created_at": ws.db.now()})
        if paired:
            store_paired(ws, run_id, records, paired)
    if records:
        baselines = paired_evidence(baselines, records, paired)
    transition(ws.db, run_id, "evaluating")
    by_device = {d: [p.data for p in raw if p.device == d and not p.warmup] for d in pipeline.devices}
    metrics, evaluation = verdict_from_payloads(by_device, mapping, pipeline.gates, policy, pipeline.devices,
                                                provided_inputs(pipeline), baselines=baselines)
    return _report(job, metrics, evaluation, model_desc, inputs)


def measure_devices(backend, requests: list[MeasureRequest], progress: Progress,
                    pairs: dict[str, list] | None = None) -> tuple[list, list]:
    """Every device's raw payloads, in device order, and the paired baselines' (`paired.measure_device`):
    `pairs` maps a device to the baseline models to measure again beside it.

    Devices run one after another, or, for a backend with `parallel_devices` (AI Hub, whose jobs wait on
    remote devices), at once in up to `max_parallel_devices` threads. The first device error wins: the
    other devices are told to stop (at their next poll) and the error is raised once all have returned.
    """
    with sdk_output_to_stderr():
        results = _measure_devices(backend, requests, progress, pairs or {})
    return [p for own, _ in results for p in own], [p for _, paired in results for p in paired]


def _measure_devices(backend, requests: list[MeasureRequest], progress: Progress, pairs: dict) -> list:
    from .paired import measure_device

    if not getattr(backend, "parallel_devices", False):
        return [measure_device(backend, req, pairs.get(req.device, []), progress) for req in requests]
    lock, stop = threading.Lock(), threading.Event()

    def safe(*args, **kwargs) -> None:
        with lock:
            progress(*args, **kwargs)

    first: BaseException | None = None
    workers = max(1, min(len(requests), backend.max_parallel_devices))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgegate-device") as pool:
        futures = [pool.submit(measure_device, backend, req, pairs.get(req.device, []), safe, stop=stop)
                   for req in requests]
        try:
            for future in as_completed(futures):
                if future.exception() is not None and first is None:
                    first = future.exception()
                    stop.set()
        except BaseException:
            stop.set()  # Ctrl-C: the device threads end at their next poll, then the pool joins them
            raise
    if first is not None:
        raise first
    return [future.result() for future in futures]


def _report(job: _RunJob, metrics, evaluation: Evaluation, model_desc: dict, inputs: dict) -> RunOutcome:
    ws, pipeline, run_id = job.ws, job.pipeline, job.run_id
    transition(ws.db, run_id, "reporting", fields={
        "metrics_json": json.dumps({d: {k: v.model_dump() for k, v in m.items()} for d, m in metrics.items()},
                                   sort_keys=True),
        "gates_eval_json": evaluation.model_dump_json(), "verdict": evaluation.verdict})
    fields = {"error_code": evaluation.error_code, "error_detail": evaluation.error_detail}
    status = evaluation.verdict  # a finished run's status is its verdict
    transition(ws.db, run_id, status, evaluation.error_code if status == Verdict.ERROR else None,
               fields if status == Verdict.ERROR else None)
    record_audit(ws.db, "run", "run_finished", {"run_id": run_id, "pipeline": pipeline.name, "verdict": status})
    return RunOutcome(run_id=run_id, pipeline=pipeline.name, backend=pipeline.backend, status=status,
                      verdict=evaluation.verdict, error_code=evaluation.error_code,
                      error_detail=evaluation.error_detail, model=model_desc, inputs=inputs, devices=metrics,
                      gates=evaluation.gates, duration_s=round(time.monotonic() - job.started, 3))
