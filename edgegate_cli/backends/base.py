"""The backend interface: turn (model, device, policy, inputs) into raw payloads, and probe.

A backend knows its own payload format (which keys to try in a probe); `run` knows none of it
and reads metrics only through the mapping that `probe` derives from real payloads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel


class MeasureRequest(BaseModel):
    run_id: str
    device: str
    model_path: str  # the file or directory the backend runs
    model_form: str
    inputs_path: str | None = None  # .npz keyed by input name (not for GenAI models)
    reference_outputs: str | None = None
    cases: list[dict] | None = None  # GenAI: the PromptPack's cases, defaults applied
    promptpack: dict | None = None  # GenAI: {id, version, sha256}
    context_length: int | None = None
    iterations: int
    warmup: int
    repeats: int
    threads: int = 1
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


class Backend(Protocol):
    name: str

    def check_devices(self, devices: list[str], source: str) -> None:
        """Raise InvalidInput if a device name is unknown (listing close matches)."""

    def check_model_form(self, form: str, source: str) -> None:
        """Raise InvalidInput if this backend cannot run models of `form`."""

    def measure(self, req: MeasureRequest, progress: Progress) -> list[RawPayload]:
        """Run warmup + repeats on one device; return every repeat's raw payload."""

    def probe(self, probe_run_id: str, progress: Progress) -> ProbeOutcome:
        """Run the probe models and derive capabilities and the metric mapping."""


def get_backend(name: str) -> Backend:
    """The backend called `name`; InvalidInput for an unknown one."""
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    from ..errors import InvalidInput

    raise InvalidInput(f"unknown backend {name!r} (known: local, qaihub)")
