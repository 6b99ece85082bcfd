"""How the local backend gets a fresh process for each repeat.

Every repeat runs in a process that has never loaded its model, so load time and peak memory are real
(SPEC §8). Paying a new interpreter plus `import numpy, onnxruntime` for each one cost ~0.25 s a repeat
for a 21 ms repeat, so on Linux a fork server (`forkserver.py`) pays the imports once per backend and
forks a fresh child per repeat. Everywhere else, when `EDGEGATE_LOCAL_LAUNCH=process`, or whenever the
server cannot serve (it failed to start, died, or would have to fork from more than one thread), a
repeat runs in a new interpreter as before (`fresh_process`). Payloads name which in
`environment.launch` ("fork" or "process").
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

from ...errors import DeviceJobFailed, RunTimeout

WORKERS = {"onnx": "edgegate_cli.backends.local.worker", "genai": "edgegate_cli.backends.local.genai_worker"}
LAUNCH_ENV = "EDGEGATE_LOCAL_LAUNCH"  # "process": a new interpreter per repeat, never the fork server


def worker_env(threads: int = 1) -> dict[str, str]:
    """The environment of a worker, forked or not: ONNX Runtime's telemetry off (it starts a thread on
    import and may upload; an explicit setting is kept), numpy's BLAS on one thread (it runs no timed
    work), and OMP_NUM_THREADS = the run's threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.setdefault("ORT_DISABLE_TELEMETRY", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def fork_supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork") and \
        os.environ.get(LAUNCH_ENV, "").strip().lower() != "process"


def _timeout_error(request: dict) -> RunTimeout:
    return RunTimeout(f"{request['device']}: repeat {request['repeat_index']} did not finish before the "
                      "run timeout", hint="raise run_policy.timeout_s or lower iterations")


def _failed(request: dict, stderr: str, status: int) -> DeviceJobFailed:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    reason = lines[-1] if lines else f"exit status {status}"
    return DeviceJobFailed(f"{request['device']}: repeat {request['repeat_index']} failed: {reason}")


def fresh_process(kind: str, request: dict, timeout: float) -> dict:
    """Run one repeat in a new Python interpreter; return its JSON payload.

    Raises RunTimeout past `timeout` seconds and DeviceJobFailed (with the worker's last stderr
    line) when the process fails.
    """
    with tempfile.TemporaryDirectory(prefix="edgegate-worker-") as tmp:
        req_path = Path(tmp) / "request.json"
        req_path.write_text(json.dumps(request), encoding="utf-8")
        try:
            proc = subprocess.run([sys.executable, "-m", WORKERS[kind], str(req_path)], capture_output=True,
                                  text=True, timeout=max(timeout, 0.001), env=worker_env(request.get("threads", 1)))
        except subprocess.TimeoutExpired:
            raise _timeout_error(request) from None
    if proc.returncode != 0:
        raise _failed(request, proc.stderr, proc.returncode)
    return json.loads(proc.stdout)


class ForkServer:
    """A running `forkserver.py` for one worker kind, spoken to over its stdin and stdout."""

    def __init__(self, kind: str):
        self.kind = kind
        self._err = tempfile.TemporaryFile(prefix="edgegate-forkserver-")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgegate_cli.backends.local.forkserver", WORKERS[kind]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, env=worker_env(),
            start_new_session=True)  # its own process group: a timeout kills it and its child together
        self._buffer = b""
        self.ready = False
        self._finalizer = weakref.finalize(self, _shutdown, self.proc, self._err)

    def _read_line(self, deadline: float) -> dict | None:
        """The server's next message, or None when it ended; TimeoutError past `deadline`."""
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _hello(self, deadline: float) -> bool:
        """Wait for the server's ready line once; False (and the server closed) if it never came."""
        if not self.ready:
            hello = self._read_line(deadline)
            if not hello or not hello.get("ready"):
                self.close()
                return False
            self.ready = True
        return True

    def providers(self, timeout: float = 120.0) -> list[str] | None:
        """ONNX Runtime's available execution providers, as the server sees them; None if it cannot say."""
        deadline = time.monotonic() + timeout
        try:
            if not self._hello(deadline):
                return None
            self.proc.stdin.write(b'{"op": "providers"}\n')
            self.proc.stdin.flush()
            answer = self._read_line(deadline)
        except (TimeoutError, OSError):
            self.close()
            return None
        return answer.get("providers") if answer else None

    def run(self, request: dict, timeout: float) -> dict | None:
        """Run one repeat in a child forked by the server; its payload, or None when the server cannot
        serve (the caller then uses `fresh_process`). Raises RunTimeout (the server and child are killed)
        and DeviceJobFailed like `fresh_process`."""
        deadline = time.monotonic() + max(timeout, 0.001)
        with tempfile.TemporaryDirectory(prefix="edgegate-worker-") as tmp:
            job = {name: str(Path(tmp) / f"{name}.json") for name in ("request", "result")}
            job["stderr"] = str(Path(tmp) / "stderr.txt")
            Path(job["request"]).write_text(json.dumps(request), encoding="utf-8")
            try:
                if not self._hello(deadline):
                    return None
                self.proc.stdin.write((json.dumps(job) + "\n").encode())
                self.proc.stdin.flush()
                answer = self._read_line(deadline)
            except TimeoutError:
                self.close()
                raise _timeout_error(request) from None
            except BrokenPipeError:
                answer = None
            except BaseException:  # Ctrl-C while a child runs: it must not outlive the run
                self.close()
                raise
            if not answer or not answer.get("forked"):
                self.close()
                return None
            if answer["exit"] != 0:
                raise _failed(request, Path(job["stderr"]).read_text(encoding="utf-8", errors="replace"),
                              answer["exit"])
            return json.loads(Path(job["result"]).read_text(encoding="utf-8"))

    @property
    def alive(self) -> bool:
        return self._finalizer.alive and self.proc.poll() is None

    def close(self) -> None:
        self._finalizer()


def _shutdown(proc: subprocess.Popen, err) -> None:
    """End a server and any child of its group. It keeps no state, and its own exit (unloading numpy and
    ONNX Runtime) would cost the caller ~0.1 s to wait for: it is killed, then reaped."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    proc.stdout.close()
    err.close()


class Launcher:
    """Fresh processes for one backend's repeats: a fork server per worker kind, started on first use
    (or by `start`), or new interpreters where fork is unavailable."""

    def __init__(self) -> None:
        self._servers: dict[str, ForkServer] = {}
        self._disabled: set[str] = set()

    def start(self, kind: str = "onnx") -> None:
        """Start the kind's fork server now, so its imports overlap with the caller's other work."""
        if kind not in self._disabled and fork_supported() and (
                kind not in self._servers or not self._servers[kind].alive):
            try:
                self._servers[kind] = ForkServer(kind)
            except OSError:
                self._disabled.add(kind)

    def providers(self) -> list[str] | None:
        """ONNX Runtime's execution providers, from the onnx fork server (None without one: import it here)."""
        self.start("onnx")
        server = self._servers.get("onnx")
        if server is None or "onnx" in self._disabled:
            return None
        found = server.providers()
        if found is None:
            self._disabled.add("onnx")
        return found

    def run(self, kind: str, request: dict, timeout: float) -> dict:
        """One repeat's payload; raises RunTimeout or DeviceJobFailed."""
        self.start(kind)
        server = self._servers.get(kind)
        if server is not None and kind not in self._disabled:
            started = time.monotonic()
            payload = server.run(request, timeout)
            if payload is not None:
                return payload
            self._disabled.add(kind)  # it could not serve: new interpreters from now on
            timeout -= time.monotonic() - started
        return fresh_process(kind, request, timeout)

    def close(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()
