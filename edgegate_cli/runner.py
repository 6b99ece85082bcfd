"""Executing a run (SPEC §5): preflight, measure on every device, collect, evaluate, persist.

Input checks that need no state happen before the run exists (bad input leaves nothing behind);
everything after `create_run` is recorded as state transitions, and any failure ends the run in
`error` with its code.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from pydantic import BaseModel

from .artifacts import add_ref, store_bytes, store_file
from .backends.base import MeasureRequest, Progress, get_backend
from .errors import EdgeGateError, MissingRequiredMetric
from .gating import Evaluation, GateResult, verdict_from_payloads
from .mapping import MetricValue
from .pipeline import Pipeline
from .runs import Heartbeat, create_run, transition
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


def _ingest_model(ws: Workspace, info) -> tuple[str, dict]:
    """Store the model's files in the CAS; return (model sha256, model description)."""
    root = Path(info.path)
    if root.is_file():
        digest = store_file(ws.db, ws.cas, root, "model")
        files = {root.name: digest}
    else:
        files = {name: store_file(ws.db, ws.cas, root / name, "model", name) for name in sorted(info.files)}
        # A directory model is identified by the hash of its manifest (name → sha256).
        manifest = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
        digest = store_bytes(ws.db, ws.cas, manifest, "model_manifest", root.name + ".manifest.json")
    return digest, {"name": root.name, "sha256": digest, "form": info.form, "bytes": info.total_bytes,
                    "files": files}


def _preflight(pipeline: Pipeline, mapping: dict, backend: str) -> None:
    """Every required gate's metric must be available and stable for this backend (SPEC §5)."""
    from .errors import InvalidInput
    from .samples import has_iteration_samples

    provided = {"reference_outputs"} if pipeline.model and pipeline.model.reference_outputs else set()
    for i, gate in enumerate(pipeline.gates):
        if gate.relative and mapping["metrics"].get(gate.metric, {}).get("available") and \
                not has_iteration_samples(mapping, gate.metric):
            raise InvalidInput(f"{pipeline.source}: $.gates[{i}]: relative gate on {gate.metric}: the {backend} "
                               f"backend reports one {gate.metric} value per repeat, not per-iteration samples, so "
                               "there is nothing to test for significance",
                               hint=f"gate {gate.metric} with an absolute threshold {{metric, op, value}} instead")
        if not gate.required:
            continue
        entry = mapping["metrics"].get(gate.metric, {})
        hint = f"run `edgegate probe --backend {backend}` to refresh the capabilities, or make the gate optional"
        if not entry.get("available"):
            raise MissingRequiredMetric(f"{pipeline.source}: gate {gate.label!r} needs {gate.metric}, which the "
                                        f"{backend} backend cannot provide: {entry.get('reason', 'unknown')}",
                                        hint=hint)
        if entry.get("requires") and entry["requires"] not in provided:
            raise MissingRequiredMetric(f"{pipeline.source}: gate {gate.label!r} needs {gate.metric}, which "
                                        f"needs model.{entry['requires']} in the pipeline",
                                        hint=f"add model.{entry['requires']} (an .npz keyed by output name)")
        if not entry.get("stable"):
            raise MissingRequiredMetric(f"{pipeline.source}: gate {gate.label!r} needs {gate.metric}, seen in "
                                        f"only {entry.get('seen_in_runs', 0)} probe run(s); stable needs 2",
                                        hint=hint)


def _prepare_inputs(pipeline: Pipeline, info, tmp: Path) -> tuple[str, str]:
    from .inputs import check_dataset, generate_inputs

    if pipeline.model.dataset:
        return pipeline.model.dataset, check_dataset(info.inputs, pipeline.model.dataset, pipeline.source)
    path = tmp / "inputs.npz"
    return str(path), generate_inputs(info.inputs, pipeline.model.input_specs, pipeline.run_policy.seed,
                                      path, pipeline.source)


def check_inputs(pipeline: Pipeline, ws: Workspace):
    """Validate everything a run needs before it exists; return (backend, model info, PromptPack or None)."""
    from .errors import InvalidInput
    from .validators import validate_model

    backend = get_backend(pipeline.backend, ws=ws)
    info = validate_model(pipeline.model.path, pipeline.model.input_specs)
    backend.check_model_form(info.form, pipeline.source)
    backend.check_devices(pipeline.devices, pipeline.source)
    for key in ("dataset", "reference_outputs"):
        value = getattr(pipeline.model, key)
        if value and not Path(value).is_file():
            raise InvalidInput(f"{pipeline.source}: $.model.{key}: {value}: no such file")
    return backend, info, _resolve_pack(ws, pipeline, info)


def _resolve_pack(ws: Workspace, pipeline: Pipeline, info):
    """The PromptPack a GenAI pipeline names; `promptpack.path` adds it first (immutably) if needed."""
    from .errors import InvalidInput
    from .promptpacks import add_pack, resolve_pipeline_pack

    ref = pipeline.promptpack
    if info.form == "genai" and not ref:
        raise InvalidInput(f"{pipeline.source}: $.promptpack: a GenAI model is gated on a PromptPack; add "
                           "promptpack: {id, version} (see `edgegate pack add`)", path=pipeline.source)
    if not ref:
        return None
    if info.form != "genai":
        raise InvalidInput(f"{pipeline.source}: $.promptpack: {info.form} models take no PromptPack; only GenAI "
                           "folders (onnxruntime-genai, with genai_config.json) do", path=pipeline.source)
    if ref.get("path"):
        added = add_pack(ws, ref["path"])
        if (added.pack_id, added.version) != (ref["id"], ref["version"]):
            raise InvalidInput(f"{pipeline.source}: $.promptpack.path: {ref['path']} holds "
                               f"{added.pack_id}@{added.version}, not {ref['id']}@{ref['version']}")
    return resolve_pipeline_pack(ws, ref["id"], ref["version"], pipeline.source)


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


def _ensure_mapping(ws: Workspace, pipeline: Pipeline, progress: Progress) -> tuple[dict, str, str]:
    from .probe import current_with_digest, probe_backend

    found = current_with_digest(ws, "metric_mappings", pipeline.backend)
    if found is None:
        if pipeline.backend != "local":
            raise MissingRequiredMetric(f"no capabilities recorded for backend {pipeline.backend} in {ws.home.path}",
                                        hint=f"run `edgegate probe --backend {pipeline.backend}` first")
        progress("no local capabilities recorded yet: probing the local backend first (once per home)")
        probe_backend(ws, "local", progress)
        found = current_with_digest(ws, "metric_mappings", pipeline.backend)
    caps = current_with_digest(ws, "capabilities", pipeline.backend)
    return found[0], found[1], caps[1]


def _inputs(ws: Workspace, pipeline: Pipeline, info, pack, tmp: Path) -> tuple[str | None, dict]:
    """What the model is fed: an .npz (stored in the CAS), or for GenAI the PromptPack."""
    from .cas import untag

    if pack is not None:
        return None, {"source": f"promptpack {pack.pack_id}@{pack.version}", "sha256": untag(pack.sha256)}
    inputs_path, inputs_desc = _prepare_inputs(pipeline, info, tmp)
    return inputs_path, {"source": inputs_desc, "sha256": store_file(ws.db, ws.cas, inputs_path, "inputs",
                                                                     "inputs.npz")}


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
    mapping, mapping_sha, caps_sha = _ensure_mapping(ws, pipeline, progress)
    if device_evidence:
        check_evidence_coverage(pipeline, device_evidence)
        mapping = mapping_with_evidence(mapping, device_evidence, _now())
        mapping_sha = store_bytes(ws.db, ws.cas, json.dumps(mapping, sort_keys=True).encode(), "metric_mappings",
                                  f"{run_id}-mapping.json")
    _preflight(pipeline, mapping, pipeline.backend)
    baselines = _resolve_baselines(ws, pipeline, run_id, baseline_options, progress)
    model_sha, model_desc = _ingest_model(ws, info)
    inputs_path, inputs = _inputs(ws, pipeline, info, pack, tmp)
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
    raw = measure_devices(backend, requests, progress)
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
                                                _provided(pipeline), baselines=baselines)
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


def _provided(pipeline: Pipeline) -> set[str]:
    return {"reference_outputs"} if pipeline.model and pipeline.model.reference_outputs else set()


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
