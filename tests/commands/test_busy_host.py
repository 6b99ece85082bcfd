"""Relative gates on a busy machine (issue 11), on real runs: a CPU hog beside the run does not turn an unchanged
model's verdict into a failure, nor hide a 50 % slower model; a run starved of CPU ends NOISY_HOST.

The hogs are bounded busy loops in subprocesses (one per core, or pinned beside the run), killed when the test
ends. Nothing here asserts a time: only verdicts, which paired measurement and NOISY_HOST exist to keep right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest
from conftest import write_pipeline
from synthetic_models import matmul_chain

from edgegate_cli.errors import ExitCode

HOG_LIMIT_S = 300  # a hog stops by itself after this long, whatever happens to the test
pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")


@contextmanager
def cpu_hogs(count: int, cpus: set[int] | None = None):
    """`count` busy-loop processes (pinned to `cpus` if given) for the duration of the block."""
    code = f"import time\nend = time.monotonic() + {HOG_LIMIT_S}\nwhile time.monotonic() < end:\n    pass\n"
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    hogs = [subprocess.Popen([sys.executable, "-c", code], preexec_fn=pin) for _ in range(count)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@contextmanager
def pinned(cpus: set[int]):
    """This process (and so every worker it starts) on `cpus` only, for the block."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _run(invoke, pipeline, *args, expect=None) -> dict:
    return json.loads(invoke("run", pipeline, "--json", *args, expect=expect).stdout)


def test_unchanged_passes_and_50pct_slower_fails_beside_a_cpu_hog(invoke, probed_home, tmp_path):
    """Done-when (issue 11): with a busy loop on every core, in each of 5 tries the unchanged model passes its 10 %
    relative gate against its own baseline (or ends NOISY_HOST, never failed), and a model 50 % slower (6 MatMul
    blocks instead of 4) fails it. Default policy and baseline mode (paired)."""
    base = matmul_chain(tmp_path / "base.onnx", 4, rows=64)
    slower = matmul_chain(tmp_path / "slower.onnx", 6, rows=64)
    pipeline = tmp_path / "busy.yaml"
    pipeline.write_text(f"name: busy\nbackend: local\ndevices: ['local:cpu']\nmodel: {{path: '{base}'}}\n"
                        "gates: [{metric: latency_ms, baseline: last-passed, max_regression_pct: 10}]\n")
    unchanged, slow = [], []
    with cpu_hogs(os.cpu_count() or 1):
        first = _run(invoke, pipeline)
        assert first["verdict"] == "passed", first["error_detail"]  # NO_BASELINE: it becomes the baseline
        for _ in range(5):
            unchanged.append(_run(invoke, pipeline))
            slow.append(_run(invoke, pipeline, "--model", slower))

    def seen(outcomes):
        return [(o["verdict"], o["error_code"], o["gates"][0].get("ratio"), o["gates"][0].get("baseline_mode"))
                for o in outcomes]

    assert all(o["verdict"] == "passed" or o["error_code"] == "NOISY_HOST" for o in unchanged), seen(unchanged)
    assert all(o["verdict"] == "failed" for o in slow), seen(slow)
    assert {o["gates"][0]["baseline_mode"] for o in unchanged + slow if o["verdict"] != "error"} == {"paired"}
    # last-passed: the newest passed run of the pipeline, so the first or an unchanged one, never a slow one
    unchanged_ids = {first["run_id"]} | {o["run_id"] for o in unchanged if o["verdict"] == "passed"}
    assert all(o["gates"][0]["baseline_run_id"] in unchanged_ids for o in slow)


def test_a_run_starved_of_cpu_ends_noisy_host(invoke, probed_home, tmp_path):
    """The run's workers share one CPU with two busy loops, so every ~15 ms iteration waits for the CPU about two
    thirds of its time: the latency gate ends NOISY_HOST (exit 3) with the numbers, the memory gate still
    decides, `gate explain` shows the starved repeats and `gate check` re-derives the same error."""
    model = matmul_chain(tmp_path / "big.onnx", 3, rows=256, width=512)
    pipeline = write_pipeline(tmp_path / "starved.yaml", model=str(model), iterations=6,
                              gates="[{metric: latency_ms, op: '<=', value: 100000}, "
                                    "{metric: peak_memory_mb, op: '<', value: 100000}]")
    cpu = min(os.sched_getaffinity(0))
    with cpu_hogs(2, {cpu}), pinned({cpu}):
        result = invoke("run", pipeline, "--json", expect=ExitCode.RUN_ERROR)
    outcome = json.loads(result.stdout)
    assert (outcome["verdict"], outcome["error_code"]) == ("error", "NOISY_HOST")
    assert "repeats were starved of CPU (median iteration off the CPU: " in outcome["error_detail"]
    latency, memory = outcome["gates"]
    assert (latency["code"], latency["host"]["starved"], memory["status"]) == ("NOISY_HOST", 3, "pass")
    text = invoke("gate", "explain", outcome["run_id"], expect=0).stdout
    assert "host: candidate: 3 of 3 repeats starved" in text
    checked = json.loads(invoke("gate", "check", outcome["run_id"], "--json", expect=ExitCode.RUN_ERROR).stdout)
    assert checked["agrees"] and checked["evaluation"]["error_code"] == "NOISY_HOST"
