"""The backend interface: turn (model, device, policy, inputs) into raw payloads, and probe.

A backend knows its own payload format (which keys to try in a probe); `run` knows none of it
and reads metrics only through the mapping that `probe` derives from real payloads.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Protocol

from pydantic import BaseModel


class MeasureRequest(BaseModel):
    run_id: str
    device: str
    model_path: str  # the file or directory the backend runs
    model_form: str
    model_source: str | None = None  # the model as given (file or directory): what qaihub uploads
    model_sha256: str | None = None  # the run's model digest (a directory's manifest digest)
    input_specs: dict | None = None  # the pipeline's input_specs (TorchScript needs them to compile)
    inputs_path: str | None = None  # .npz keyed by input name (not for GenAI models)
    reference_outputs: str | None = None
    cases: list[dict] | None = None  # GenAI: the PromptPack's cases, defaults applied
    promptpack: dict | None = None  # GenAI: {id, version, sha256}
    context_length: int | None = None
    iterations: int
    warmup: int
    repeats: int
    threads: int = 1
    starved_off_cpu: float | None = None  # a repeat whose median iteration waited longer for the CPU is starved
    deadline: float  # time.monotonic() value after which the run has timed out


class RawPayload(BaseModel):
    device: str
    repeat_index: int  # 0 is the warmup repeat
    warmup: bool
    data: dict


class ProbeOutcome(BaseModel):
    """What a backend's probe found: payloads of each probe run, and the documents derived."""

    payloads: list[RawPayload]
    capabilities: dict
    mapping: dict


Progress = Callable[[str], None]


@contextlib.contextmanager
def sdk_output_to_stderr() -> Iterator[None]:
    """Send what backend SDKs print (qai_hub's TorchScript deprecation box) to stderr: stdout may carry --json.

    Entered by the orchestrator on its own thread before any device thread starts, and left after they
    have all joined, so no two threads ever swap `sys.stdout` at once.
    """
    with contextlib.redirect_stdout(sys.stderr):
        yield


class Notice(str):
    """A progress line that is also an event of the run (`run_events`, e.g. a resubmitted AI Hub job).

    It is a plain str to every progress callback; `execute_run` records the ones a backend reports while
    measuring, under `code` (e.g. "AIHUB_RESUBMITTED").
    """

    code: str

    def __new__(cls, code: str, text: str) -> Notice:
        notice = super().__new__(cls, text)
        notice.code = code
        return notice


class DeviceInfo(BaseModel):
    """One device a backend can run on (`edgegate probe devices`)."""

    name: str
    os: str | None = None
    chipset: str | None = None
    frameworks: list[str] = []
    attributes: list[str] = []


class Backend(Protocol):
    """A backend. One with `parallel_devices = True` has `measure` called from worker threads, one
    device each (at most `max_parallel_devices` at once), with a keyword `stop` (threading.Event): once
    it is set another device has failed and `measure` should give up at its next poll."""

    name: str

    def check_devices(self, devices: list[str], source: str) -> None:
        """Raise InvalidInput if a device name is unknown (listing close matches)."""

    def check_model_form(self, form: str, source: str) -> None:
        """Raise InvalidInput if this backend cannot run models of `form`."""

    def measure(self, req: MeasureRequest, progress: Progress) -> list[RawPayload]:
        """Run warmup + repeats on one device; return every repeat's raw payload."""

    def probe(self, probe_run_id: str, progress: Progress) -> ProbeOutcome:
        """Run the probe models and derive capabilities and the metric mapping."""
