"""The qaihub backend (SPEC §8): Qualcomm AI Hub devices through the real `qai_hub` SDK (0.56+).

Per run and device: the model is uploaded once per sha256 and compiled once per (sha256, device,
options, SDK version), both cached in state.db; then 1 warmup + N repeats, each one
`submit_inference_job(..., profile=True)`, all submitted at once, plus one inference job on the run's
inputs when the pipeline gives reference outputs. Devices run in parallel (the runner's threads).
A raw payload is the job's `download_profile()` dict (lists, not tuples) plus EdgeGate's provenance
under "edgegate"; metrics are read from it only through the mapping `probe` derives.
"""

from __future__ import annotations

import difflib
import json
import threading

from ...context import Context
from ...errors import CollectionFailed, InvalidInput
from ..base import DeviceInfo, MeasureRequest, ProbeOutcome, Progress, RawPayload
from .catalog import PAYLOAD_FORMAT, RUNNABLE_FORMS
from .jobs import backend_error, job_failed, poll_jobs, sdk_errors, submit_with_retry
from .models import agreement, finish_compile, input_dataset, model_digest, start_compile


def device_info(device) -> DeviceInfo:
    """An SDK Device as EdgeGate lists it: chipset and frameworks come from its key:value attributes."""
    attrs = sorted(device.attributes if isinstance(device.attributes, list) else [device.attributes])
    values = {}
    for attr in attrs:
        key, _, value = attr.partition(":")
        values.setdefault(key, []).append(value)
    return DeviceInfo(name=device.name, os=device.os or None, chipset=(values.get("chipset") or [None])[0],
                      frameworks=values.get("framework", []), attributes=attrs)


class QAIHubBackend:
    name = "qaihub"
    parallel_devices = True
    max_parallel_devices = 5

    def __init__(self, ctx: Context | None = None, state_path=None, probe_devices: list[str] | None = None):
        self.ctx = ctx or Context()
        self.state_path = state_path
        self.probe_devices = list(probe_devices or [])
        self.upload_lock = threading.Lock()
        self.datasets: dict = {}
        self._lazy: dict = {}
        self._lazy_lock = threading.RLock()
        self._devices: list[DeviceInfo] | None = None

    def _once(self, name: str, make):
        with self._lazy_lock:  # device threads share one client, one cache
            if name not in self._lazy:
                self._lazy[name] = make()
            return self._lazy[name]

    @property
    def settings(self):
        """config.QAIHubSettings, read on first use: a missing token fails the first AI Hub call (exit 2)."""
        from ...config import qaihub_settings

        return self._once("settings", lambda: qaihub_settings(self.ctx))

    @property
    def client(self):
        def make():
            import qai_hub
            from qai_hub.client import ClientConfig

            s = self.settings
            return qai_hub.Client(config=ClientConfig(api_token=s.api_token, api_url=s.api_url, web_url=s.web_url,
                                                      verbose=False))

        return self._once("client", make)

    @property
    def cache(self):
        from .cache import AIHubCache

        return self._once("cache", lambda: AIHubCache(self.state_path, self.settings.api_url))

    @property
    def sdk_version(self) -> str:
        import qai_hub

        return str(qai_hub.__version__)

    def list_devices(self) -> list[DeviceInfo]:
        """AI Hub's device list (every OS version of a name is its own row), read once per backend."""
        if self._devices is None:
            try:
                found = self.client.get_devices()
            except sdk_errors() as exc:
                raise backend_error(exc, self.settings, "listing devices") from None
            self._devices = [device_info(d) for d in found]
        return self._devices

    def check_devices(self, devices: list[str], source: str) -> None:
        """InvalidInput for a name AI Hub does not list (renamed or retired), with its close matches."""
        names = sorted({d.name for d in self.list_devices()})
        for i, device in enumerate(devices):
            if device not in names:
                close = difflib.get_close_matches(device, names, n=3, cutoff=0.5)
                where = f"{source}: $.devices[{i}]" if source != "--device" else "--device"
                raise InvalidInput(f"{where}: {device!r} is not an AI Hub device now (AI Hub renames and retires "
                                   "devices)" + (f"; close matches: {', '.join(map(repr, close))}" if close else ""),
                                   hint="`edgegate probe devices` lists every AI Hub device")

    def check_model_form(self, form: str, source: str) -> None:
        if form not in RUNNABLE_FORMS:
            raise InvalidInput(f"{source}: the qaihub backend runs ONNX, AIMET, TorchScript and TFLite models; "
                               f"a {form} model has no AI Hub measurement of tokens: use backend: local")

    def measure(self, req: MeasureRequest, progress: Progress, stop: threading.Event | None = None) -> list[RawPayload]:
        """Compile (cached), then 1 warmup + N profiling jobs (and the agreement job) at once; poll; collect.

        Raises DeviceJobFailed (naming the device, job and AI Hub's reason), SubmissionFailed, RunTimeout,
        CollectionFailed, BackendUnavailable; qaihub_jobs.Stopped when `stop` is set meanwhile.
        """
        from qai_hub.client import Device

        device, source = req.device, req.model_source or req.model_path
        sha = req.model_sha256 or model_digest(source)
        poll = dict(first_interval=self.settings.poll_s, settings=self.settings, stop=stop, deadline=req.deadline)
        target, job = start_compile(self, source, sha, req.input_specs, device, progress, f"edgegate {req.run_id}",
                                    req.model_form)
        if job is not None:
            status = poll_jobs({0: job}, describe=f"{device}: compile", **poll)[0]
            if status.failure:
                raise job_failed(device, "compile job", job, status, self.settings.redact)
            target = finish_compile(self, sha, req.input_specs, device, job)
            progress(f"{device}: compiled ({target.model_id})")
        options = f"--max_profiler_iterations {req.iterations}"
        labels = {i: "warmup" if i < req.warmup else f"repeat {i - req.warmup + 1}/{req.repeats}"
                  for i in range(req.warmup + req.repeats)}
        jobs = {i: submit_with_retry(
            lambda label=label: self.client.submit_inference_job(
                target, Device(name=device), name=f"edgegate {req.run_id} {label}", options=options, profile=True,
                retry=False), f"{device}: profile job ({label})", self.settings, progress)
            for i, label in labels.items()}
        if req.reference_outputs:
            dataset = input_dataset(self, req.inputs_path, progress)
            labels["outputs"] = "inference on the run's inputs"
            jobs["outputs"] = submit_with_retry(lambda: self.client.submit_inference_job(
                target, Device(name=device), inputs=dataset, name=f"edgegate {req.run_id} outputs", profile=False,
                retry=False), f"{device}: inference job", self.settings, progress)
        progress(f"{device}: {len(jobs)} jobs submitted ({', '.join(j.job_id for j in jobs.values())})")
        statuses = poll_jobs(jobs, describe=device, fail_fast=True, **poll)
        for key, status in statuses.items():
            if status.failure:
                raise job_failed(device, f"job ({labels[key]})", jobs[key], status, self.settings.redact)
        return self._collect(req, jobs, labels, target, progress)

    def _collect(self, req, jobs: dict, labels: dict, target, progress) -> list[RawPayload]:
        payloads = []
        for key, job in jobs.items():
            try:
                if key == "outputs":
                    import numpy as np

                    with np.load(req.reference_outputs) as ref:
                        data = {"outputs": agreement(job.download_output_data() or {}, dict(ref))}
                else:
                    data = json.loads(json.dumps(job.download_profile()))  # tuples → lists, as stored
            except sdk_errors() as exc:
                raise CollectionFailed(f"{req.device}: downloading the result of AI Hub job {job.job_id} failed: "
                                       f"{self.settings.redact(str(exc))}") from None
            index = req.warmup + req.repeats if key == "outputs" else key
            data["edgegate"] = {"format": PAYLOAD_FORMAT, "device": req.device, "job_id": job.job_id,
                                "job_kind": "inference" if key == "outputs" else "profile", "label": labels[key],
                                "target_model_id": target.model_id, "sdk_version": self.sdk_version}
            payloads.append(RawPayload(device=req.device, repeat_index=index, warmup=index < req.warmup, data=data))
            progress(f"{req.device}: {labels[key]} collected")
        return payloads

    def probe(self, probe_run_id: str, progress: Progress) -> ProbeOutcome:
        from .probe import probe_qaihub

        return probe_qaihub(self, probe_run_id, progress)
