"""The local backend's fork server: a process that has imported numpy and ONNX Runtime (or
onnxruntime-genai) once, and forks a fresh child for every repeat (Linux).

Run as `python -m edgegate_cli.backends.local.forkserver WORKER_MODULE` by `launch.py`, with
`ORT_DISABLE_TELEMETRY=1` and `OPENBLAS_NUM_THREADS=1` so that the imports start no thread (ONNX Runtime
≥ 1.29 starts a telemetry thread on import, OpenBLAS a thread pool): the server stays single-threaded,
creates no ONNX Runtime session and no thread pool, and refuses to fork otherwise. Protocol, one JSON
line each way: the server says `{"ready": …}` once imported; then for each `{"request", "result",
"stderr"}` (file paths) it forks a child that runs the worker's `measure` on the request, writes the
payload to `result` and anything it prints to `stderr`, and answers `{"forked": true, "exit": CODE}`, or
`{"forked": false, "reason": …}` when it will not fork; `{"op": "providers"}` gets ONNX Runtime's
`{"providers": […]}` (onnx server only). End of input ends the server.

What a repeat reports means what it did in a fresh interpreter:
- `load_ms` is a cold load: no session ever existed in the server, so none is inherited.
- `peak_rss_mb` is the child's own peak RSS (its high-water mark starts at what it maps at fork; nothing
  the server touched before counts unless it is still mapped). A forked child maps the server's anonymous
  memory but not the shared-library pages the imports read (Linux copies no page table entries for
  those), so it would read about 10 MB lower than a fresh interpreter that paid the imports itself; and
  its first writes to memory it shares with the server are copied on write, which a fresh interpreter
  never pays (+25 % on the quickstart's 5 ms first load). So, before anything is timed, the child maps
  again exactly the file pages that were resident in the server (`MADV_POPULATE_READ`) and takes its own
  copy of the anonymous pages the server had written (`MADV_POPULATE_WRITE`), both read from
  `/proc/self/pagemap` once: its memory then starts where a fresh interpreter's would, and nothing the
  server did not have resident is added (`tests/test_local_launch.py`; `bench/local_latency.py` prints
  both launches' first loads and peaks).
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
import traceback

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MADV_POPULATE_READ = 22  # Linux ≥ 5.14
MADV_POPULATE_WRITE = 23


def thread_count() -> int:
    """Threads of this process, native ones included (threading.active_count() sees only Python's)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def resident_ranges() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(address, length) runs of the pages present in this process's page tables, as two lists: pages to
    map again read-only in a child (file pages: the libraries and modules the imports read) and pages to
    make the child's own (private anonymous memory the imports wrote: the heap, module data). Empty where
    /proc/self/pagemap cannot be read."""
    read: list[tuple[int, int]] = []
    write: list[tuple[int, int]] = []
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps, open("/proc/self/pagemap", "rb", buffering=0) as pm:
            for line in maps:
                parts = line.split(None, 5)
                name = parts[5].strip() if len(parts) > 5 else ""
                if not parts[1].startswith("r") or name in _SPECIAL:
                    continue
                writable = parts[1][1] == "w" and parts[1][3] == "p"
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                pm.seek(lo // PAGE * 8)
                data = pm.read((hi - lo) // PAGE * 8)
                kinds = [0 if not e >> 63 else 2 if writable and not (e >> 61) & 1 else 1
                         for e in struct.unpack(f"{len(data) // 8}Q", data)]  # 0 absent, 1 file/shared, 2 own
                start = 0
                for i in range(1, len(kinds) + 1):
                    if i == len(kinds) or kinds[i] != kinds[start]:
                        if kinds[start]:
                            (write if kinds[start] == 2 else read).append((lo + start * PAGE, (i - start) * PAGE))
                        start = i
    except (OSError, ValueError, struct.error):
        return [], []
    return read, write


_SPECIAL = {"[stack]", "[vvar]", "[vdso]", "[vsyscall]", "[vvar_vclock]"}


def populate(read: list[tuple[int, int]], write: list[tuple[int, int]]) -> None:
    """Make a forked child's memory look like the server's did to the server: `read` ranges (pages in the
    page cache) mapped without copying, `write` ranges (copy-on-write pages shared with the server) copied
    now, so the first writes of the timed model load do not pay for copying them. Nothing is allocated
    that the server did not have resident."""
    if not read and not write:
        return
    import ctypes  # imported by the server after `preload`, so it is not in `startup_rss_mb`

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for address, length in read:
        if libc.madvise(address, length, MADV_POPULATE_READ) != 0:  # an older kernel: touch each page
            for page in range(address, address + length, PAGE):
                ctypes.string_at(page, 1)
    for address, length in write:
        libc.madvise(address, length, MADV_POPULATE_WRITE)  # an older kernel: copied on first write instead


def _reply(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _child(worker, job: dict, startup_rss_mb: float, ranges) -> None:
    """Run one repeat in this forked child and leave with its exit status; never returns."""
    code = 1
    try:
        err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 1)  # what libraries print goes with the errors, never into the payload
        os.dup2(err, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        populate(*ranges)
        with open(job["request"], encoding="utf-8") as f:
            req = json.load(f)
        os.environ["OMP_NUM_THREADS"] = str(req.get("threads", 1))  # as the fresh worker's environment had it
        payload = worker.measure(req, startup_rss_mb=startup_rss_mb)
        payload["environment"]["launch"] = "fork"
        with open(job["result"], "w", encoding="utf-8") as f:
            f.write(json.dumps(payload, sort_keys=True, allow_nan=False))
        code = 0
    except SystemExit as exc:  # how a worker reports bad input: the message, exit status 1
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(module: str) -> None:
    worker = importlib.import_module(module)
    startup_rss_mb = worker.preload()
    import ctypes  # noqa: F401 (for `populate` in every child; imported here, once)

    ranges = resident_ranges()
    _reply({"ready": True, "pid": os.getpid(), "threads": thread_count()})
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("op") == "providers":  # asked here, so the CLI need not import ONNX Runtime itself
            import onnxruntime

            _reply({"providers": onnxruntime.get_available_providers()})
            continue
        threads = thread_count()
        if threads != 1:
            _reply({"forked": False, "reason": f"the server runs {threads} threads; fork is only safe from one"})
            continue
        pid = os.fork()
        if pid == 0:
            _child(worker, job, startup_rss_mb, ranges)
        _, status = os.waitpid(pid, 0)
        _reply({"forked": True, "exit": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve(sys.argv[1])
