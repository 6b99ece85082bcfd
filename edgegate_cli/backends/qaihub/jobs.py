"""AI Hub job plumbing for the qaihub backend: SDK exceptions to EdgeGate errors, submission (rate limits
waited out, ambiguous failures looked up: `qaihub_submit`), polling under the run deadline with outages
tolerated (`qaihub_polling`).

Nothing here patches the SDK: jobs are polled with `job.get_status()` (one GET per call; `job.wait()`
sleeps 10 s between polls), and results are downloaded only once a job is final.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ...config import QAIHubSettings
from ...errors import DeviceJobFailed
from .faults import Stopped, auth_refused, backend_error, flatten, is_auth_error  # noqa: F401 (their public home was here)


def sdk_errors() -> tuple[type[BaseException], ...]:
    """What a `qai_hub` call raises for a failure outside EdgeGate: the SDK's errors, a bare APIException
    for a malformed reply, botocore/s3transfer errors on the S3-credentials path, and the ValueError,
    AssertionError and OSError some SDK paths let through (qaihub_faults.sdk_exceptions)."""
    from .faults import sdk_exceptions

    return sdk_exceptions()


def submit_with_retry(call: Callable, what: str, settings: QAIHubSettings, progress, *,
                      deadline: float | None = None, find: Callable | None = None,
                      stop: threading.Event | None = None) -> object:
    """`call()`, submitted with rate limits waited out and transient failures retried (qaihub_submit.submit).

    `what` names the device and the submission ("Samsung Galaxy S24: profile job (repeat 1/3)"); `find()`
    looks the job up by its name after an ambiguous failure. Raises BackendUnavailable (AUTH_REFUSED) on a
    401, SubmissionFailed on any other refusal (a 4xx is not retried: the same request would be refused
    again), at the deadline, or after the last attempt.
    """
    from .submit import submit

    return submit(call, what, settings, progress, deadline=deadline, find=find, stop=stop)


def poll_jobs(jobs: dict, *, deadline: float, first_interval: float, settings: QAIHubSettings, describe: str,
              stop: threading.Event | None = None, fail_fast: bool = False, on_failure: Callable | None = None,
              progress: Callable | None = None) -> dict:
    """Poll `jobs` (key → SDK job) until every one is final; return key → JobStatus (qaihub_polling.poll:
    a bounded detection lag, outages tolerated until `deadline`, failed jobs offered to `on_failure`)."""
    from .polling import poll

    return poll(jobs, deadline=deadline, first_interval=first_interval, settings=settings, describe_as=describe,
                stop=stop, fail_fast=fail_fast, on_failure=on_failure, progress=progress)


def job_failed(device: str, what: str, job, status, redact: Callable[[str], str], detail: str = "") -> DeviceJobFailed:
    """DEVICE_JOB_FAILED naming the device, the job and AI Hub's failure reason, verbatim (redacted); `detail`
    adds the failure type and earlier attempts."""
    reason = redact(status.message or "no failure reason given")
    return DeviceJobFailed(f"{device}: AI Hub {what} {job.job_id} failed: {reason}{detail}", hint=f"see {job.url}")
