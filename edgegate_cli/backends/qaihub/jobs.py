"""AI Hub job plumbing for the qaihub backend: SDK exceptions to EdgeGate errors, submission retried
once, polling with exponential backoff under the run deadline.

Nothing here patches the SDK: jobs are polled with `job.get_status()` (one GET per call; `job.wait()`
sleeps 10 s between polls), and results are downloaded only once a job is final.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ...config import MAX_POLL_S, TOKEN_ENV, QAIHubSettings
from ...errors import BackendUnavailable, DeviceJobFailed, EdgeGateError, RunTimeout, SubmissionFailed

_BOX = set("┌┐└┘─ ")


class Stopped(Exception):
    """Another device failed (the runner set `stop`): this one gives up without a verdict of its own."""


def flatten(message: object, redact: Callable[[str], str]) -> str:
    """One redacted line from an SDK message (the SDK draws a box of ┌─┐ | … | └─┘ around its advice)."""
    parts = []
    for line in str(message).splitlines():
        line = line.strip()
        if line and not set(line) <= _BOX:
            parts.append(line.strip("|").strip())
    return redact(" ".join(parts))


def is_auth_error(exc: BaseException) -> bool:
    import qai_hub

    return isinstance(exc, qai_hub.UserError) and str(exc).startswith("Failed to authenticate")


def auth_refused(settings: QAIHubSettings) -> BackendUnavailable:
    """The error for a 401: names where the token came from, never the token."""
    where = f"{settings.web_url.rstrip('/')}/account/"
    fix = (f"set {TOKEN_ENV} to a current token" if settings.token_source == TOKEN_ENV
           else "rewrite it with `qai-hub configure --api_token <token>`, or set " + TOKEN_ENV)
    return BackendUnavailable(f"AI Hub refused the API token from {settings.token_source} (HTTP 401: the token "
                              "is bad or expired)", hint=f"check your token at {where}; {fix}", code="AUTH_REFUSED")


def backend_error(exc: BaseException, settings: QAIHubSettings, doing: str) -> EdgeGateError:
    """The EdgeGate error for an SDK exception raised while `doing` something other than submitting."""
    if is_auth_error(exc):
        return auth_refused(settings)
    return BackendUnavailable(f"AI Hub failed while {doing}: {flatten(exc, settings.redact)}",
                              hint="AI Hub may be busy or down; rerun later")


def sdk_errors() -> tuple[type[BaseException], ...]:
    """What the SDK raises for a failed call: its own errors, and a bare APIException for a malformed reply."""
    import qai_hub
    from qai_hub.public_rest_api import APIException

    return qai_hub.Error, APIException


def submit_with_retry(call: Callable, what: str, settings: QAIHubSettings, progress) -> object:
    """`call()`, retried once when AI Hub failed transiently (InternalError, RateLimitedError).

    `what` names the device and the submission ("Samsung Galaxy S24: profile job (repeat 1/3)").
    Raises BackendUnavailable (AUTH_REFUSED) on a 401, SubmissionFailed on any other refusal (a 4xx
    is not retried: the same request would be refused again) or after the second failure.
    """
    import qai_hub

    last: BaseException | None = None
    for attempt in (1, 2):
        try:
            return call()
        except qai_hub.UserError as exc:
            if is_auth_error(exc):
                raise auth_refused(settings) from None
            raise SubmissionFailed(f"{what}: AI Hub refused the submission: {flatten(exc, settings.redact)}") from None
        except sdk_errors() as exc:
            last = exc
            if attempt == 1:
                progress(f"{what}: AI Hub failed ({type(exc).__name__}); retrying once")
    raise SubmissionFailed(f"{what}: submission failed twice: {flatten(last, settings.redact)}",
                           hint="AI Hub may be busy or down; rerun later")


def poll_jobs(jobs: dict, *, deadline: float, first_interval: float, settings: QAIHubSettings, describe: str,
              stop: threading.Event | None = None, fail_fast: bool = False) -> dict:
    """Poll `jobs` (key → SDK job) with `get_status()` until every one is final; return key → JobStatus.

    Waits `first_interval`, then twice as long each round, at most 10 minutes (SPEC §5) and never past
    `deadline` (a time.monotonic() value). With `fail_fast` it returns as soon as one job has failed.
    Raises RunTimeout at the deadline, Stopped once `stop` is set, BackendUnavailable if AI Hub cannot
    be read (the SDK has already retried the GET).
    """
    statuses: dict = {}
    last: dict = {}
    interval = first_interval
    while True:
        for key, job in jobs.items():
            if key in statuses:
                continue
            try:
                status = last[key] = job.get_status()
            except sdk_errors() as exc:
                raise backend_error(exc, settings, f"reading the status of job {job.job_id}") from None
            if status.finished:
                statuses[key] = status
                if fail_fast and status.failure:
                    return statuses
        if len(statuses) == len(jobs):
            return statuses
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            late = ", ".join(f"{job.job_id} ({last[k].code})" for k, job in jobs.items() if k not in statuses)
            raise RunTimeout(f"{describe}: AI Hub job(s) {late} did not finish before the run timeout",
                             hint="raise run_policy.timeout_s (at most 2700); the jobs keep running on AI Hub")
        if (stop or threading.Event()).wait(min(interval, remaining)):
            raise Stopped(describe)
        interval = min(interval * 2, MAX_POLL_S)


def job_failed(device: str, what: str, job, status, redact: Callable[[str], str]) -> DeviceJobFailed:
    """DEVICE_JOB_FAILED naming the device, the job and AI Hub's failure reason, verbatim (redacted)."""
    reason = redact(status.message or "no failure reason given")
    return DeviceJobFailed(f"{device}: AI Hub {what} {job.job_id} failed: {reason}", hint=f"see {job.url}")
