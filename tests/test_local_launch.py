"""launch.py / forkserver.py: each repeat in a fresh process, forked from a server that imported ONNX
Runtime once, reporting what a new interpreter would: its own peak memory (never the parent's), a cold load,
the same failures and timeouts; new interpreters where the server cannot serve."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgegate_cli.backends.local.launch import ForkServer, Launcher, fresh_process
from edgegate_cli.errors import DeviceJobFailed, RunTimeout

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "model.onnx"
pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or not os.path.isdir("/proc/self"),
                                reason="the fork server runs on Linux")


def _weights_model(path: Path, megabytes: int) -> Path:
    """y = x + w, with w a float32 initializer of `megabytes` MiB: its session holds at least that much."""
    n = megabytes * 2**20 // 4
    w = helper.make_tensor("w", TensorProto.FLOAT, [n], np.linspace(0, 1, n, dtype=np.float32).tobytes(), raw=True)
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "weights",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], [w])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    np.savez(path.with_suffix(".npz"), x=np.ones(n, dtype=np.float32))
    return path


def _request(model: Path, inputs: Path, **extra) -> dict:
    return {"model": str(model), "inputs": str(inputs), "iterations": 3, "threads": 1, "device": "local:cpu",
            "repeat_index": 0, "warmup": False, "providers": ["CPUExecutionProvider"], **extra}


@pytest.fixture
def quickstart_request(tmp_path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(QUICKSTART), providers=["CPUExecutionProvider"])
    np.savez(tmp_path / "in.npz", **{i.name: np.zeros(i.shape, dtype=np.float32) for i in session.get_inputs()})
    return _request(QUICKSTART, tmp_path / "in.npz")


@pytest.fixture
def launcher():
    launcher = Launcher()
    yield launcher
    launcher.close()


def test_a_forked_repeat_reports_what_a_new_interpreter_does_not_the_parents_memory(launcher, quickstart_request):
    """This process holds 300 MB more than a worker needs; neither launch counts it (ru_maxrss would: it
    keeps the parent's peak across exec). The forked child's peak memory and start-up memory agree with a
    new interpreter's, and the payload says how it was launched."""
    ballast = bytearray(300 * 2**20)
    ballast[::4096] = b"x" * (len(ballast) // 4096)  # resident, not just reserved
    forked = launcher.run("onnx", quickstart_request, 120)
    fresh = fresh_process("onnx", quickstart_request, 120)
    assert (forked["environment"]["launch"], fresh["environment"]["launch"]) == ("fork", "process")
    assert fresh["peak_rss_mb"] < 250 and forked["peak_rss_mb"] < 250
    assert abs(forked["peak_rss_mb"] - fresh["peak_rss_mb"]) <= max(5.0, 0.1 * fresh["peak_rss_mb"])
    assert abs(forked["startup_rss_mb"] - fresh["startup_rss_mb"]) <= 3.0
    assert forked["startup_rss_mb"] < forked["peak_rss_mb"] - 20  # numpy and ONNX Runtime came after it
    assert len(forked["iterations_ms"]) == 3 and forked["load_ms"] > 0 and forked["warm_load_ms"] > 0
    del ballast


def test_peak_memory_tracks_each_models_weights_and_nothing_carries_over(launcher, tmp_path, quickstart_request):
    """A model with 64 MiB of weights peaks at least 64 MiB above the quickstart model on the same server; a
    small model forked after it is back at its own figure (each child's high-water mark is its own)."""
    big = _weights_model(tmp_path / "big.onnx", 64)
    small_before = launcher.run("onnx", quickstart_request, 120)["peak_rss_mb"]
    heavy = launcher.run("onnx", _request(big, big.with_suffix(".npz"), iterations=1), 120)["peak_rss_mb"]
    small_after = launcher.run("onnx", quickstart_request, 120)["peak_rss_mb"]
    assert heavy - small_before >= 64
    assert abs(small_after - small_before) <= 2.0


def test_the_server_is_single_threaded_and_never_loads_a_model(quickstart_request):
    """After importing numpy and ONNX Runtime the server runs one thread (fork is safe) and has no session:
    every child's load is the first load of that model in its process."""
    server = ForkServer("onnx")
    try:
        hello = server._read_line(time.monotonic() + 120)
        assert hello["ready"] is True and hello["threads"] == 1
        server.ready = True
        maps = Path(f"/proc/{hello['pid']}/maps").read_text()
        assert str(QUICKSTART) not in maps and "onnxruntime" in maps
        payload = server.run(quickstart_request, 120)
        assert payload["environment"]["launch"] == "fork"
        assert str(QUICKSTART) not in Path(f"/proc/{hello['pid']}/maps").read_text()
        assert "CPUExecutionProvider" in server.providers()
    finally:
        server.close()
    assert server.proc.returncode is not None


def test_a_failing_repeat_fails_the_same_way_forked_or_not(launcher, quickstart_request, tmp_path):
    """A worker's own refusal (SystemExit) and a library error both become DeviceJobFailed naming the
    repeat and the last line the worker wrote, in both launches."""
    ref = tmp_path / "ref.npz"
    np.savez(ref, unrelated=np.zeros(3))
    bad_ref = {**quickstart_request, "reference_outputs": str(ref), "repeat_index": 2}
    missing = {**quickstart_request, "model": str(tmp_path / "nope.onnx")}
    for run in (lambda r: launcher.run("onnx", r, 120), lambda r: fresh_process("onnx", r, 120)):
        with pytest.raises(DeviceJobFailed) as info:
            run(bad_ref)
        assert info.value.message == f"local:cpu: repeat 2 failed: {ref}: no array named after a model output (logits)"
        with pytest.raises(DeviceJobFailed) as info:
            run(missing)
        assert "nope.onnx" in info.value.message
    assert launcher.run("onnx", quickstart_request, 120)["environment"]["launch"] == "fork"  # still serving


def test_a_repeat_past_its_timeout_is_killed_with_its_server(launcher, quickstart_request):
    """RunTimeout as before, and no process of the server's group is left running."""
    launcher.run("onnx", quickstart_request, 120)  # the server is up
    server = launcher._servers["onnx"]
    with pytest.raises(RunTimeout) as info:
        launcher.run("onnx", {**quickstart_request, "iterations": 10**7}, 1.0)
    assert info.value.message == "local:cpu: repeat 0 did not finish before the run timeout"
    assert server.proc.returncode is not None
    deadline = time.monotonic() + 10
    while _running_in_group(server.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running_in_group(server.proc.pid) == []


def _running_in_group(pgid: int) -> list[int]:
    """Processes of process group `pgid` that have not exited (zombies waiting for a reaper have)."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            running.append(int(stat.parent.name))
    return running


def test_new_interpreters_when_asked_or_when_the_server_would_fork_from_threads(monkeypatch, quickstart_request):
    """EDGEGATE_LOCAL_LAUNCH=process never starts a server; a server whose imports started a thread (numpy's
    OpenBLAS pool, when explicitly asked for two threads) refuses to fork, and the repeat runs in a new
    interpreter."""
    monkeypatch.setenv("EDGEGATE_LOCAL_LAUNCH", "process")
    asked = Launcher()
    assert asked.run("onnx", quickstart_request, 120)["environment"]["launch"] == "process"
    assert asked._servers == {}
    monkeypatch.delenv("EDGEGATE_LOCAL_LAUNCH")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("OpenBLAS starts no thread on one CPU")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    threaded = Launcher()
    try:
        assert threaded.run("onnx", quickstart_request, 120)["environment"]["launch"] == "process"
        assert threaded.run("onnx", quickstart_request, 120)["environment"]["launch"] == "process"
    finally:
        threaded.close()


def test_runs_and_probes_measure_in_forked_children(invoke, probed_home):
    """Through the CLI: every stored payload of a quickstart run, and of the probe (ONNX and GenAI
    models), was measured in a forked child."""
    from edgegate_cli.store.workspace import open_workspace

    outcome = json.loads(invoke("run", str(QUICKSTART.parent / "pipeline.yaml"), "--json", expect=None).stdout)
    ws = open_workspace()
    rows = list(ws.db["run_payloads"].rows_where("run_id = ?", [outcome["run_id"]]))
    assert len(rows) == 4
    assert {json.loads(ws.cas.read_bytes(r["sha256"]))["environment"]["launch"] for r in rows} == {"fork"}
    [probe] = ws.db["probe_runs"].rows
    payloads = [json.loads(ws.cas.read_bytes(d)) for d in json.loads(probe["payloads_json"])]
    assert {p["format"] for p in payloads} == {"edgegate.local.v1", "edgegate.local.genai.v1"}
    assert {p["environment"]["launch"] for p in payloads} == {"fork"}
