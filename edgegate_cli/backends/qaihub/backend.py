"""The qaihub backend (SPEC §8): Qualcomm AI Hub devices through the real `qai_hub` SDK (0.56+).

Per run and device: the model is uploaded once per sha256 and compiled once per (sha256, device,
options, SDK and toolchain version), both cached in state.db; then 1 warmup + N repeats, each one
`submit_inference_job(..., profile=True)`, all submitted at once, plus one inference job on the run's
inputs when the pipeline gives reference outputs. Devices run in parallel (the runner's threads); what
one device does, including resubmissions and recompiles, is `qaihub_device.DeviceRun`.
A raw payload is the job's `download_profile()` dict (lists, not tuples) plus EdgeGate's provenance
under "edgegate"; metrics are read from it only through the mapping `probe` derives.
"""

from __future__ import annotations

import difflib
import threading

from ...context import Context
from ...errors import InvalidInput
from ..base import DeviceInfo, MeasureRequest, ProbeOutcome, Progress, RawPayload
from .catalog import RUNNABLE_FORMS
from .jobs import backend_error, sdk_errors


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
        self.failed_uploads: dict = {}  # sha256 -> the error its upload ended with: other devices do not retry it
        self.datasets: dict = {}
        self._lazy: dict = {}
        self._lazy_lock = threading.RLock()
        self._devices: list[DeviceInfo] | None = None
        self.framework = "qnn"  # what the devices must run: QNN for compiled models, TFLite for .tflite uploads

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
                                                      verbose=False, default_project=s.default_project))

        return self._once("client", make)

    @property
    def cache(self):
        from .cache import AIHubCache

        return self._once("cache", lambda: AIHubCache(self.state_path, self.settings.api_url))

    @property
    def sdk_version(self) -> str:
        import qai_hub

        return str(qai_hub.__version__)

    @property
    def toolchain(self) -> str:
        """AI Hub's default toolchain as it reports it now (frameworks/ tagged "default"), e.g. "QAIRT 2.42.0…"."""
        def make():
            try:
                frameworks = self.client.get_frameworks()
            except sdk_errors() as exc:
                raise backend_error(exc, self.settings, "reading AI Hub's toolchain versions") from None
            default = sorted(f"{f.name} {f.full_version}" for f in frameworks if "default" in f.api_tags)
            return ", ".join(default) or "unknown"

        return self._once("toolchain", make)

    @property
    def toolchain_key(self) -> str:
        """The versions a compiled model depends on: the compile cache's `sdk_version` column."""
        return f"{self.sdk_version}; {self.toolchain}"

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
        """InvalidInput for a name AI Hub does not list (renamed or retired; names match exactly, case too),
        with its close matches, and for a device without the framework the jobs need (before any compile)."""
        listed = self.list_devices()
        names = sorted({d.name for d in listed})
        for i, device in enumerate(devices):
            where = f"{source}: $.devices[{i}]" if source != "--device" else "--device"
            if device not in names:
                close = [n for n in names if n.casefold() == device.casefold()]  # names match case too
                close += [n for n in difflib.get_close_matches(device, names, n=3, cutoff=0.5) if n not in close]
                matches = f"; close matches: {', '.join(map(repr, close[:3]))}" if close else ""
                raise InvalidInput(f"{where}: {device!r} is not an AI Hub device now (AI Hub renames and retires "
                                   f"devices){matches}", hint="`edgegate probe devices` lists every AI Hub device")
            frameworks = sorted({f for d in listed if d.name == device for f in d.frameworks})
            if self.framework not in frameworks:
                runs = "TFLite models run as uploaded" if self.framework == "tflite" else \
                    "EdgeGate compiles for QNN (--target_runtime qnn_dlc)"
                raise InvalidInput(f"{where}: {device!r} does not run {self.framework.upper()} models on AI Hub "
                                   f"(its frameworks: {', '.join(frameworks) or 'none listed'}); {runs}, so its jobs "
                                   "would fail after the compile was paid for",
                                   hint="pick a device whose frameworks include " + self.framework
                                        + " (`edgegate probe devices`)")

    def check_model_form(self, form: str, source: str) -> None:
        if form not in RUNNABLE_FORMS:
            raise InvalidInput(f"{source}: the qaihub backend runs ONNX, AIMET, TorchScript and TFLite models; "
                               f"a {form} model has no AI Hub measurement of tokens: use backend: local")
        self.framework = "tflite" if form == "tflite" else "qnn"

    def measure(self, req: MeasureRequest, progress: Progress, stop: threading.Event | None = None) -> list[RawPayload]:
        """Compile (cached), then 1 warmup + N profiling jobs (and the agreement job) at once; poll; collect.

        Raises DeviceJobFailed (naming the device, job and AI Hub's reason), SubmissionFailed, RunTimeout,
        CollectionFailed, BackendUnavailable; qaihub_jobs.Stopped when `stop` is set meanwhile. No exception
        of the SDK or its transfer libraries leaves here unmapped.
        """
        from .device import DeviceRun
        from .faults import from_sdk

        try:
            return DeviceRun(self, req, progress, stop).run()
        except sdk_errors() as exc:
            if not from_sdk(exc):
                raise
            raise backend_error(exc, self.settings, f"measuring on {req.device}") from None

    def measure_paired(self, req: MeasureRequest, baselines: list, progress: Progress,
                       stop: threading.Event | None = None) -> tuple[list[RawPayload], list]:
        """`measure`, with the baseline models of relative gates (`baselines`: [(key, MeasureRequest)]) profiled on
        the same device in the same run, their jobs submitted between the candidate's (SPEC §6 item 7).
        Returns (the candidate's payloads, [(key, payload)] of the baselines'); raises as `measure`."""
        from .device import DeviceRun
        from .faults import from_sdk

        run = DeviceRun(self, req, progress, stop, paired=baselines)
        try:
            return run.run(), run.paired_payloads
        except sdk_errors() as exc:
            if not from_sdk(exc):
                raise
            raise backend_error(exc, self.settings, f"measuring on {req.device}") from None

    def probe(self, probe_run_id: str, progress: Progress) -> ProbeOutcome:
        from .probe import probe_qaihub

        return probe_qaihub(self, probe_run_id, progress)
