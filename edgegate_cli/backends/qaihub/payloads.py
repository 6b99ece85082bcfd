"""Checks on what AI Hub returns for a job (issue 17): a missing or short payload is a run error naming the
job, never a repeat silently dropped; odd but usable payloads get a note in the payload and the run's events.

Errors (COLLECTION_FAILED):
  - no profile at all: `download_profile()` returns {} when the result has no ProfileDetail;
  - no per-iteration times: `all_inference_times` exists only in ProfileDetail v1.2+ (an older format from
    the server leaves latency_ms unmeasurable), or the list is empty;
  - an agreement job without output data.
Notes:
  - fewer timed iterations than requested (AI Hub divides them by input batches, or stops early);
  - no per-layer detail (npu_layer_fraction unavailable for that repeat);
  - a peak-memory upper bound under 4 MiB: on compute and IoT boards (X Elite, QCS8550, IQ-9075) AI Hub
    reports 0-3 MiB for a model phones put at 327-362 MiB, so it does not measure the model there.
"""

from __future__ import annotations

from ...errors import CollectionFailed

SMALL_PEAK_BYTES = 4 * 2**20


def _where(device: str, job, label: str) -> str:
    return f"{device}: AI Hub job {job.job_id} ({label})"


def check_profile(data: dict, *, device: str, job, label: str, iterations: int) -> list[str]:
    """The notes on one profile payload (a `download_profile()` dict); CollectionFailed when it is unusable."""
    hint = f"see {job.url}; rerun, and tell AI Hub support if it repeats"
    if not data:
        raise CollectionFailed(f"{_where(device, job, label)} finished without a profile (its result carries no "
                               "ProfileDetail); the repeat cannot be measured", hint=hint)
    summary = data.get("execution_summary") if isinstance(data.get("execution_summary"), dict) else {}
    times = summary.get("all_inference_times")
    if times is None:
        raise CollectionFailed(f"{_where(device, job, label)} returned a profile without per-iteration times "
                               "(no all_inference_times: AI Hub sent a ProfileDetail older than v1.2); latency "
                               "cannot be measured from it", hint=hint)
    if not times:
        raise CollectionFailed(f"{_where(device, job, label)} returned a profile with no timed iteration", hint=hint)
    notes = []
    if len(times) < iterations:
        notes.append(f"{len(times)} of {iterations} requested iterations were timed")
    if not data.get("execution_detail"):
        notes.append("no per-layer detail (execution_detail is empty): npu_layer_fraction is unavailable for it")
    peak = summary.get("inference_memory_peak_range")
    if isinstance(peak, list) and len(peak) == 2 and isinstance(peak[1], int) and peak[1] < SMALL_PEAK_BYTES:
        notes.append(f"AI Hub's peak-memory estimate is at most {peak[1] / 2**20:.1f} MiB: on this device class it "
                     "does not measure the model (X Elite, QCS8550 and IQ-9075 boards report 0-3 MiB whatever the "
                     "model); gate peak_memory_mb on phones")
    return notes


def check_outputs(outputs, *, device: str, job, label: str) -> dict:
    """The output data of an agreement job; CollectionFailed when AI Hub returned none."""
    if not outputs:
        raise CollectionFailed(f"{_where(device, job, label)} succeeded but AI Hub returned no output data",
                               hint=f"see {job.url}; rerun, and tell AI Hub support if it repeats")
    return outputs
