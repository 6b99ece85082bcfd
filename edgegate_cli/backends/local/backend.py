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
from .catalog import NOT_LOCAL, RUNNABLE_FORMS, provider_for


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
        return [self.measure_repeat(req, index, progress) for index in range(req.warmup + req.repeats)]

    def measure_repeat(self, req: MeasureRequest, index: int, progress: Progress, role: str = "") -> RawPayload:
        """Repeat `index` of `req` (the first `req.warmup` are warmups) in a fresh worker process; `role`
        prefixes the progress line (paired measurement runs the baseline model's repeats between these)."""
        warmup = index < req.warmup
        progress(f"{req.device}: {role + ' ' if role else ''}{'warmup' if warmup else 'repeat'} "
                 f"{index if not warmup else 1}{'' if warmup else f'/{req.repeats}'}")
        request = {"device": req.device, "repeat_index": index, "warmup": warmup, "threads": req.threads,
                   "starved_off_cpu": req.starved_off_cpu}
        if req.model_form == "genai":
            request.update(kind="genai", model=req.model_path, cases=req.cases, promptpack=req.promptpack,
                           context_length=req.context_length)
        else:
            request.update(model=req.model_path, inputs=req.inputs_path, iterations=req.iterations,
                           providers=[provider_for(req.device)], reference_outputs=req.reference_outputs)
        data = self._run_worker(request, req.deadline - time.monotonic())
        return RawPayload(device=req.device, repeat_index=index, warmup=warmup, data=data)

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
