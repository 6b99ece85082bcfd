"""AI Hub job plumbing for the qaihub backend: SDK exceptions to EdgeGate errors, submission (rate limits
waited out, ambiguous failures looked up: `qaihub_submit`), polling under the run deadline with outages
tolerated (`qaihub_polling`).

Nothing here patches the SDK: jobs are polled with `job.get_status()` (one GET per call; `job.wait()`
sleeps 10 s between polls), and results are downloaded only once a job is final.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager

from ..config import TOKEN_ENV, QAIHubSettings
from ..errors import BackendUnavailable, DeviceJobFailed, EdgeGateError
from ..redaction import redact

_BOX = set("┌┐└┘─ ")
_stdout_lock = threading.Lock()
_stdout_depth = 0
_saved_stdout = None


class Stopped(Exception):
    """Another device failed (the runner set `stop`): this one gives up without a verdict of its own."""


@contextmanager
def sdk_stdout_to_stderr():
    """Send what the SDK prints (e.g. its TorchScript deprecation box) to stderr: stdout may carry --json.

    Reference-counted, so overlapping uses from several device threads restore stdout only once.
    """
    global _stdout_depth, _saved_stdout
    with _stdout_lock:
        if _stdout_depth == 0:
            _saved_stdout, sys.stdout = sys.stdout, sys.stderr
        _stdout_depth += 1
    try:
        yield
    finally:
        with _stdout_lock:
            _stdout_depth -= 1
            if _stdout_depth == 0:
                sys.stdout = _saved_stdout


def flatten(message: object) -> str:
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
    from .qaihub_faults import describe

    return BackendUnavailable(f"AI Hub failed while {doing}: {describe(exc)}",
                              hint="AI Hub may be busy or down; rerun later")


def sdk_errors() -> tuple[type[BaseException], ...]:
    """What a `qai_hub` call raises for a failure outside EdgeGate: the SDK's errors, a bare APIException
    for a malformed reply, botocore/s3transfer errors on the S3-credentials path, and the ValueError,
    AssertionError and OSError some SDK paths let through (qaihub_faults.sdk_exceptions)."""
    from .qaihub_faults import sdk_exceptions

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
    from .qaihub_submit import submit

    return submit(call, what, settings, progress, deadline=deadline, find=find, stop=stop)


def poll_jobs(jobs: dict, *, deadline: float, first_interval: float, settings: QAIHubSettings, describe: str,
              stop: threading.Event | None = None, fail_fast: bool = False, on_failure: Callable | None = None,
              progress: Callable | None = None) -> dict:
    """Poll `jobs` (key → SDK job) until every one is final; return key → JobStatus (qaihub_polling.poll:
    a bounded detection lag, outages tolerated until `deadline`, failed jobs offered to `on_failure`)."""
    from .qaihub_polling import poll

    return poll(jobs, deadline=deadline, first_interval=first_interval, settings=settings, describe_as=describe,
                stop=stop, fail_fast=fail_fast, on_failure=on_failure, progress=progress)


def job_failed(device: str, what: str, job, status, detail: str = "") -> DeviceJobFailed:
    """DEVICE_JOB_FAILED naming the device, the job and AI Hub's failure reason, verbatim (redacted); `detail`
    adds the failure type and earlier attempts."""
    reason = redact(status.message or "no failure reason given")
    return DeviceJobFailed(f"{device}: AI Hub {what} {job.job_id} failed: {reason}{detail}", hint=f"see {job.url}")
