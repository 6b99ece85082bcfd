"""The exits that are not about input: a bug (4), Ctrl-C (130) and a closed stdout (141), each in a real
process, with and without --debug (which adds a traceback and never changes the code)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO, write_pipeline

# A command that fails the way a bug would, added to the real app in a child process (the behaviour
# under test is main()'s mapping, whatever raises).
BUGGY = """
import sys
from edgegate_cli.cli import app, main

@app.command("explode", help="Fails like a bug would.")
def explode():
    raise ZeroDivisionError("division by zero")

sys.argv = ["edgegate", *sys.argv[1:], "explode"]
main()
"""


def _edgegate(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgegate_cli.cli", *args], **kwargs)


def test_an_unexpected_exception_exits_4_with_one_line():
    proc = subprocess.run([sys.executable, "-c", BUGGY], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert proc.stderr == ("Internal error: ZeroDivisionError: division by zero (a bug in EdgeGate; rerun with "
                           "--debug for the traceback)\n")
    assert proc.stdout == ""


def test_debug_shows_the_traceback_and_keeps_exit_4():
    proc = subprocess.run([sys.executable, "-c", BUGGY, "--debug"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert "\nZeroDivisionError: division by zero\n" in proc.stderr
    assert proc.stderr.endswith("(a bug in EdgeGate; rerun with --debug for the traceback)\n")


def test_a_closed_stdout_exits_141_silently(fresh_home):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone, as with `edgegate keys list --json | head -0`
    try:
        proc = _edgegate("keys", "list", "--json", stdout=write_end, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert err == b""


def test_ctrl_c_exits_130_and_the_run_is_stored_as_interrupted(probed_home, tmp_path):
    """SIGINT during a run's repeats: exit 130, `Interrupted.`, and the run ends `error: INTERRUPTED`."""
    pipeline = write_pipeline(tmp_path / "slow.yaml", gates="[{metric: latency_ms, op: '<=', value: 1000}]",
                              iterations=100000, repeats=5)
    # As a terminal's foreground job gets it: with SIGINT at its default. A job started with `&` by a
    # non-interactive shell (a CI harness, nohup) inherits SIGINT ignored, and Python then keeps it ignored.
    foreground = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                  "sys.argv = ['edgegate', *sys.argv[1:]]; runpy.run_module('edgegate_cli.cli', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", foreground, "run", str(pipeline)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while "warmup" not in seen and proc.poll() is None and time.monotonic() < deadline:  # measuring began
            seen += proc.stderr.readline()
        assert "warmup" in seen, seen
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert err.endswith("Interrupted.\n")
    runs = subprocess.run([sys.executable, "-m", "edgegate_cli.cli", "runs", "list", "--json"], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    (run,) = json.loads(runs.stdout)["runs"]
    assert (run["status"], run["error_code"]) == ("error", "INTERRUPTED")
