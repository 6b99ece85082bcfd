"""Submitting to AI Hub (issue 17): rate limits waited out within the deadline, ambiguous failures looked up
by job name before anything is sent again, every SDK and transfer exception mapped to a run error.

After a failed submission (see `qaihub_faults.classify`):
  auth / refused   AUTH_REFUSED / SUBMISSION_FAILED at once, with AI Hub's message (redacted)
  rate_limited     wait as long as AI Hub's message says (else 20, 40, 60 s), then again, for as long as the
                   run deadline allows (RATE_LIMIT_BUDGET_S without one); then SUBMISSION_FAILED
  ambiguous        the job may exist: look it up by its name (unique per run, device and attempt) and use it
                   if AI Hub has it; else submit again, at most `attempts` times in all
  storage          submit again (new credentials or URLs), at most `attempts` times
  unreachable      SUBMISSION_FAILED at once: botocore already retried the S3 endpoint 10 times
The SDK's own retries come first: urllib3 and `backoff` retry 429/5xx and connection errors for up to ~15 s
per POST (and may themselves create a duplicate when a POST's answer is lost; only AI Hub's job list shows it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ...config import QAIHubSettings
from ...errors import SubmissionFailed
from ..base import Notice
from .faults import Stopped, auth_refused, classify, describe, rate_limit_wait, sdk_exceptions

RATE_LIMIT_BUDGET_S = 600.0  # without a deadline: as long as the SDK's own rate-limit loop would wait
LOOKUPS = 2


def submit(call: Callable, what: str, settings: QAIHubSettings, progress, *, deadline: float | None = None,
           find: Callable | None = None, attempts: int = 3, stop: threading.Event | None = None):
    """`call()`'s result (a job, model or dataset), submitted as the module docstring says.

    `what` names the device and the submission ("Samsung Galaxy S24: profile job (repeat 1/3)"); `find()`
    returns the job AI Hub already has under this submission's name, or None.
    """
    deadline = time.monotonic() + RATE_LIMIT_BUDGET_S if deadline is None else deadline
    failures = waits = 0
    while True:
        try:
            return call()
        except sdk_exceptions() as exc:
            error, kind, text = exc, classify(exc), describe(exc, settings.redact)
        if kind == "auth":
            raise auth_refused(settings) from None
        if kind == "refused":
            raise SubmissionFailed(f"{what}: AI Hub refused the submission: {text}") from None
        remaining = deadline - time.monotonic()
        if kind == "rate_limited":
            wait = rate_limit_wait(error, waits)
            if wait >= remaining:
                raise SubmissionFailed(f"{what}: AI Hub was still rate-limiting submissions at the deadline: {text}",
                                       hint="AI Hub limits how fast an account submits jobs; rerun later, or with "
                                            "fewer devices or repeats")
            waits += 1
            progress(Notice("AIHUB_RATE_LIMITED", f"{what}: AI Hub is rate-limiting submissions ({text}); "
                                                  f"waiting {wait:g} s"))
            _pause(wait, stop, what)
            continue
        failures += 1
        if kind == "ambiguous" and find is not None:
            found = _look_up(find, what, text, progress, stop, settings.redact)
            if found is not None:
                return found
        if kind == "unreachable" or failures >= attempts or remaining <= 0:
            times = f" {failures} times" if failures > 1 else ""
            raise SubmissionFailed(f"{what}: submission failed{times}: {text}",
                                   hint="AI Hub may be busy or down; rerun later") from None
        progress(f"{what}: AI Hub failed ({type(error).__name__}); retrying (attempt {failures + 1} of {attempts})")


def _look_up(find: Callable, what: str, text: str, progress, stop, redact: Callable[[str], str]):
    """The job AI Hub created for an ambiguous submission, or None when it has none. SUBMISSION_FAILED when AI
    Hub cannot tell: submitting again could start a duplicate job on the device."""
    for attempt in range(LOOKUPS):
        try:
            found = find()
        except sdk_exceptions() as exc:
            failed = describe(exc, redact)
            if attempt + 1 < LOOKUPS:
                _pause(5.0, stop, what)
            continue
        if found is not None:
            progress(Notice("AIHUB_JOB_ADOPTED", f"{what}: the submission failed ({text}), but AI Hub had created "
                                                 f"job {found.job_id}; using it instead of submitting again"))
        return found
    raise SubmissionFailed(f"{what}: the submission failed ({text}) and AI Hub's job list could not be read "
                           f"({failed}); not submitting again, which could start a duplicate job",
                           hint="AI Hub may be down; look for the job on AI Hub, then rerun")


def _pause(seconds: float, stop: threading.Event | None, what: str) -> None:

    if (stop or threading.Event()).wait(max(seconds, 0.0)):
        raise Stopped(what)


def find_job(client, name: str, device: str, *, compile_job: bool):
    """The newest job of this kind named `name` on `device` among AI Hub's 50 newest, as an SDK job; or None."""
    from qai_hub.client import JobType

    kind = JobType.COMPILE if compile_job else JobType.INFERENCE
    for summary in client.get_job_summaries(limit=50, type=kind):
        if summary.name == name and summary.device_name == device:
            return client.get_job(summary.job_id)
    return None
