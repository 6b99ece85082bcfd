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
from pathlib import Path

from pydantic import BaseModel

from .artifacts import add_ref, store_bytes
from .backends.base import MeasureRequest, Notice, Progress
from .errors import EdgeGateError
from .gating import Evaluation, GateResult, verdict_from_payloads
from .mapping import MetricValue
from .pipeline import Pipeline
from .preflight import check_inputs, check_required_metrics, ensure_mapping, provided_inputs
from .run_inputs import ingest_model, model_inputs
from .runs import Heartbeat, create_run, record_notices, transition
from .state import record_audit
from .workspace import Workspace


class RunOutcome(BaseModel):
    run_id: str
    pipeline: str
    backend: str
    status: str
    verdict: str
    error_code: str | None = None
    error_detail: str | None = None
    model: dict
    inputs: dict
    devices: dict[str, dict[str, MetricValue]]
    gates: list[GateResult]
    duration_s: float
    bundle: dict | None = None  # set by `run --bundle`: path, sha256, key_id


def execute_run(ws: Workspace, pipeline: Pipeline, progress: Progress, *, wait: bool = False,
                evidence: list[str] = (), require_baseline: bool = False,
                allow_foreign_baseline: bool = False) -> RunOutcome:
    """Run `pipeline` end to end and return its outcome (verdict passed / failed / error).

    Raises InvalidInput/LimitExceeded before the run exists; RunActive if another run holds the
    home; run errors (MISSING_REQUIRED_METRIC, DEVICE_JOB_FAILED, TIMEOUT...) after marking the run.
    A flaky or missing metric found at evaluation is returned as verdict `error`, not raised.
    `evidence` holds `[DEVICE=]genie:FILE` values: device profiles that add token metrics.
    Relative gates resolve their baselines before any device time (see `baselines`): a missing one
    is skipped (NO_BASELINE), or raises NoBaseline under `require_baseline`; a run id of another
    pipeline or device raises InvalidInput unless `allow_foreign_baseline`.
    """
    from .evidence import parse_evidence

    started = time.monotonic()
    backend, info, pack = check_inputs(pipeline, ws)
    device_evidence = parse_evidence(list(evidence), pipeline.devices, pipeline.source)
    run_id = create_run(ws.db, pipeline=pipeline.name, pipeline_path=pipeline.source,
                        pipeline_sha256=pipeline.sha256, backend=pipeline.backend, devices=pipeline.devices,
                        policy=pipeline.run_policy.model_dump(), gates=[g.model_dump() for g in pipeline.gates],
                        wait=wait)
    progress(f"run {run_id} started")
    try:
        with Heartbeat(str(ws.home.db_path), run_id), tempfile.TemporaryDirectory(prefix="edgegate-run-") as tmp:
            return _execute(ws, pipeline, backend, info, pack, device_evidence, run_id, Path(tmp), progress,
                            started, (require_baseline, allow_foreign_baseline))
    except EdgeGateError as err:
        transition(ws.db, run_id, "error", err.code, {"error_code": err.code, "error_detail": err.message,
                                                      "verdict": "error"})
        raise
    except BaseException as exc:
        code = "INTERRUPTED" if isinstance(exc, KeyboardInterrupt) else "INTERNAL"
        transition(ws.db, run_id, "error", code, {"error_code": code, "verdict": "error",
                                                  "error_detail": f"{type(exc).__name__}: {exc}"})
        raise


def _resolve_baselines(ws: Workspace, pipeline: Pipeline, run_id: str, options: tuple[bool, bool], progress):
    """Relative gates' baselines, recorded in the run (and their blobs referenced by it) before measuring."""
    from .baselines import missing_baselines, resolve_baselines
    from .errors import NoBaseline

    require, allow_foreign = options
    if not any(g.relative for g in pipeline.gates):
        return None
    evidence, records = resolve_baselines(ws, pipeline, exclude_run=run_id, allow_foreign=allow_foreign)
    missing = missing_baselines(evidence)
    if missing and require:
        raise NoBaseline(f"{pipeline.source}: --require-baseline: no baseline for {'; '.join(missing)}",
                         hint="run the pipeline once without --require-baseline, or pin one with "
                              "`edgegate gate baseline set`")
    for line in missing:
        progress(f"NO_BASELINE: {line}; the relative gate will be skipped")
    for rec in records.values():
        for digest in [rec.get("mapping_sha256"), *rec.get("payloads", [])]:
            if digest:
                add_ref(ws.db, digest, "run", run_id)
    with ws.db.atomic():
        ws.db["runs"].update(run_id, {"baselines_json": json.dumps(records, sort_keys=True)})
    return evidence


def _execute(ws, pipeline, backend, info, pack, device_evidence, run_id, tmp, progress, started,
             baseline_options=(False, False)) -> RunOutcome:
    from .backends.base import RawPayload
    from .evidence import check_evidence_coverage, mapping_with_evidence
    from .promptpack_format import effective_cases

    transition(ws.db, run_id, "preparing")
    mapping, mapping_sha, caps_sha = ensure_mapping(ws, pipeline, progress)
    if device_evidence:
        check_evidence_coverage(pipeline, device_evidence)
        mapping = mapping_with_evidence(mapping, device_evidence, _now())
        mapping_sha = store_bytes(ws.db, ws.cas, json.dumps(mapping, sort_keys=True).encode(), "metric_mappings",
                                  f"{run_id}-mapping.json")
    check_required_metrics(pipeline, mapping, pipeline.backend)
    baselines = _resolve_baselines(ws, pipeline, run_id, baseline_options, progress)
    model_sha, model_desc = ingest_model(ws, info)
    inputs_path, inputs = model_inputs(ws, pipeline, info, pack, tmp)
    inputs_sha = inputs["sha256"]
    for digest in {model_sha, inputs_sha, mapping_sha, caps_sha, *model_desc["files"].values()}:
        add_ref(ws.db, digest, "run", run_id)
    transition(ws.db, run_id, "submitting", fields={
        "model_sha256": model_sha, "model_name": model_desc["name"], "model_json": json.dumps(model_desc),
        "inputs_json": json.dumps(inputs), "mapping_sha256": mapping_sha, "capabilities_sha256": caps_sha,
        "pipeline_json": json.dumps(pipeline.document(), sort_keys=True)})
    policy = pipeline.run_policy
    deadline = started + policy.timeout_s
    transition(ws.db, run_id, "running")
    requests = [MeasureRequest(
        run_id=run_id, device=device, model_form=info.form,
        model_path=info.path if info.form == "genai" else (info.onnx_path or info.path),
        model_source=info.path, model_sha256=model_sha, input_specs=pipeline.model.input_specs,
        inputs_path=inputs_path, reference_outputs=pipeline.model.reference_outputs,
        iterations=policy.iterations, warmup=policy.warmup, repeats=policy.repeats, threads=policy.threads,
        deadline=deadline, context_length=info.context_length,
        cases=effective_cases(pack.document) if pack else None,
        promptpack={"id": pack.pack_id, "version": pack.version, "sha256": pack.sha256} if pack else None)
        for device in pipeline.devices]
    notices: list[tuple[str, str, str]] = []

    def measuring(text, *args, **kwargs) -> None:  # device threads call it under measure_devices' lock
        if isinstance(text, Notice):  # e.g. a resubmitted AI Hub job: an event of the run, not just a line
            notices.append((_now(), text.code, str(text)))
        progress(text, *args, **kwargs)

    try:
        raw = measure_devices(backend, requests, measuring)
    finally:
        record_notices(ws.db, run_id, notices)
    # Device evidence joins its device's payloads after the measured repeats.
    raw.extend(RawPayload(device=e.device, repeat_index=1000 + i, warmup=False, data=e.payload)
               for i, e in enumerate(device_evidence))
    transition(ws.db, run_id, "collecting")
    with ws.db.atomic():
        for p in raw:
            digest = store_bytes(ws.db, ws.cas, json.dumps(p.data, sort_keys=True).encode(), "raw_payload",
                                 f"{run_id}-{p.device}-{p.repeat_index}.json")
            add_ref(ws.db, digest, "run", run_id)
            ws.db["run_payloads"].insert({"run_id": run_id, "device": p.device, "repeat_index": p.repeat_index,
                                          "warmup": int(p.warmup), "sha256": digest, "created_at": _now()})
    transition(ws.db, run_id, "evaluating")
    by_device = {d: [p.data for p in raw if p.device == d and not p.warmup] for d in pipeline.devices}
    metrics, evaluation = verdict_from_payloads(by_device, mapping, pipeline.gates, policy, pipeline.devices,
                                                provided_inputs(pipeline), baselines=baselines)
    return _report(ws, pipeline, run_id, metrics, evaluation, model_desc, inputs, started)


def measure_devices(backend, requests: list[MeasureRequest], progress: Progress) -> list:
    """Every device's raw payloads, in device order.

    Devices run one after another, or, for a backend with `parallel_devices` (AI Hub, whose jobs wait on
    remote devices), at once in up to `max_parallel_devices` threads. The first device error wins: the
    other devices are told to stop (at their next poll) and the error is raised once all have returned.
    """
    if not getattr(backend, "parallel_devices", False):
        return [p for req in requests for p in backend.measure(req, progress)]
    lock, stop = threading.Lock(), threading.Event()

    def safe(*args, **kwargs) -> None:
        with lock:
            progress(*args, **kwargs)

    first: BaseException | None = None
    workers = max(1, min(len(requests), backend.max_parallel_devices))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgegate-device") as pool:
        futures = [pool.submit(backend.measure, req, safe, stop=stop) for req in requests]
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
    return [p for future in futures for p in future.result()]


def _now() -> str:
    from .state import utcnow

    return utcnow()


def _report(ws, pipeline, run_id, metrics, evaluation: Evaluation, model_desc, inputs, started) -> RunOutcome:
    transition(ws.db, run_id, "reporting", fields={
        "metrics_json": json.dumps({d: {k: v.model_dump() for k, v in m.items()} for d, m in metrics.items()},
                                   sort_keys=True),
        "gates_eval_json": evaluation.model_dump_json(), "verdict": evaluation.verdict})
    fields = {"error_code": evaluation.error_code, "error_detail": evaluation.error_detail}
    if evaluation.verdict == "error":
        transition(ws.db, run_id, "error", evaluation.error_code, fields)
        status = "error"
    else:
        status = evaluation.verdict
        transition(ws.db, run_id, status)
    record_audit(ws.db, "run", "run_finished", {"run_id": run_id, "pipeline": pipeline.name, "verdict": status})
    return RunOutcome(run_id=run_id, pipeline=pipeline.name, backend=pipeline.backend, status=status,
                      verdict=evaluation.verdict, error_code=evaluation.error_code,
                      error_detail=evaluation.error_detail, model=model_desc, inputs=inputs, devices=metrics,
                      gates=evaluation.gates, duration_s=round(time.monotonic() - started, 3))
