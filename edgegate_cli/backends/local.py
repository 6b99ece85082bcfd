"""The local backend (SPEC §8): ONNX Runtime on this machine, one fresh process per repeat."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import DeviceJobFailed, InvalidInput, RunTimeout
from ..state import utcnow
from .base import MeasureRequest, ProbeOutcome, Progress, RawPayload
from .local_worker import PAYLOAD_FORMAT

RUNNABLE_FORMS = ("onnx", "onnx_external", "aimet")

# Where each canonical metric lives in an edgegate.local.v1 payload. `probe` checks every
# candidate against real payloads before it enters the mapping.
CANDIDATES = {
    "latency_ms": {"source": {"path": "$.iterations_ms", "reduce": "median"}},
    "latency_p90_ms": {"source": {"path": "$.iterations_ms", "reduce": "p90"}},
    "throughput_ips": {"derive": {"from": "latency_ms", "formula": "reciprocal_ms_to_per_s"}},
    "first_load_ms": {"source": {"path": "$.load_ms", "reduce": "value"}},
    "warm_load_ms": {"source": {"path": "$.warm_load_ms", "reduce": "value"}},
    "peak_memory_mb": {"source": {"path": "$.peak_rss_mb", "reduce": "value"}},
    "output_cosine": {"source": {"path": "$.outputs.cosine", "reduce": "value"},
                      "requires": "reference_outputs"},
    "output_max_abs_err": {"source": {"path": "$.outputs.max_abs_err", "reduce": "value"},
                           "requires": "reference_outputs"},
}
UNAVAILABLE = {
    "npu_layer_fraction": "ONNX Runtime on this machine reports no per-layer compute units",
    "ttft_ms": "token metrics need a GenAI model folder (onnxruntime-genai); this probe ran none",
    "tps": "token metrics need a GenAI model folder (onnxruntime-genai); this probe ran none",
    "prompt_tps": "token metrics need a GenAI model folder (onnxruntime-genai); this probe ran none",
    "correctness": "correctness needs a PromptPack and a GenAI model",
}
PROBE_ITERATIONS = 20
NOT_LOCAL = {"AzureExecutionProvider"}


def probe_models_dir() -> Path:
    packaged = Path(__file__).parent.parent / "_probe_models"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent.parent / "probe_models"


def provider_for(device: str) -> str:
    """`local:cpu` → CPUExecutionProvider, `local:qnn` → QNNExecutionProvider, etc."""
    short = device.split(":", 1)[1]
    return {"cpu": "CPU", "cuda": "CUDA", "qnn": "QNN", "dml": "Dml", "coreml": "CoreML",
            "openvino": "OpenVINO", "xnnpack": "Xnnpack"}.get(short, short) + "ExecutionProvider"


def _device_name(provider: str) -> str:
    return "local:" + provider.removesuffix("ExecutionProvider").lower()


class LocalBackend:
    name = "local"

    def available_devices(self) -> list[str]:
        import onnxruntime as ort

        # Azure's provider calls a remote endpoint: it is not a device of this machine.
        return sorted(_device_name(p) for p in ort.get_available_providers() if p not in NOT_LOCAL)

    def check_devices(self, devices: list[str], source: str) -> None:
        known = self.available_devices()
        for i, device in enumerate(devices):
            if device not in known:
                close = difflib.get_close_matches(device, known, n=3)
                suggestion = f"; did you mean {close[0]}?" if close else ""
                raise InvalidInput(f"{source}: $.devices[{i}]: {device!r} is not available on this machine "
                                   f"(available: {', '.join(known)}){suggestion}")

    def check_model_form(self, form: str, source: str) -> None:
        if form not in RUNNABLE_FORMS:
            raise InvalidInput(f"{source}: the local backend runs ONNX models (onnx, onnx_external, aimet); "
                               f"a {form} model needs backend: qaihub")

    def _run_worker(self, request: dict, timeout: float) -> dict:
        with tempfile.TemporaryDirectory(prefix="edgegate-worker-") as tmp:
            req_path = Path(tmp) / "request.json"
            req_path.write_text(json.dumps(request), encoding="utf-8")
            env = {**os.environ, "OMP_NUM_THREADS": str(request.get("threads", 1))}
            try:
                proc = subprocess.run([sys.executable, "-m", "edgegate_cli.backends.local_worker", str(req_path)],
                                      capture_output=True, text=True, timeout=max(timeout, 0.001), env=env)
            except subprocess.TimeoutExpired:
                raise RunTimeout(f"{request['device']}: repeat {request['repeat_index']} did not finish "
                                 "before the run timeout",
                                 hint="raise run_policy.timeout_s or lower iterations") from None
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit status {proc.returncode}"
            raise DeviceJobFailed(f"{request['device']}: repeat {request['repeat_index']} failed: {reason}")
        return json.loads(proc.stdout)

    def measure(self, req: MeasureRequest, progress: Progress) -> list[RawPayload]:
        payloads = []
        for index in range(req.warmup + req.repeats):
            warmup = index < req.warmup
            progress(f"{req.device}: {'warmup' if warmup else 'repeat'} {index if not warmup else 1}"
                     f"{'' if warmup else f'/{req.repeats}'}")
            data = self._run_worker({
                "model": req.model_path, "inputs": req.inputs_path, "iterations": req.iterations,
                "threads": req.threads, "device": req.device, "repeat_index": index, "warmup": warmup,
                "providers": [provider_for(req.device)], "reference_outputs": req.reference_outputs,
            }, req.deadline - time.monotonic())
            payloads.append(RawPayload(device=req.device, repeat_index=index, warmup=warmup, data=data))
        return payloads

    def probe(self, probe_run_id: str, progress: Progress) -> ProbeOutcome:
        from ..inputs import generate_inputs
        from ..mapping import derive_mapping
        from ..validators import validate_model

        root = probe_models_dir()
        forms, probe_models, payloads = {}, [], []
        with tempfile.TemporaryDirectory(prefix="edgegate-probe-") as tmp:
            for form, rel in (("onnx_external", "onnx_external"), ("aimet", "aimet_quant.aimet"),
                              ("torchscript", "torch/tiny_model.pt")):
                info = validate_model(root / rel, {"x": {"shape": [1, 8]}} if form == "torchscript" else None)
                probe_models.append({"form": form, "path": rel, "bytes": info.total_bytes})
                if form not in RUNNABLE_FORMS:
                    forms[form] = "unsupported: ONNX Runtime cannot run it (use backend qaihub)"
                    continue
                inputs = Path(tmp) / f"{form}.npz"
                generate_inputs(info.inputs, None, 0, inputs, str(root / rel))
                reference = Path(tmp) / f"{form}.ref.npz"
                # Three runs: the first records reference outputs, the next two measure against them,
                # so every metric, output agreement included, is seen in >= 2 probe runs.
                for i in range(3):
                    progress(f"probe {form} run {i + 1}/3")
                    data = self._run_worker({
                        "model": info.onnx_path, "inputs": str(inputs), "iterations": PROBE_ITERATIONS,
                        "threads": 1, "device": "local:cpu", "repeat_index": i, "warmup": False,
                        "providers": ["CPUExecutionProvider"],
                        "save_outputs": str(reference) if i == 0 else None,
                        "reference_outputs": str(reference) if i > 0 else None,
                    }, 300)
                    data["probe_model"] = form
                    payloads.append(RawPayload(device="local:cpu", repeat_index=len(payloads), warmup=False, data=data))
                forms[form] = "ok"
        created = utcnow()
        mapping = derive_mapping("local", [p.data for p in payloads if p.data["probe_model"] == "onnx_external"],
                                 CANDIDATES, unavailable=UNAVAILABLE, probe_run_id=probe_run_id,
                                 created_at=created, payload_format=PAYLOAD_FORMAT)
        env = payloads[0].data["environment"] if payloads else {}
        capabilities = {
            "schema_version": 1, "backend": "local", "account": None, "probe_run_id": probe_run_id,
            "created_at": created, "environment": env,
            "devices": [{"name": d, "chipset": env.get("cpu"), "os": env.get("os"), "frameworks": ["onnx"]}
                        for d in self.available_devices()],
            "features": {"execution_providers": [provider_for(d) for d in self.available_devices()],
                         "profile": True, "inference": True, "job_logs": False, "genai": False},
            "metrics": {name: ("stable" if e.get("stable") else "unstable" if e["available"] else "unavailable")
                        for name, e in mapping["metrics"].items()},
            "model_forms": forms, "probe_models": probe_models,
        }
        return ProbeOutcome(payloads=payloads, capabilities=capabilities, mapping=mapping)
