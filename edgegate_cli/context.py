"""What one invocation of EdgeGate runs with: the home it was pointed at, the output mode, settings from
flags, the secrets to mask, and the clock. Built once in `cli.py` and passed down; nothing here is a
process global, so a long-running agent or reconciler, and every test, gets its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

MASK = "***"


@dataclass
class OutputMode:
    """How results are printed: `json` (one document on stdout), `verbose`, `debug` (tracebacks; never
    changes an exit code), `quiet` (no progress or notes on stderr)."""

    json: bool = False
    verbose: bool = False
    debug: bool = False
    quiet: bool = False


@dataclass
class Settings:
    """Values given by flags that outrank the environment (see `config.py` for the environment)."""

    home: str | None = None  # --home
    qaihub_api_url: str | None = None  # --qaihub-api-url


class Secrets:
    """The secret values this invocation has read (the AI Hub token, key seeds): every printer and every
    stored error detail passes through `redact`. Thread-safe: AI Hub device threads redact too."""

    MIN_LENGTH = 8  # shorter values would mask common text

    def __init__(self) -> None:
        self._values: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, value: str | None) -> None:
        """Remember `value` (and its stripped form) so `redact` masks it."""
        if not value:
            return
        new = {v for v in (value, value.strip()) if len(v) >= self.MIN_LENGTH}
        with self._lock:
            self._values = self._values | new

    def __bool__(self) -> bool:
        """True once a secret is registered (until then, redacting changes nothing)."""
        return bool(self._values)

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced by ***."""
        for secret in sorted(self._values, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def redact_obj(self, obj):
        """Redact every string inside a JSON-like structure."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.redact_obj(v) for v in obj]
        return obj


def format_utc(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds and a Z: how EdgeGate writes every time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Clock:
    """Wall-clock time. Tests and time-driven code (expiry, bake times, retention) pass their own `now`."""

    now_fn: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.now_fn()

    def iso(self) -> str:
        return format_utc(self.now())


@dataclass
class Context:
    """Everything an invocation carries besides its arguments. Core functions take it (or a Workspace,
    which holds one) instead of reading globals."""

    output: OutputMode = field(default_factory=OutputMode)
    settings: Settings = field(default_factory=Settings)
    secrets: Secrets = field(default_factory=Secrets)
    clock: Clock = field(default_factory=Clock)
