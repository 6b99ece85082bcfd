"""The only printer. Human output through rich; `--json` prints exactly one document on stdout.

Logs and progress go to stderr. Every string passes the invocation's redactor and `printable` (no control
character from a file reaches the terminal raw). Off a terminal (CI logs, pipes) tables are plain
tab-separated rows that never wrap, as `gh` does. One `Output` per invocation, made from its Context
(`commands.start`), so nothing here is a process global.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from typing import Any

from ..context import Context
from ..errors import EdgeGateError

# C0 and C1 controls, DEL, and the Unicode controls that reorder or hide text (bidi overrides and isolates,
# zero-width marks): an untrusted file could otherwise clear the screen or fake a green VALID.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` with every control character shown as an escape (`\\x1b`, `\\u202e`); `newlines` keeps LF."""
    def escape(m: re.Match) -> str:
        c = m.group()
        if newlines and c == "\n":
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _CONTROL.sub(escape, text)


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # results that need no pydantic
        return dataclasses.asdict(obj)
    return obj


def silence_stderr() -> None:
    """Point fd 2 at /dev/null: its reader is gone, and losing a log line must not end the work."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stderr.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def write_stderr(text: str) -> None:
    """Write to stderr; a closed stderr (`… 2>&1 | head`) is silenced instead of raising."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except BrokenPipeError:
        silence_stderr()


class Output:
    """Prints for one invocation: results on stdout (a table or one JSON document), the rest on stderr."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.mode = ctx.output
        self._consoles: dict[str, Any] = {}

    def redact(self, text: str, *, newlines: bool = False) -> str:
        return printable(self.ctx.secrets.redact(text), newlines=newlines)

    def _console(self, stream: str):
        if stream not in self._consoles:
            from rich.console import Console

            class _Console(Console):
                def on_broken_pipe(self) -> None:  # rich's default exits 1, which would hide the real outcome
                    self.quiet = True
                    if self.stderr:
                        silence_stderr()  # a progress reader left: the work goes on, its verdict unchanged
                        return
                    raise BrokenPipeError  # the result's reader left: cli maps it to exit 141

            self._consoles[stream] = _Console(stderr=(stream == "stderr"), highlight=False, soft_wrap=False)
        return self._consoles[stream]

    @property
    def plain(self) -> bool:
        """True off a terminal: tables become tab-separated rows that never wrap."""
        return not self._console("stdout").is_terminal

    def _print(self, stream: str, *args, **kwargs) -> None:
        self._console(stream).print(*args, **kwargs)

    def dumps(self, obj: Any, indent: int | None = 2) -> str:
        """JSON text as EdgeGate prints it: sorted keys, no NaN, secrets masked, control characters escaped."""
        return json.dumps(self.ctx.secrets.redact_obj(to_jsonable(obj)), sort_keys=True, allow_nan=False,
                          indent=indent)

    def emit(self, obj: Any, human: Callable[[Output, Any], None] | None = None) -> None:
        """Print a result: one JSON document under --json, else `human(self, obj)` (or the JSON)."""
        if self.mode.json or human is None:
            sys.stdout.write(self.dumps(obj) + "\n")
            sys.stdout.flush()
        else:
            human(self, obj)

    def line(self, text: str = "", style: str | None = None, *, multiline: bool = False) -> None:
        """A line of human output on stdout (never under --json). Control characters, line feeds included,
        are escaped unless `multiline` (for EdgeGate's own multi-line text, e.g. a PEM block)."""
        if not self.mode.json:
            self._print("stdout", self.redact(text, newlines=multiline), style=None if self.plain else style,
                        markup=False, soft_wrap=True)

    def log(self, text: str, style: str | None = "dim") -> None:
        """A progress/log line on stderr (not under --quiet)."""
        if not self.mode.quiet:
            self.note(text, style=style)

    def note(self, text: str, style: str | None = None) -> None:
        """A line on stderr that --quiet keeps (what the user must know, e.g. which home was used)."""
        self._print("stderr", self.redact(text), style=style, markup=False, soft_wrap=True)

    def verbose(self, text: str) -> None:
        if self.mode.verbose:
            self.log(text)

    def table(self, title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              styles: dict[int, str] | None = None) -> None:
        """Print a table on stdout (human mode only): rich on a terminal, tab-separated rows otherwise."""
        if self.mode.json:
            return
        cells = [[self.redact("" if v is None else str(v)) for v in row] for row in rows]
        if self.plain:  # written as is: rich would expand the tabs
            text = "\n".join("\t".join(row) for row in [list(columns), *cells])
            sys.stdout.write((f"{self.redact(title)}\n" if title else "") + text + "\n")
            sys.stdout.flush()
            return
        from rich.table import Table

        t = Table(title=self.redact(title) if title else None, title_justify="left", show_lines=False)
        for col in columns:
            t.add_column(col, overflow="fold")
        for row in cells:
            t.add_row(*row)
        self._print("stdout", t)

    def error(self, err: EdgeGateError, *, document: bool = True) -> None:
        """Report an expected failure: a JSON document under --json (unless `document` is False, when the
        result already printed carries it), and one line on stderr."""
        if self.mode.json and document:
            sys.stdout.write(self.dumps({"error": err.to_dict()}) + "\n")
            sys.stdout.flush()
        msg = f"Error [{err.code}]: {err.message}"
        if err.hint:
            msg += f" ({err.hint})"
        write_stderr(self.redact(msg) + "\n")

    @contextmanager
    def progress(self, description: str, total: int | None = None):
        """Progress on stderr: a rich bar on a TTY, plain lines otherwise, nothing under --quiet.
        Yields `advance(text)`."""
        console = self._console("stderr")
        if console.is_terminal and not self.mode.json and not self.mode.quiet:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            # Without a known total the bar is a spinner with the current step: backends report steps
            # of different kinds (compile, submit, repeat), so a count would mislead.
            counted = [BarColumn(), TextColumn("{task.completed}/{task.total}")] if total else []
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), *counted, TimeElapsedColumn(),
                          console=console, transient=True) as bar:
                task = bar.add_task(self.redact(description), total=total)

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
