"""The local backend (SPEC §8): ONNX Runtime on this machine, one fresh process per repeat (forked from a
server that has imported ONNX Runtime once, where it can be: see `launch.py`)."""

from __future__ import annotations

import difflib
import time

from ...errors import InvalidInput
from ..base import MeasureRequest, ProbeOutcome, Progress, RawPayload
from .catalog import NOT_LOCAL, RUNNABLE_FORMS, provider_for
from .launch import Launcher


def _device_name(provider: str) -> str:
    return "local:" + provider.removesuffix("ExecutionProvider").lower()


class LocalBackend:
    name = "local"

    def __init__(self, ctx=None):
        from ...context import Context

        self.ctx = ctx or Context()
        # Every use of this backend runs ONNX Runtime (devices are its providers): the onnx fork server
        # starts now, so its imports overlap with the caller's own work (model checks, the state database).
        self.launcher = Launcher()
        self.launcher.start("onnx")

    def available_devices(self) -> list[str]:
        providers = self.launcher.providers()
        if providers is None:  # no fork server here
            import onnxruntime as ort

            providers = ort.get_available_providers()
        # Azure's provider calls a remote endpoint: it is not a device of this machine.
        return sorted(_device_name(p) for p in providers if p not in NOT_LOCAL)

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
        if form == "genai":  # it will run: start its fork server now, to overlap with the rest of preflight
            self.launcher.start("genai")

    def _run_worker(self, request: dict, timeout: float) -> dict:
        """One repeat in a fresh process (see `launch.py`); raises RunTimeout or DeviceJobFailed."""
        return self.launcher.run(request.get("kind", "onnx"), request, timeout)

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
