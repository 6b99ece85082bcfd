"""The pull-mode loop: poll the channel every `poll_s` seconds (±20 % jitter, so a fleet that restarts
together does not poll together), back off while the store fails (×2 per failed poll, at most ×8), and
after every poll write this device's status report to `<root>/status/<device id>/status.json`.

The agent keeps serving whatever happens here (this runs in its own thread). A poll or report that
failed is listed under `errors` in every report until ERROR_WINDOW_POLLS poll intervals after the first
report that got through with it (so a reader that looks once a minute, as `rollout advance` from cron does,
still sees an outage that ended between two of its reads), then dropped.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable

from .. import __version__
from ..errors import EdgeGateError
from .pull import Puller
from .state import utc_text

log = logging.getLogger("edgegate.agent.pull")
REPORT_FORMAT = 1
MAX_BACKOFF = 8  # a failing store is polled at most this many poll intervals apart
KEEP_ERRORS = 20
ERROR_WINDOW_POLLS = 10  # an error stays in the reports this many poll intervals after first reported


def status_report(puller: Puller, result: dict, errors: list[dict], poll_s: float) -> dict:
    """What the release box reads (`rollout advance --via`): the agent's /v1/status, the pull side, and its
    Prometheus text (inference counters and latency histogram per release)."""
    from ..evidence.channel_manifest import cohort_position

    agent, manifest = puller.agent, puller.last_manifest
    doc = agent.status()
    rollout = manifest.rollout if manifest else None
    doc.update({
        "report_format": REPORT_FORMAT, "reported_at": utc_text(agent.clock()), "edgegate_version": __version__,
        "channel": {"name": puller.location.name, "url": puller.location.where, "poll_s": poll_s,
                    "version": manifest.version if manifest else None,
                    "seen": agent.state["channels"].get(puller.location.name)},
        "cohort": None if rollout is None else {
            "rollout_id": rollout.id, "seed": rollout.seed, "in_rollout": rollout.includes(agent.cfg.device_id),
            "position": cohort_position(rollout.seed, agent.cfg.device_id)},
        "poll": result, "errors": errors,
        # the counters a pull rollout's health analysis reads (the push path scrapes the same text at /metrics)
        "metrics": agent.metrics.exposition()[0].decode("utf-8")})
    return doc


class PullLoop:
    """Runs `puller.poll_once()` and writes reports with `put(key_location, bytes)` (None: no reports)."""

    def __init__(self, puller: Puller, poll_s: float, put: Callable[[bytes], None] | None,
                 rng: random.Random | None = None):
        self.puller, self.poll_s, self.put = puller, poll_s, put
        self.rng = rng or random.Random()
        self.failures = 0
        # [poll or report failure, monotonic time of the first report that carried it (None: not yet)]
        self._errors: list[list] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def delay(self) -> float:
        """Seconds until the next poll: the interval, doubled per consecutive failure (capped), ±20 %."""
        factor = min(2 ** self.failures, MAX_BACKOFF) if self.failures else 1
        return self.poll_s * factor * self.rng.uniform(0.8, 1.2)

    def step(self) -> dict:
        """One poll and its report; returns the poll's result."""
        result = self.puller.poll_once()
        self.failures = self.failures + 1 if result["status"] == "error" else 0
        if result["status"] != "ok":
            log.warning("poll of %s: %s %s %s", self.puller.location.where, result["status"], result["code"],
                        result["message"])
        elif result["action"] != "none":
            log.info("poll of %s: %s %s", self.puller.location.where, result["action"], result["release"])
        if result["status"] == "error":
            self._note_error(result)
        self._report(result)
        return result

    def _note_error(self, result: dict) -> None:
        entry = {k: result[k] for k in ("at", "status", "code", "message")}
        self._errors = [*self._errors, [entry, None]][-KEEP_ERRORS:]

    @property
    def errors(self) -> list[dict]:
        """The failures still to show (at most KEEP_ERRORS), oldest first: not yet reported, or first reported
        less than ERROR_WINDOW_POLLS poll intervals ago."""
        horizon = time.monotonic() - ERROR_WINDOW_POLLS * self.poll_s
        self._errors = [e for e in self._errors if e[1] is None or e[1] >= horizon]
        return [entry for entry, _ in self._errors]

    def _reported(self) -> None:
        now = time.monotonic()
        for e in self._errors:
            if e[1] is None:
                e[1] = now

    def _report(self, result: dict) -> None:
        if self.put is None:
            return
        try:
            doc = status_report(self.puller, result, list(self.errors), self.poll_s)
            self.put(json.dumps(doc, sort_keys=True, allow_nan=False).encode())
        except EdgeGateError as exc:
            self.failures = max(self.failures, 1)
            self._note_error({"at": utc_text(self.puller.agent.clock()), "status": "error", "code": exc.code,
                              "message": f"status report: {exc.message}"})
            log.warning("status report failed: %s %s", exc.code, exc.message)
        else:
            self._reported()

    def run(self) -> None:
        self._stop.wait(self.rng.uniform(0, min(self.poll_s, 5.0) * 0.2))
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.delay())

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="pull", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def check_pull(location, device_id: str) -> None:
    """What `agent serve --channel` checks before it serves: a device id that can name a status object,
    and for an s3:// channel, credentials in the standard AWS chain (StoreCredentialsMissing, exit 2)."""
    from ..download.channel import check_device_id

    check_device_id(device_id)
    if location.url.startswith("s3://"):
        from ..objectstore import ObjectStore, parse_s3_url

        ObjectStore(parse_s3_url(location.url)).require_credentials()


def open_pull(agent, location, poll_s: float) -> PullLoop:
    """The pull loop of `agent` on the channel at `location` (download.channel.ChannelLocation). Status
    reports go to the channel's bucket when it is an s3:// channel; other channels get none."""
    from ..download import Fetcher, RetryPolicy

    fetcher = Fetcher(retry=RetryPolicy(attempts=3, initial_wait=0.5, max_wait=4.0), connect_timeout=5,
                      read_timeout=30)
    put = None
    if location.url.startswith("s3://"):
        from ..objectstore import ObjectStore, S3Location, parse_s3_url

        target = parse_s3_url(location.status_location(agent.cfg.device_id))
        store = ObjectStore(S3Location(target.bucket), max_attempts=2, connect_timeout=5, read_timeout=30)

        def put(data: bytes) -> None:
            store.put_bytes(target.prefix, data, content_type="application/json", cache_control="no-cache")

    return PullLoop(Puller(agent, location, fetcher), poll_s, put)
