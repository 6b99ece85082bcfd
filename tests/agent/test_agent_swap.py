"""Swapping in place: no request fails or is dropped across repeated swaps under continuous load,
requests in flight finish on the model they started on, and the reference agreement is reported."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

from .fixtures import PUBLISHER, metric
from .models import X, linear_bytes, npz_bytes, run
from .releases import push, write_release

SWAPS = 20
CLIENTS = 4


def test_zero_failed_requests_across_20_swaps_under_load(agent_factory, tmp_path):
    """4 clients post /v1/infer without pause while 20 deploys alternate two models. Every request gets
    200, and every answer's outputs are exactly those of the version it names (no mixed state)."""
    agent = agent_factory(warmup=2)
    models = [linear_bytes(11), linear_bytes(12)]
    expected = [run(m, X) for m in models]
    releases = [write_release(tmp_path / f"r{i}", PUBLISHER, version=f"1.0.{i}", models={"model.onnx": models[i % 2]})
                for i in range(SWAPS + 1)]
    stop, results = threading.Event(), [[] for _ in range(CLIENTS)]

    def load(out: list) -> None:
        with agent.client() as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/infer", json={"inputs": {"x": X.tolist()}})
                    body = response.json()
                    out.append((response.status_code, body.get("model", {}).get("version"),
                                body.get("outputs", {}).get("y", {}).get("data")))
                except Exception as exc:  # a dropped connection is a failed request too
                    out.append((type(exc).__name__, None, None))

    with agent.client() as control:
        push(control, releases[0])
        threads = [threading.Thread(target=load, args=(out,)) for out in results]
        for thread in threads:
            thread.start()
        try:
            records = [push(control, release) for release in releases[1:]]
            time.sleep(0.2)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        last = control.post("/v1/infer", json={"inputs": {"x": X.tolist()}}).json()["model"]["version"]
        swaps = metric(control, "edgegate_agent_swaps_total", kind="deploy")

    answers = [answer for out in results for answer in out]
    assert [a for a in answers if a[0] != 200] == []
    assert all(not t.is_alive() for t in threads)
    assert [r["status"] for r in records] == ["active"] * SWAPS and swaps == SWAPS + 1
    for _, version, y in answers:
        index = int(version.rsplit(".", 1)[1])
        assert np.allclose(np.array(y, dtype=np.float32), expected[index % 2], atol=1e-6), version
    assert len(answers) >= 100 and len({version for _, version, _ in answers}) >= 2
    assert last == f"1.0.{SWAPS}"
    # only the active and the previous release stay on disk
    assert len(list((agent.state_dir / "releases").iterdir())) == 2


def test_a_request_in_flight_finishes_on_the_model_it_started_on(agent_factory, tmp_path):
    """Each inference takes 3 s (the testing knob). One starts on 1.0.0; 1.1.0 is deployed and becomes
    active while it runs; the slow request still answers from 1.0.0, the next one from 1.1.0."""
    agent = agent_factory(warmup=0, inject_latency_ms=3000)
    old, new = linear_bytes(21), linear_bytes(22)
    answers = []
    with agent.client() as client:
        push(client, write_release(tmp_path / "a", PUBLISHER, version="1.0.0", models={"model.onnx": old}))

        def slow_request():
            with agent.client() as own:
                answers.append(own.post("/v1/infer", json={"inputs": {"x": X.tolist()}}).json())

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.8)  # the request is in the agent, sleeping on 1.0.0's session
        record = push(client, write_release(tmp_path / "b", PUBLISHER, version="1.1.0", models={"model.onnx": new}))
        assert record["status"] == "active" and thread.is_alive()
        thread.join(timeout=30)
        after = client.post("/v1/infer", json={"inputs": {"x": X.tolist()}}).json()
    assert answers[0]["model"]["version"] == "1.0.0"
    assert np.allclose(answers[0]["outputs"]["y"]["data"], run(old, X), atol=1e-6)
    assert answers[0]["latency_ms"] >= 3000
    assert after["model"]["version"] == "1.1.0"
    assert np.allclose(after["outputs"]["y"]["data"], run(new, X), atol=1e-6)


def wait_reference(client, version: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in client.get("/v1/status").json()["health"]:
            if entry["version"] == version and entry["reference"]:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no reference result for {version} within {timeout} s")


def test_reference_outputs_are_checked_after_the_swap(agent, tmp_path):
    """A release carrying reference inputs/outputs: the agent runs them once it serves, and reports the
    agreement (cosine, max abs error) in /v1/status and /metrics; a wrong reference is reported, not refused."""
    model, other = linear_bytes(31), linear_bytes(32)
    inputs = npz_bytes(x=X)
    good = write_release(tmp_path / "good", PUBLISHER, name="ref", version="1.0.0", models={"model.onnx": model},
                         reference=(inputs, npz_bytes(y=run(model, X))))
    bad = write_release(tmp_path / "bad", PUBLISHER, name="ref", version="1.1.0", models={"model.onnx": model},
                        reference=(inputs, npz_bytes(y=run(other, X))))
    with agent.client() as client:
        push(client, good)
        entry = wait_reference(client, "1.0.0")
        assert entry["reference"]["compared"] == ["y"] and entry["reference"]["cosine"] > 0.99999
        assert entry["reference"]["max_abs_err"] < 1e-5
        assert metric(client, "edgegate_agent_reference_cosine", name="ref", version="1.0.0") > 0.99999
        push(client, bad)
        entry = wait_reference(client, "1.1.0")
        expected_err = float(np.max(np.abs(run(model, X) - run(other, X))))
        assert abs(entry["reference"]["max_abs_err"] - expected_err) < 1e-5
        assert entry["reference"]["cosine"] < 0.99
        assert client.get("/v1/status").json()["active"]["version"] == "1.1.0"


def test_health_counts_per_version(agent, tmp_path):
    with agent.client() as client:
        push(client, write_release(tmp_path / "a", PUBLISHER, version="1.0.0", models={"model.onnx": linear_bytes(1)}))
        for _ in range(5):
            client.post("/v1/infer", json={"inputs": {"x": X.tolist()}})
        push(client, write_release(tmp_path / "b", PUBLISHER, version="1.1.0", models={"model.onnx": linear_bytes(2)}))
        for _ in range(3):
            client.post("/v1/infer", json={"inputs": {"x": X.tolist()}})
        health = {e["version"]: e for e in client.get("/v1/status").json()["health"]}
        assert {v: (e["inferences"], e["errors"], e["error_rate"]) for v, e in health.items()} == \
            {"1.0.0": (5, 0, 0.0), "1.1.0": (3, 0, 0.0)}
        assert 0 < health["1.1.0"]["latency_ms"]["p50"] <= health["1.1.0"]["latency_ms"]["max"]
        assert metric(client, "edgegate_agent_inferences_total", name="quickstart", version="1.0.0") == 5
        assert metric(client, "edgegate_agent_inference_latency_seconds_count", name="quickstart",
                      version="1.1.0") == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
def test_the_deploy_thread_yields_the_cpu_to_inference():
    """Staging, loading and warming run at nice 10 in their own thread; the serving threads keep theirs."""
    from edgegate_cli.agent.deploy import LOAD_NICE, _lower_priority

    seen = {}

    def deploy_thread():
        _lower_priority()
        seen["deploy"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=deploy_thread)
    thread.start()
    thread.join(timeout=10)
    assert seen["deploy"] == max(before, LOAD_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
