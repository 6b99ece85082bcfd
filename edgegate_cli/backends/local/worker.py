"""One measurement repeat of the local backend, run in a fresh process (SPEC §8).

A fresh process per repeat makes load time and peak memory real. Two ways to get one (`launch.py`):
forked from the fork server (`forkserver.py`), which has already run `preload()`, or as
`python -m edgegate_cli.backends.local.worker REQUEST.json`, which prints one JSON payload (format
edgegate.local.v1) on stdout. Kept free of EdgeGate imports beyond the standard library so start-up
stays small.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import resource
import sys
import time

PAYLOAD_FORMAT = "edgegate.local.v1"


def _peak_rss_mb() -> float:
    """This process's own peak resident memory, in MiB.

    On Linux, the high-water mark of this process's memory (`VmHWM`), not `ru_maxrss`: that one keeps the
    highest RSS the process had before its last exec, so a worker spawned by a 100 MB parent reported at
    least 100 MB whatever it did. A forked child's high-water mark starts at what it maps at fork.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _agreement(outputs: dict, reference_path: str) -> dict:
    import numpy as np

    ref = np.load(reference_path)
    cosines, max_errs, compared = [], [], []
    for name in sorted(ref.files):
        if name not in outputs:
            continue
        a = np.asarray(outputs[name], dtype=np.float64).ravel()
        b = np.asarray(ref[name], dtype=np.float64).ravel()
        if a.shape != b.shape:
            raise SystemExit(f"reference output {name!r} has {b.size} values, the model produced {a.size}")
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        cosines.append(float(a @ b) / denom if denom else float(np.array_equal(a, b)))
        max_errs.append(float(np.max(np.abs(a - b))) if a.size else 0.0)
        compared.append(name)
    if not compared:
        raise SystemExit(f"{reference_path}: no array named after a model output ({', '.join(sorted(outputs))})")
    return {"cosine": min(cosines), "max_abs_err": max(max_errs), "compared": compared}


def preload() -> float:
    """Import what `measure` needs; return the peak RSS before, which `measure` reports as
    `startup_rss_mb` (the interpreter alone, before numpy and ONNX Runtime)."""
    rss_start = _peak_rss_mb()
    import zipfile  # noqa: F401 (np.load of the inputs; nothing imports inside a timed section)

    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    platform.uname()  # cached for every child
    _cpu_name()
    return rss_start


def measure(req: dict, startup_rss_mb: float | None = None) -> dict:
    """Load the model, run `iterations` timed inferences, report times, memory and agreement.
    `startup_rss_mb` is `preload()`'s figure when a fork server preloaded (default: measured here)."""
    rss_start = _peak_rss_mb() if startup_rss_mb is None else startup_rss_mb
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(req.get("threads", 1))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = req.get("providers") or ["CPUExecutionProvider"]
    t0 = time.perf_counter_ns()
    session = ort.InferenceSession(req["model"], sess_options=opts, providers=providers)
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    feeds = dict(np.load(req["inputs"]))
    output_names = [o.name for o in session.get_outputs()]
    times, cpu_times = [], []
    first_outputs = None
    load_before = _load_1m()
    for _ in range(int(req["iterations"])):
        cpu0 = time.process_time_ns()
        start = time.perf_counter_ns()
        result = session.run(output_names, feeds)
        end = time.perf_counter_ns()
        cpu_times.append((time.process_time_ns() - cpu0) / 1e6)
        times.append((end - start) / 1e6)
        if first_outputs is None:
            first_outputs = dict(zip(output_names, result, strict=True))
    cpu = cpu_share(times, cpu_times, opts.intra_op_num_threads, req.get("starved_off_cpu"),
                    [load_before, _load_1m()])
    peak = _peak_rss_mb()
    if req.get("save_outputs"):
        np.savez(req["save_outputs"], **first_outputs)
    del session
    t1 = time.perf_counter_ns()
    ort.InferenceSession(req["model"], sess_options=opts, providers=providers)
    warm_load_ms = (time.perf_counter_ns() - t1) / 1e6
    return {
        "format": PAYLOAD_FORMAT,
        "device": req["device"],
        "repeat_index": req["repeat_index"],
        "warmup": req["warmup"],
        "iterations_ms": times,
        "iterations_cpu_ms": cpu_times,
        "load_ms": load_ms,
        "warm_load_ms": warm_load_ms,
        "peak_rss_mb": peak,
        "startup_rss_mb": rss_start,
        "cpu": cpu,
        "outputs": _agreement(first_outputs, req["reference_outputs"]) if req.get("reference_outputs") else None,
        "environment": {
            "onnxruntime": ort.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
            "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "providers": list(providers),
            "threads": opts.intra_op_num_threads,
        },
    }


def _load_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not every platform has a load average
        return None


def cpu_share(wall_ms: list[float], cpu_ms: list[float], threads: int, starved_off_cpu: float | None,
              load_1m: list) -> dict:
    """How much of the timed iterations' wall time the worker had the CPU (issue 11).

    Per iteration, `off = 1 - cpu / (wall x threads)` is the share of its wall time the worker waited while
    another process had the CPU. A repeat is starved when its median iteration waited more than
    `starved_off_cpu` of its time: then the median itself measures the host, not the model. `load_1m` is the
    host's 1-minute load average before and after the timed iterations.
    """
    share = max(threads, 1)
    off = sorted(max(0.0, 1.0 - c / (w * share)) if w > 0 else 0.0 for w, c in zip(wall_ms, cpu_ms, strict=True))
    mid = len(off) // 2
    median = (off[mid] if len(off) % 2 else (off[mid - 1] + off[mid]) / 2) if off else None
    out = {"timed_wall_ms": sum(wall_ms), "timed_cpu_ms": sum(cpu_ms), "threads": threads,
           "off_cpu_median": median, "load_1m": load_1m}
    if starved_off_cpu is not None and median is not None:
        out.update(starved=median > float(starved_off_cpu), starved_off_cpu=float(starved_off_cpu))
    return out


@functools.cache
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        req = json.load(f)
    payload = measure(req)
    payload["environment"]["launch"] = "process"
    sys.stdout.write(json.dumps(payload, sort_keys=True, allow_nan=False))


if __name__ == "__main__":
    main()
