"""The only printer. Human output through rich; `--json` prints exactly one document on stdout.

Logs and progress go to stderr. Every string passes the invocation's redactor. One `Output` per
invocation, made from its Context (`commands.start`), so nothing here is a process global.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from typing import Any

from ..context import Context
from ..errors import EdgeGateError


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # results that need no pydantic
        return dataclasses.asdict(obj)
    return obj


class Output:
    """Prints for one invocation: results on stdout (a table or one JSON document), the rest on stderr."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.mode = ctx.output
        self.redact = ctx.secrets.redact
        self._consoles: dict[str, Any] = {}

    def _console(self, stream: str):
        if stream not in self._consoles:
            from rich.console import Console

            self._consoles[stream] = Console(stderr=(stream == "stderr"), highlight=False, soft_wrap=False)
        return self._consoles[stream]

    def dumps(self, obj: Any, indent: int | None = 2) -> str:
        """JSON text as EdgeGate prints it: sorted keys, no NaN, secrets masked."""
        return json.dumps(self.ctx.secrets.redact_obj(to_jsonable(obj)), sort_keys=True, allow_nan=False,
                          indent=indent)

    def emit(self, obj: Any, human: Callable[[Output, Any], None] | None = None) -> None:
        """Print a result: one JSON document under --json, else `human(self, obj)` (or the JSON)."""
        if self.mode.json or human is None:
            sys.stdout.write(self.dumps(obj) + "\n")
            sys.stdout.flush()
        else:
            human(self, obj)

    def line(self, text: str = "", style: str | None = None) -> None:
        """A line of human output on stdout (never under --json)."""
        if not self.mode.json:
            self._console("stdout").print(self.redact(text), style=style, markup=False, soft_wrap=True)

    def log(self, text: str, style: str | None = "dim") -> None:
        """A progress/log line on stderr."""
        self._console("stderr").print(self.redact(text), style=style, markup=False, soft_wrap=True)

    def verbose(self, text: str) -> None:
        if self.mode.verbose:
            self.log(text)

    def table(self, title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              styles: dict[int, str] | None = None) -> None:
        """Print a rich table on stdout (human mode only)."""
        if self.mode.json:
            return
        from rich.table import Table

        t = Table(title=title, title_justify="left", show_lines=False)
        for col in columns:
            t.add_column(col, overflow="fold")
        for row in rows:
            t.add_row(*[self.redact("" if v is None else str(v)) for v in row])
        self._console("stdout").print(t)

    def error(self, err: EdgeGateError) -> None:
        """Report an expected failure: a JSON document under --json, else one line on stderr."""
        if self.mode.json:
            sys.stdout.write(self.dumps({"error": err.to_dict()}) + "\n")
            sys.stdout.flush()
        msg = f"Error [{err.code}]: {err.message}"
        if err.hint:
            msg += f" ({err.hint})"
        sys.stderr.write(self.redact(msg) + "\n")
        sys.stderr.flush()

    @contextmanager
    def progress(self, description: str, total: int | None = None):
        """Progress on stderr: a rich bar on a TTY, plain lines otherwise. Yields `advance(text)`."""
        console = self._console("stderr")
        if console.is_terminal and not self.mode.json:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            # Without a known total the bar is a spinner with the current step: backends report steps
            # of different kinds (compile, submit, repeat), so a count would mislead.
            counted = [BarColumn(), TextColumn("{task.completed}/{task.total}")] if total else []
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), *counted, TimeElapsedColumn(),
                          console=console, transient=True) as bar:
                task = bar.add_task(description, total=total)

                def advance(text: str | None = None, step: int = 1) -> None:
                    bar.update(task, advance=step, description=self.redact(text or description))

                yield advance
        else:
            started = False

            def advance(text: str | None = None, step: int = 1) -> None:
                nonlocal started
                if not started:  # the heading waits for real work, so a refused input prints one line only
                    self.log(description)
                    started = True
                if text:
                    self.log(f"  {text}")

            yield advance
