"""The local backend's probe: run the probe models, derive capabilities and the metric mapping."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..base import ProbeOutcome, Progress, RawPayload
from .catalog import CANDIDATES, GENAI_PROBE_CASES, RUNNABLE_FORMS, UNAVAILABLE, probe_models_dir, provider_for
from .worker import PAYLOAD_FORMAT

PROBE_ITERATIONS = 20
PROBE_RUNS = 3  # the first records reference outputs; the next two measure against them


def _probe_onnx(backend, form: str, info, tmp: Path, progress: Progress) -> list[dict]:
    from ...spec.inputs import generate_inputs

    inputs = tmp / f"{form}.npz"
    generate_inputs(info.inputs, None, 0, inputs, info.path)
    reference = tmp / f"{form}.ref.npz"
    out = []
    for i in range(PROBE_RUNS):
        progress(f"probe {form} run {i + 1}/{PROBE_RUNS}")
        out.append(backend._run_worker({
            "model": info.onnx_path, "inputs": str(inputs), "iterations": PROBE_ITERATIONS, "threads": 1,
            "device": "local:cpu", "repeat_index": i, "warmup": False, "providers": ["CPUExecutionProvider"],
            "save_outputs": str(reference) if i == 0 else None,
            "reference_outputs": str(reference) if i > 0 else None,
        }, 300))
    return out


def _probe_genai(backend, info, progress: Progress) -> list[dict]:
    out = []
    for i in range(2):
        progress(f"probe genai run {i + 1}/2")
        out.append(backend._run_worker({
            "kind": "genai", "model": info.path, "cases": GENAI_PROBE_CASES, "threads": 1, "device": "local:cpu",
            "repeat_index": i, "warmup": False, "context_length": info.context_length,
            "promptpack": {"id": "edgegate-probe", "version": "1.0.0"},
        }, 300))
    return out


def probe_local(backend, probe_run_id: str, progress: Progress) -> ProbeOutcome:
    """Run every probe model this machine can run; a form that fails is recorded, not fatal."""
    from ...errors import EdgeGateError
    from ...measure.mapping import derive_mapping
    from ...spec.validators import validate_model

    root = probe_models_dir()
    forms, probe_models, payloads = {}, [], []
    with tempfile.TemporaryDirectory(prefix="edgegate-probe-") as tmp:
        for form, rel in (("onnx_external", "onnx_external"), ("aimet", "aimet_quant.aimet"),
                          ("torchscript", "torch/tiny_model.pt"), ("genai", "genai_tiny")):
            info = validate_model(root / rel, {"x": {"shape": [1, 8]}} if form == "torchscript" else None)
            probe_models.append({"form": form, "path": rel, "bytes": info.total_bytes})
            if form not in RUNNABLE_FORMS:
                forms[form] = "unsupported: ONNX Runtime cannot run it (use backend qaihub)"
                continue
            try:
                runs = _probe_genai(backend, info, progress) if form == "genai" else \
                    _probe_onnx(backend, form, info, Path(tmp), progress)
            except EdgeGateError as exc:
                forms[form] = f"failed: {exc.message}"
                continue
            for data in runs:
                data["probe_model"] = form
                payloads.append(RawPayload(device="local:cpu", repeat_index=len(payloads), warmup=False, data=data))
            forms[form] = "ok"
    created = backend.ctx.clock.iso()
    mapping = derive_mapping("local", [p.data for p in payloads if p.data["probe_model"] in ("onnx_external", "genai")],
                             CANDIDATES, unavailable=UNAVAILABLE, probe_run_id=probe_run_id, created_at=created,
                             payload_format=PAYLOAD_FORMAT)
    env = payloads[0].data["environment"] if payloads else {}
    devices = backend.available_devices()
    capabilities = {
        "schema_version": 1, "backend": "local", "account": None, "probe_run_id": probe_run_id,
        "created_at": created, "environment": env,
        "devices": [{"name": d, "chipset": env.get("cpu"), "os": env.get("os"), "frameworks": ["onnx"]}
                    for d in devices],
        "features": {"execution_providers": [provider_for(d) for d in devices], "profile": True, "inference": True,
                     "job_logs": False, "genai": forms.get("genai") == "ok"},
        "metrics": {name: ("stable" if e.get("stable") else "unstable" if e["available"] else "unavailable")
                    for name, e in mapping["metrics"].items()},
        "model_forms": forms, "probe_models": probe_models,
    }
    return ProbeOutcome(payloads=payloads, capabilities=capabilities, mapping=mapping)
