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

from ...errors import DeviceJobFailed, InvalidInput, RunTimeout
from ..base import MeasureRequest, ProbeOutcome, Progress, RawPayload

RUNNABLE_FORMS = ("onnx", "onnx_external", "aimet", "genai")

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
    # GenAI payloads (edgegate.local.genai.v1): per repeat, the median over the pack's cases.
    "ttft_ms": {"source": {"path": "$.cases[*].ttft_ms", "reduce": "median"}},
    "tps": {"source": {"path": "$.cases[*].tps", "reduce": "median"}},
    "prompt_tps": {"source": {"path": "$.cases[*].prompt_tps", "reduce": "median"}},
    "correctness": {"source": {"path": "$.cases[*]", "reduce": "case_median_mean"}},
}
UNAVAILABLE = {
    "npu_layer_fraction": "ONNX Runtime on this machine reports no per-layer compute units",
}
# Two tiny cases the GenAI probe runs on probe_models/genai_tiny (a model trained to answer them).
GENAI_PROBE_CASES = [
    {"case_id": "capital", "prompt": "Q: What is the capital of France? A:", "max_new_tokens": 8,
     "expected": {"type": "contains", "values": ["Paris"]}},
    {"case_id": "times", "prompt": "Q: What is 6 times 7? A:", "max_new_tokens": 8,
     "expected": {"type": "numeric", "value": 42, "tolerance": 0}},
]
NOT_LOCAL = {"AzureExecutionProvider"}


def probe_models_dir() -> Path:
    from ... import data_dir

    return data_dir("probe_models")


def provider_for(device: str) -> str:
    """`local:cpu` → CPUExecutionProvider, `local:qnn` → QNNExecutionProvider, etc."""
    short = device.split(":", 1)[1]
    return {"cpu": "CPU", "cuda": "CUDA", "qnn": "QNN", "dml": "Dml", "coreml": "CoreML",
            "openvino": "OpenVINO", "xnnpack": "Xnnpack"}.get(short, short) + "ExecutionProvider"


def _device_name(provider: str) -> str:
    return "local:" + provider.removesuffix("ExecutionProvider").lower()


class LocalBackend:
    name = "local"

    def __init__(self, ctx=None):
        from ...context import Context

        self.ctx = ctx or Context()

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
        return run_worker(WORKERS[request.get("kind", "onnx")], request, timeout)

    def measure(self, req: MeasureRequest, progress: Progress) -> list[RawPayload]:
        payloads = []
        for index in range(req.warmup + req.repeats):
            warmup = index < req.warmup
            progress(f"{req.device}: {'warmup' if warmup else 'repeat'} {index if not warmup else 1}"
                     f"{'' if warmup else f'/{req.repeats}'}")
            request = {"device": req.device, "repeat_index": index, "warmup": warmup, "threads": req.threads}
            if req.model_form == "genai":
                request.update(kind="genai", model=req.model_path, cases=req.cases, promptpack=req.promptpack,
                               context_length=req.context_length)
            else:
                request.update(model=req.model_path, inputs=req.inputs_path, iterations=req.iterations,
                               providers=[provider_for(req.device)], reference_outputs=req.reference_outputs)
            data = self._run_worker(request, req.deadline - time.monotonic())
            payloads.append(RawPayload(device=req.device, repeat_index=index, warmup=warmup, data=data))
        return payloads

    def probe(self, probe_run_id: str, progress: Progress) -> ProbeOutcome:
        from .probe import probe_local

        return probe_local(self, probe_run_id, progress)


WORKERS = {"onnx": "edgegate_cli.backends.local.worker", "genai": "edgegate_cli.backends.local.genai_worker"}


def run_worker(module: str, request: dict, timeout: float) -> dict:
    """Run one repeat in a fresh Python process; return its JSON payload.

    Raises RunTimeout past `timeout` seconds and DeviceJobFailed (with the worker's last stderr
    line) when the process fails.
    """
    with tempfile.TemporaryDirectory(prefix="edgegate-worker-") as tmp:
        req_path = Path(tmp) / "request.json"
        req_path.write_text(json.dumps(request), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": str(request.get("threads", 1))}
        try:
            proc = subprocess.run([sys.executable, "-m", module, str(req_path)], capture_output=True, text=True,
                                  timeout=max(timeout, 0.001), env=env)
        except subprocess.TimeoutExpired:
            raise RunTimeout(f"{request['device']}: repeat {request['repeat_index']} did not finish before the "
                             "run timeout", hint="raise run_policy.timeout_s or lower iterations") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise DeviceJobFailed(f"{request['device']}: repeat {request['repeat_index']} failed: {reason}")
    return json.loads(proc.stdout)
