"""One device's share of a qaihub run (issue 17): compile, submit, poll, resubmit, recompile, collect.

Outcomes, each reported as a run event (`base.Notice`, recorded in run_events) and kept in the payloads'
"edgegate" provenance, so the evidence bundle shows them:
- a job that fails with a failure type AI Hub gives infrastructure trouble (qaihub_faults.RETRYABLE_FAILURES:
  CLOUD_THROTTLED, RUNTIME_INTERNAL_SERVICE_BUSY, CLOUD_API_ERROR, QDC_API_ERROR) is resubmitted on the same
  device after a pause (2, then 4 poll intervals, at most 60 s), at most MAX_JOB_ATTEMPTS times in all and
  only within the run deadline (AIHUB_RESUBMITTED; the payload lists the failed attempts under "attempts");
- a job on a *cached* compiled model that fails with QNN_VERSION_MISMATCH or DSP_VERSION_MISMATCH drops the
  cache entry; the model is compiled again once and every job of the device rerun (AIHUB_RECOMPILED);
- any other failure stops the device: DEVICE_JOB_FAILED with AI Hub's reason and failure type;
- every payload is checked (qaihub_payloads): a missing or unusable one is COLLECTION_FAILED naming the job,
  odd ones get notes (AIHUB_PAYLOAD_NOTE);
- a "(Family)" device name gets a warning (AIHUB_FAMILY_DEVICE): its repeats may run on different phones;
- paired measurement (SPEC §6 item 7): the baseline models of relative gates (`paired`) are compiled (cached)
  and profiled on the same device in the same run, their jobs submitted between the candidate's (B, A, B, A
  …), and returned apart from the candidate's payloads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ...errors import CollectionFailed
from ..base import Notice, RawPayload
from .catalog import PAYLOAD_FORMAT
from .faults import (
    MAX_JOB_ATTEMPTS,
    RETRYABLE_FAILURES,
    STALE_TARGET_FAILURES,
    Stopped,
    auth_refused,
    classify,
    describe,
    failure_type,
    reason_of,
    sdk_exceptions,
)
from .jobs import job_failed, poll_jobs, submit_with_retry
from .models import agreement, compile_call, finish_compile, input_dataset, model_digest, start_compile
from .payloads import check_outputs, check_profile
from .submit import find_job

_UNINFORMATIVE = (None, "UNKNOWN", "RUNTIME_UNKNOWN")


@dataclass
class Slot:
    """One job of the device, across its attempts."""

    label: str  # "warmup", "repeat 1/3", "inference on the run's inputs", "compile"
    what: str  # as submitted: "profile job (warmup)"
    noun: str  # as failed: "job (warmup)"
    base_name: str  # the AI Hub job name of the first attempt (unique per run, device and label)
    make: Callable[[str], object]  # name -> a new SDK job
    compile_job: bool = False
    cached: bool = False  # the job runs a compiled model from the cache (a stale one is recompiled)
    job: object = None
    failed: list[dict] = field(default_factory=list)  # earlier attempts: job_id, failure_type, reason
    failure_type: str | None = None

    @property
    def name(self) -> str:
        return self.base_name if not self.failed else f"{self.base_name} #{len(self.failed) + 1}"


class StaleTarget(Exception):
    """A job failed on a cached compiled model that no longer fits the device's runtime."""

    def __init__(self, record: dict):
        super().__init__(record["job_id"])
        self.record = record


class DeviceRun:
    def __init__(self, backend, req, progress, stop: threading.Event | None, paired: list | None = None):
        self.backend, self.req, self.progress, self.stop = backend, req, progress, stop
        self.device = req.device
        self.client, self.settings = backend.client, backend.settings
        self.sha = req.model_sha256 or model_digest(req.model_source or req.model_path)
        self.paired = list(paired or [])  # [(key, MeasureRequest of a baseline model)] to profile beside it
        self.recompiled: dict | None = None
        self.target_id = ""
        self.paired_targets: list = []  # their compiled models, in `paired` order
        self.paired_payloads: list = []  # [(key, RawPayload)] once run() has collected

    def run(self) -> list[RawPayload]:
        if self.device.endswith("(Family)"):
            stem = self.device.removesuffix(" (Family)").strip()
            self.progress(Notice("AIHUB_FAMILY_DEVICE", f"{self.device}: a \"(Family)\" name lets AI Hub run each job "
                                 "on any device of the family, so repeats may run on different models and vary more; "
                                 f"pin one model name (such as {stem!r}) for comparable repeats"))
        target, cached = self._compile(use_cache=True)
        baselines = [self._compile(use_cache=True, req=breq) for _key, breq in self.paired]
        try:
            slots = self._measure(target, cached, baselines)
        except StaleTarget as stale:
            rec = self.recompiled = stale.record
            self.progress(Notice("AIHUB_RECOMPILED", f"{self.device}: AI Hub job {rec['job_id']} failed on the cached "
                                 f"compiled model {rec['target_model_id']} ({rec['failure_type']}: {rec['reason']}); "
                                 "compiling again and rerunning this device's jobs"))
            target, _ = self._compile(use_cache=False)
            baselines = [self._compile(use_cache=False, req=breq) for _key, breq in self.paired]
            slots = self._measure(target, False, [(t, False) for t, _cached in baselines])
        return self._collect(slots, target)

    # ---- compile -------------------------------------------------------------------------------------------
    def _compile(self, use_cache: bool, req=None):
        """(compiled model, whether it came from the cache) of the candidate, or of a paired baseline `req`."""
        baseline = req is not None
        req = req or self.req
        sha = req.model_sha256 if baseline else self.sha
        name = f"edgegate {self.req.run_id}" + (f" baseline {sha[:12]}" if baseline else "") + \
            ("" if use_cache else " (recompile)")
        target, job = start_compile(self.backend, req.model_source or req.model_path, sha, req.input_specs,
                                    self.device, self.progress, name, req.model_form, deadline=req.deadline,
                                    use_cache=use_cache)
        if job is None:
            return target, req.model_form != "tflite"
        slot = Slot("compile", "compile job", "compile job", name, compile_job=True, job=job,
                    make=lambda n, model=job.model: compile_call(self.backend, model, self.device, req.input_specs, n))
        status = self._poll({"compile": slot}, f"{self.device}: compile")["compile"]
        if status.failure:
            raise self._failed(slot, status)
        target = finish_compile(self.backend, sha, req.input_specs, self.device, slot.job)
        self.progress(f"{self.device}: compiled ({target.model_id})")
        return target, False

    # ---- measure -------------------------------------------------------------------------------------------
    def _measure(self, target, cached: bool, baselines: list | None = None) -> dict:
        from qai_hub.client import Device

        req, device = self.req, Device(name=self.device)
        self.target_id = target.model_id
        self.paired_targets = [t for t, _cached in baselines or []]
        again = "" if self.recompiled is None else " (recompiled)"
        options = f"--max_profiler_iterations {req.iterations}"

        def profile(model):
            return lambda n: self.client.submit_inference_job(model, device, name=n, options=options, profile=True,
                                                              retry=False)

        slots: dict = {}
        for i in range(req.warmup + req.repeats):
            label = "warmup" if i < req.warmup else f"repeat {i - req.warmup + 1}/{req.repeats}"
            for j, (base_target, base_cached) in enumerate(baselines or []):  # B before A, repeat by repeat
                what = f"baseline {j + 1} {label}"
                slots[("paired", j, i)] = Slot(what, f"profile job ({what})", f"job ({what})",
                                               f"edgegate {req.run_id} {what}{again}", profile(base_target),
                                               cached=base_cached)
            slots[i] = Slot(label, f"profile job ({label})", f"job ({label})", f"edgegate {req.run_id} {label}{again}",
                            profile(target), cached=cached)
        if req.reference_outputs:
            dataset = input_dataset(self.backend, req.inputs_path, self.progress)
            label = "inference on the run's inputs"
            slots["outputs"] = Slot(label, "inference job", f"job ({label})", f"edgegate {req.run_id} outputs{again}",
                                    lambda n: self.client.submit_inference_job(target, device, inputs=dataset, name=n,
                                                                               profile=False, retry=False),
                                    cached=cached)
        for slot in slots.values():
            slot.job = self._submit(slot)
        self.progress(f"{self.device}: {len(slots)} jobs submitted ({', '.join(s.job.job_id for s in slots.values())})")
        statuses = self._poll(slots, self.device, fail_fast=True)
        for key, status in statuses.items():
            if status.failure:
                raise self._failed(slots[key], status)
        return slots

    def _submit(self, slot: Slot):
        return submit_with_retry(lambda: slot.make(slot.name), f"{self.device}: {slot.what}", self.settings,
                                 self.progress, deadline=self.req.deadline, stop=self.stop,
                                 find=lambda: find_job(self.client, slot.name, self.device,
                                                       compile_job=slot.compile_job))

    def _poll(self, slots: dict, describe_as: str, *, fail_fast: bool = False) -> dict:
        return poll_jobs({k: s.job for k, s in slots.items()}, deadline=self.req.deadline,
                         first_interval=self.settings.poll_s, settings=self.settings, describe=describe_as,
                         stop=self.stop, fail_fast=fail_fast, progress=self.progress,
                         on_failure=lambda key, job, status: self._on_failure(slots[key], job, status))

    def _on_failure(self, slot: Slot, job, status):
        """A replacement job for a failed one the infrastructure is to blame for, else None (see the docstring)."""
        kind = slot.failure_type = failure_type(self.client, job.job_id)
        reason = reason_of(status, self.settings.redact)
        if kind in STALE_TARGET_FAILURES and slot.cached and not slot.compile_job:
            raise StaleTarget({"job_id": job.job_id, "failure_type": kind, "reason": reason,
                               "target_model_id": self.target_id})
        attempt = len(slot.failed) + 1
        pause = min(self.settings.poll_s * 2 ** attempt, 60.0)
        if kind not in RETRYABLE_FAILURES or attempt >= MAX_JOB_ATTEMPTS or \
                time.monotonic() + pause >= self.req.deadline:
            return None
        slot.failed.append({"job_id": job.job_id, "failure_type": kind, "reason": reason})
        if (self.stop or threading.Event()).wait(pause):
            raise Stopped(self.device)
        slot.job = self._submit(slot)
        self.progress(Notice("AIHUB_RESUBMITTED", f"{self.device}: AI Hub {slot.noun} {job.job_id} failed ({kind}: "
                             f"{reason}); resubmitted on the same device as {slot.job.job_id} (attempt {attempt + 1} "
                             f"of {MAX_JOB_ATTEMPTS})"))
        return slot.job

    def _failed(self, slot: Slot, status):
        detail = f" [{slot.failure_type}]" if slot.failure_type not in _UNINFORMATIVE else ""
        if slot.failed:
            earlier = ", ".join(f"{a['job_id']} ({a['failure_type']})" for a in slot.failed)
            detail += f" (attempt {len(slot.failed) + 1} of {MAX_JOB_ATTEMPTS}; earlier attempts: {earlier})"
        return job_failed(self.device, slot.noun, slot.job, status, self.settings.redact, detail)

    # ---- collect -------------------------------------------------------------------------------------------
    def _collect(self, slots: dict, target) -> list[RawPayload]:
        req, payloads, notes = self.req, [], {}
        for key, slot in slots.items():
            job, job_notes = slot.job, []
            if key == "outputs":
                import numpy as np

                outputs = check_outputs(self._download(slot, job.download_output_data), device=self.device, job=job,
                                        label=slot.label)
                with np.load(req.reference_outputs) as ref:
                    data = {"outputs": agreement(outputs, dict(ref))}
            else:
                data = json.loads(json.dumps(self._download(slot, job.download_profile)))  # tuples → lists
                job_notes = check_profile(data, device=self.device, job=job, label=slot.label,
                                          iterations=req.iterations)
            paired = isinstance(key, tuple)
            index = req.warmup + req.repeats if key == "outputs" else key[2] if paired else key
            provenance = {"format": PAYLOAD_FORMAT, "device": req.device, "job_id": job.job_id, "job_name": slot.name,
                          "job_kind": "inference" if key == "outputs" else "profile", "label": slot.label,
                          "target_model_id": target.model_id, "sdk_version": self.backend.sdk_version,
                          "toolchain": self.backend.toolchain}
            if paired:  # a paired baseline's job: its own compiled model, the baseline model's digest
                _key, breq = self.paired[key[1]]
                provenance.update(role="baseline", model_sha256=breq.model_sha256,
                                  target_model_id=self.paired_targets[key[1]].model_id)
            for name, value in (("attempts", slot.failed), ("recompiled_after", self.recompiled), ("notes", job_notes)):
                if value:
                    provenance[name] = value
            for note in job_notes:
                notes.setdefault(note, []).append(job.job_id)
            data["edgegate"] = provenance
            payload = RawPayload(device=req.device, repeat_index=index, warmup=index < req.warmup, data=data)
            if paired:
                self.paired_payloads.append((self.paired[key[1]][0], payload))
            else:
                payloads.append(payload)
            self.progress(f"{req.device}: {slot.label} collected")
        for note, jobs in notes.items():
            self.progress(Notice("AIHUB_PAYLOAD_NOTE", f"{req.device}: {note} (AI Hub job{'s' * (len(jobs) > 1)} "
                                 f"{', '.join(jobs)})"))
        return payloads

    def _download(self, slot: Slot, fetch: Callable):
        """`fetch()` (a download of the job's result), retried once after a transient or storage failure."""
        for attempt in (1, 2):
            try:
                return fetch()
            except sdk_exceptions() as exc:
                kind, text = classify(exc), describe(exc, self.settings.redact)
            if kind == "auth":
                raise auth_refused(self.settings) from None
            if kind not in ("ambiguous", "storage") or attempt == 2 or time.monotonic() >= self.req.deadline:
                raise CollectionFailed(f"{self.device}: downloading the result of AI Hub job {slot.job.job_id} "
                                       f"({slot.label}) failed: {text}",
                                       hint="AI Hub may be busy or down; rerun later") from None
            self.progress(f"{self.device}: downloading the result of AI Hub job {slot.job.job_id} failed ({text}); "
                          "retrying once")
