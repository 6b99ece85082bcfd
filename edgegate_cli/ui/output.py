"""The only printer. Human output through rich; `--json` prints exactly one document on stdout.

Logs and progress go to stderr. Every string passes the redactor.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import EdgeGateError
from ..redaction import redact, redact_obj


@dataclass
class OutputContext:
    json: bool = False
    verbose: bool = False
    debug: bool = False


CTX = OutputContext()
_consoles: dict[str, Any] = {}


def _console(stream: str):
    if stream not in _consoles:
        from rich.console import Console

        _consoles[stream] = Console(stderr=(stream == "stderr"), highlight=False, soft_wrap=False)
    return _consoles[stream]


def set_json(enabled: bool) -> None:
    """Commands call this first so that errors, too, come out as JSON."""
    CTX.json = bool(enabled)


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return obj


def dumps(obj: Any, indent: int | None = 2) -> str:
    """JSON text as EdgeGate prints it: sorted keys, no NaN, secrets masked."""
    return json.dumps(redact_obj(to_jsonable(obj)), sort_keys=True, allow_nan=False, indent=indent)


def emit(obj: Any, human: Callable[[Any], None] | None = None) -> None:
    """Print a result: one JSON document under --json, else the human rendering (or the JSON)."""
    if CTX.json or human is None:
        sys.stdout.write(dumps(obj) + "\n")
        sys.stdout.flush()
    else:
        human(obj)


def line(text: str = "", style: str | None = None) -> None:
    """A line of human output on stdout (never under --json)."""
    if not CTX.json:
        _console("stdout").print(redact(text), style=style, markup=False, soft_wrap=True)


def log(text: str, style: str | None = "dim") -> None:
    """A progress/log line on stderr."""
    _console("stderr").print(redact(text), style=style, markup=False, soft_wrap=True)


def verbose(text: str) -> None:
    if CTX.verbose:
        log(text)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          styles: dict[int, str] | None = None) -> None:
    """Print a rich table on stdout (human mode only)."""
    if CTX.json:
        return
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_lines=False)
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[redact("" if v is None else str(v)) for v in row])
    _console("stdout").print(t)


def error(err: EdgeGateError) -> None:
    """Report an expected failure: a JSON document under --json, else one line on stderr."""
    if CTX.json:
        sys.stdout.write(dumps({"error": err.to_dict()}) + "\n")
        sys.stdout.flush()
    msg = f"Error [{err.code}]: {err.message}"
    if err.hint:
        msg += f" ({err.hint})"
    sys.stderr.write(redact(msg) + "\n")
    sys.stderr.flush()


@contextmanager
def progress(description: str, total: int | None = None):
    """Progress on stderr: a rich bar on a TTY, plain lines otherwise. Yields `advance(text)`."""
    console = _console("stderr")
    if console.is_terminal and not CTX.json:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        # Without a known total the bar is a spinner with the current step: backends report steps
        # of different kinds (compile, submit, repeat), so a count would mislead.
        counted = [BarColumn(), TextColumn("{task.completed}/{task.total}")] if total else []
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), *counted, TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task(description, total=total)

            def advance(text: str | None = None, step: int = 1) -> None:
                bar.update(task, advance=step, description=redact(text or description))

            yield advance
    else:
        started = False

        def advance(text: str | None = None, step: int = 1) -> None:
            nonlocal started
            if not started:  # the heading waits for real work, so a refused input prints one line only
                log(description)
                started = True
            if text:
                log(f"  {text}")

        yield advance
