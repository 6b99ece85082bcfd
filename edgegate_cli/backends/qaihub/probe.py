"""The qaihub probe: run the three probe models through compile → profile → inference on each --device,
keep every raw payload, and derive the metric mapping and the capabilities from them.

A job that fails is recorded under `model_forms` (with AI Hub's reason), not fatal; a missing token,
a refused token or an unknown device is. Outputs of the ONNX probe models are compared with ONNX
Runtime on this machine, so output agreement is probed too (TorchScript has no local reference).
"""

from __future__ import annotations

import json
import platform
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...errors import InvalidInput, LimitExceeded
from ..base import ProbeOutcome, Progress, RawPayload
from .catalog import CANDIDATES, PAYLOAD_FORMAT, UNAVAILABLE
from .jobs import poll_jobs, sdk_errors, submit_with_retry
from .models import COMPILE_OPTIONS, agreement, finish_compile, model_digest, start_compile

PROBE_MODELS = (("onnx_external", "onnx_external", None), ("aimet", "aimet_quant.aimet", None),
                ("torchscript", "torch/tiny_model.pt", {"x": {"shape": [1, 8]}}))
PROBE_ITERATIONS = 100  # AI Hub's default; ≥ 64 so latency_p90_ms is probed too
PROBE_TIMEOUT_S = 2700
MAX_PROBE_DEVICES = 5


@dataclass
class ProbeModel:
    form: str
    rel: str
    path: str
    sha256: str
    bytes: int
    specs: dict | None
    dataset: object  # the AI Hub Dataset of its generated inputs
    reference: dict | None  # ONNX Runtime's outputs on those inputs, for the ONNX forms


def _prepare(backend, tmp: Path, progress: Progress) -> list[ProbeModel]:
    """Validate each probe model, generate its inputs, compute local reference outputs, upload the inputs."""
    import numpy as np

    from ...spec.inputs import generate_inputs
    from ...spec.validators import validate_model
    from ..local.catalog import probe_models_dir
    from .models import load_entries

    out = []
    for form, rel, specs in PROBE_MODELS:
        info = validate_model(probe_models_dir() / rel, specs)
        npz = tmp / f"{form}.npz"
        generate_inputs(info.inputs, specs, 0, npz, rel)
        entries = load_entries(str(npz))
        reference = None
        if info.onnx_path:
            import onnxruntime as ort

            session = ort.InferenceSession(info.onnx_path, providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            reference = dict(zip(names, session.run(None, {k: v[0] for k, v in entries.items()}), strict=True))
            reference = {k: np.asarray(v) for k, v in reference.items()}
        dataset = submit_with_retry(
            lambda e=entries, f=form: backend.client.upload_dataset(e, name=f"edgegate-probe-{f}"),
            f"{form}: dataset upload", backend.settings, progress)
        out.append(ProbeModel(form=form, rel=rel, path=info.path, sha256=model_digest(info.path),
                              bytes=info.total_bytes, specs=specs, dataset=dataset, reference=reference))
    return out


def _failed(device: str, what: str, job, status, redact) -> str:
    return f"failed on {device}: {what} job {job.job_id}: {redact(status.message or 'no reason given')}"


def _probe_device(backend, device: str, models: list[ProbeModel], deadline: float, progress: Progress,
                  tag: str = "edgegate probe"):
    """(payload data list, form → result, job logs readable) for one device."""
    from qai_hub.client import Device

    poll = dict(deadline=deadline, first_interval=backend.settings.poll_s, settings=backend.settings,
                progress=progress)
    by_form = {m.form: m for m in models}
    targets, compiles, results = {}, {}, {}
    for m in models:
        targets[m.form], compiles[m.form] = start_compile(backend, m.path, m.sha256, m.specs, device, progress,
                                                          f"{tag} {m.form}", m.form, deadline=deadline)
    compiles = {f: j for f, j in compiles.items() if j is not None}
    for form, status in poll_jobs(compiles, describe=f"{device}: probe compile", **poll).items():
        if status.failure:
            results[form] = _failed(device, "compile", compiles[form], status, backend.settings.redact)
        else:
            targets[form] = finish_compile(backend, by_form[form].sha256, by_form[form].specs, device, compiles[form])
    jobs = {}
    for form, target in targets.items():
        if target is None:
            continue
        for kind, extra in (("profile", dict(profile=True, options=f"--max_profiler_iterations {PROBE_ITERATIONS}")),
                            ("inference", dict(profile=False, inputs=by_form[form].dataset))):
            jobs[(form, kind)] = submit_with_retry(
                lambda t=target, x=extra, k=kind: backend.client.submit_inference_job(
                    t, Device(name=device), name=f"edgegate probe {k}", retry=False, **x),
                f"{device}: probe {kind} job ({form})", backend.settings, progress)
    progress(f"{device}: {len(jobs)} probe jobs submitted")
    statuses = poll_jobs(jobs, describe=f"{device}: probe", **poll)
    payloads = []
    for (form, kind), job in jobs.items():
        if statuses[(form, kind)].failure:
            results.setdefault(form, _failed(device, kind, job, statuses[(form, kind)], backend.settings.redact))
            continue
        data = _download(job, kind, by_form[form])
        data["edgegate"] = {"format": PAYLOAD_FORMAT, "device": device, "job_id": job.job_id, "job_kind": kind,
                            "target_model_id": targets[form].model_id, "sdk_version": backend.sdk_version}
        data["probe_model"] = form
        payloads.append(data)
    for m in models:
        results.setdefault(m.form, "ok")
    return payloads, results, _logs_readable(jobs, statuses)


def _download(job, kind: str, model: ProbeModel) -> dict:
    if kind == "profile":
        return json.loads(json.dumps(job.download_profile()))
    outputs = job.download_output_data() or {}
    if model.reference is None:
        return {"outputs": {"compared": [], "note": f"no local reference for a {model.form} model"},
                "output_names": list(outputs)}
    return {"outputs": agreement(outputs, model.reference), "output_names": list(outputs)}


def _logs_readable(jobs: dict, statuses: dict) -> bool:
    """Whether AI Hub hands out the logs of a finished profile job."""
    for key, job in jobs.items():
        if key[1] == "profile" and statuses[key].success:
            with tempfile.TemporaryDirectory(prefix="edgegate-logs-") as tmp:
                try:
                    return bool(job.download_job_logs(tmp))
                except sdk_errors():
                    return False
    return False


def probe_qaihub(backend, probe_run_id: str, progress: Progress) -> ProbeOutcome:
    """Probe every --device in parallel; raises InvalidInput without devices or with an unknown one."""
    from ... import __version__
    from ...measure.mapping import derive_mapping

    devices = backend.probe_devices
    if not devices:
        raise InvalidInput("probing AI Hub needs at least one --device NAME (each probe spends device minutes)",
                           hint="`edgegate probe devices` lists them; e.g. --device 'Samsung Galaxy S24 (Family)'")
    if len(devices) > MAX_PROBE_DEVICES:
        raise LimitExceeded(f"--device: {len(devices)} devices exceed the limit of {MAX_PROBE_DEVICES} per probe")
    backend.check_devices(devices, "--device")
    lock = threading.Lock()

    def safe(text: str) -> None:
        with lock:
            progress(text)

    with tempfile.TemporaryDirectory(prefix="edgegate-probe-") as tmp:
        models = _prepare(backend, Path(tmp), safe)
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="edgegate-probe") as pool:
            found = list(pool.map(lambda d: _probe_device(backend, d, models, deadline, safe,
                                                          f"edgegate {probe_run_id}"), devices))
    payloads, forms, logs = [], {}, False
    for device, (datas, results, readable) in zip(devices, found, strict=True):
        payloads += [RawPayload(device=device, repeat_index=len(payloads) + i, warmup=False, data=d)
                     for i, d in enumerate(datas)]
        for form, result in results.items():
            forms[form] = result if forms.get(form, "ok") == "ok" else forms[form]
        logs = logs or readable
    forms["genai"] = "unsupported: " + UNAVAILABLE["correctness"]
    created = backend.ctx.clock.iso()
    mapping = derive_mapping("qaihub", [p.data for p in payloads], CANDIDATES, unavailable=UNAVAILABLE,
                             probe_run_id=probe_run_id, created_at=created, payload_format=PAYLOAD_FORMAT)
    kinds = {p.data["edgegate"]["job_kind"] for p in payloads}
    settings = backend.settings
    capabilities = {
        "schema_version": 1, "backend": "qaihub", "account": None, "probe_run_id": probe_run_id, "created_at": created,
        "environment": {"edgegate": __version__, "qai_hub": backend.sdk_version, "python": platform.python_version(),
                        "api_url": settings.redact(settings.api_url), "compile_options": COMPILE_OPTIONS},
        "devices": [d.model_dump() for d in backend.list_devices()],
        "features": {"profile": "profile" in kinds, "inference": "inference" in kinds, "job_logs": logs,
                     "genai": False, "token_metrics": False, "probed_devices": list(devices)},
        "metrics": {name: ("stable" if e.get("stable") else "unstable" if e["available"] else "unavailable")
                    for name, e in mapping["metrics"].items()},
        "model_forms": forms,
        "probe_models": [{"form": m.form, "path": m.rel, "bytes": m.bytes} for m in models],
    }
    return ProbeOutcome(payloads=payloads, capabilities=capabilities, mapping=mapping)
