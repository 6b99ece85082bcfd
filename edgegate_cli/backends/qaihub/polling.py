"""Polling AI Hub jobs until they are final (issue 17): a schedule whose detection lag stays bounded, status
outages tolerated until the run deadline, and failed jobs handed to the caller, which may replace them.

Schedule (`next_interval`): the first interval (EDGEGATE_QAIHUB_POLL_S, default 5 s), doubling each round,
but never longer than 10 % of the time the jobs have already been polled, nor 60 s, nor shorter than the
first interval. A job finishing after T seconds is therefore seen by T + max(first, min(60 s, T / 10)):
a compile done at 330 s is noticed by about 363 s, not at 635 s as with plain doubling to 10 minutes.

Outages: a status read the SDK gives up on (InternalError after ~46 s of its own retries, a non-API answer,
a connection error) does not end the run. The round stops, the outage is reported once (a run event), and
polling goes on at the schedule until AI Hub answers again or the deadline passes (BACKEND_UNAVAILABLE,
naming how long AI Hub could not be read). A refused read (401, 404) ends it at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ...config import QAIHubSettings
from ...errors import BackendUnavailable, RunTimeout
from ..base import Notice
from .faults import Stopped, auth_refused, backend_error, classify, describe, sdk_exceptions

LAG_FRACTION = 0.1
LAG_CAP_S = 60.0


def next_interval(first: float, rounds: int, waited: float) -> float:
    """Seconds from poll round `rounds` (0-based) to the next, when the jobs have been polled for `waited` s."""
    return max(first, min(first * 2 ** min(rounds, 32), LAG_FRACTION * waited, LAG_CAP_S))


def poll(jobs: dict, *, deadline: float, first_interval: float, settings: QAIHubSettings, describe_as: str,
         stop: threading.Event | None = None, fail_fast: bool = False,
         on_failure: Callable | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Poll `jobs` (key -> SDK job) with `get_status()` until every one is final; return key -> JobStatus.

    `on_failure(key, job, status)` may return a replacement job (a resubmission): `jobs[key]` is replaced and
    polled in its turn. Otherwise, with `fail_fast`, the first failure returns at once.
    Raises RunTimeout or BackendUnavailable at the deadline, Stopped once `stop` is set, AUTH_REFUSED /
    BACKEND_UNAVAILABLE for a refused read.
    """

    reader = _Reader(settings, describe_as, progress or (lambda _text: None))
    statuses: dict = {}
    started, rounds = time.monotonic(), 0
    while True:
        for key in list(jobs):
            if key in statuses:
                continue
            status = reader.read(key, jobs[key])
            if status is None:
                break  # AI Hub is not answering: try again next round
            if not status.finished:
                continue
            replacement = on_failure(key, jobs[key], status) if status.failure and on_failure else None
            if replacement is not None:
                jobs[key] = replacement
                continue
            statuses[key] = status
            if fail_fast and status.failure:
                return statuses
        if len(statuses) == len(jobs):
            return statuses
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise reader.too_late(jobs, statuses)
        wait = next_interval(first_interval, rounds, time.monotonic() - started)
        if (stop or threading.Event()).wait(min(wait, remaining)):
            raise Stopped(describe_as)
        rounds += 1


class _Reader:
    """Status reads of one poll loop, and the outage they are in (if any)."""

    def __init__(self, settings: QAIHubSettings, describe_as: str, say: Callable[[str], None]):
        self.settings, self.describe_as, self.say = settings, describe_as, say
        self.last: dict = {}
        self.outage: tuple[float, str] | None = None  # (since, last error) while status reads fail

    def read(self, key, job):
        """The job's status, or None when AI Hub could not be read (an outage); raises for a refused read."""
        try:
            status = job.get_status()
        except sdk_exceptions() as exc:
            kind = classify(exc)
            if kind == "auth":
                raise auth_refused(self.settings) from None
            if kind == "refused":
                raise backend_error(exc, self.settings, f"reading the status of job {job.job_id}") from None
            if self.outage is None:
                self.say(Notice("AIHUB_STATUS_OUTAGE", f"{self.describe_as}: AI Hub status reads are failing "
                                f"({describe(exc, self.settings.redact)}); polling on until the run deadline"))
            self.outage = (self.outage[0] if self.outage else time.monotonic(), describe(exc, self.settings.redact))
            return None
        if self.outage is not None:
            self.say(Notice("AIHUB_STATUS_RECOVERED", f"{self.describe_as}: AI Hub status reads work again after "
                            f"{time.monotonic() - self.outage[0]:.0f} s"))
            self.outage = None
        self.last[key] = status
        return status

    def too_late(self, jobs: dict, statuses: dict) -> Exception:
        """The error at the run deadline: BACKEND_UNAVAILABLE during an outage, else TIMEOUT."""
        if self.outage is not None:
            return BackendUnavailable(
                f"{self.describe_as}: AI Hub could not be read for the last {time.monotonic() - self.outage[0]:.0f} s, "
                f"until the run timeout: {self.outage[1]}",
                hint="AI Hub may be down; its jobs keep running there. Rerun later, or raise run_policy.timeout_s")
        late = ", ".join(f"{job.job_id} ({self.last[k].code if k in self.last else 'status unknown'})"
                         for k, job in jobs.items() if k not in statuses)
        return RunTimeout(f"{self.describe_as}: AI Hub job(s) {late} did not finish before the run timeout",
                          hint="raise run_policy.timeout_s (at most 2700); the jobs keep running on AI Hub")
