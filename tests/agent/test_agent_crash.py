"""kill -9 of the agent at each stage of a deploy: after a restart it serves a complete model, old or
new, never a partial one; an interrupted deployment resumes; the leftovers of a crash are dropped."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from .fixtures import PUBLISHER, refused
from .models import X, linear_bytes, run
from .releases import deploy_body, push, upload, wait_deployment, write_release

OLD, NEW = linear_bytes(41), linear_bytes(42)


def on_disk(agent) -> dict:
    return json.loads((agent.state_dir / "state.json").read_text())


def serves_a_whole_model(client) -> str:
    body = client.post("/v1/infer", json={"inputs": {"x": X.tolist()}}).json()
    version = body["model"]["version"]
    assert version in ("1.0.0", "1.1.0")
    assert np.allclose(body["outputs"]["y"]["data"], run(OLD if version == "1.0.0" else NEW, X), atol=1e-6)
    return version


def start_second_deploy(agent, tmp_path) -> str:
    """1.0.0 active; 1.1.0 uploaded and accepted (202): return the deployment id."""
    with agent.client() as client:
        push(client, write_release(tmp_path / "old", PUBLISHER, version="1.0.0", models={"model.onnx": OLD}))
        new = write_release(tmp_path / "new", PUBLISHER, version="1.1.0", models={"model.onnx": NEW})
        upload(client, new)
        response = client.post("/v1/deploy", json=deploy_body(new))
    assert response.status_code == 202, response.text
    return response.json()["id"]


def assert_recovers(agent, dep_id: str) -> None:
    agent.start()
    with agent.client() as client:
        serves_a_whole_model(client)  # old or new, whichever the resumed deployment has reached
        record = wait_deployment(client, dep_id)
        assert record["status"] == "active"
        assert serves_a_whole_model(client) == "1.1.0"
        status = client.get("/v1/status").json()
        assert (status["active"]["version"], status["previous"]["version"]) == ("1.1.0", "1.0.0")
    assert not [p for p in (agent.state_dir / "releases").iterdir() if p.name.startswith(".")]


def test_kill9_while_staging(agent_factory, tmp_path):
    """Killed right after the 202: the accepted deployment was durable before the answer; the restart
    serves 1.0.0 whole, resumes the deployment, and ends on 1.1.0."""
    agent = agent_factory(warmup=2, inject_latency_ms=500)  # warm-up takes 1 s, so the kill lands before it
    dep_id = start_second_deploy(agent, tmp_path)
    agent.kill9()
    state = on_disk(agent)
    assert state["active"]["version"] == "1.0.0" and state["highest"] == {"quickstart": "1.1.0"}
    assert next(d for d in state["deployments"] if d["id"] == dep_id)["status"] in ("staging", "loading", "warming")
    assert_recovers(agent, dep_id)


def test_kill9_while_warming_before_the_swap(agent_factory, tmp_path):
    agent = agent_factory(warmup=2, inject_latency_ms=700)
    dep_id = start_second_deploy(agent, tmp_path)
    with agent.client() as client:
        deadline = time.monotonic() + 30
        while client.get(f"/v1/deployments/{dep_id}").json()["status"] != "warming":
            assert time.monotonic() < deadline, "the deployment never reached warming"
            time.sleep(0.01)
    agent.kill9()
    state = on_disk(agent)
    assert state["active"]["version"] == "1.0.0"  # the swap is persisted only after warm-up
    assert_recovers(agent, dep_id)


def test_kill9_right_after_the_swap(agent_factory, tmp_path):
    """Once a deployment says active, the new model is the durable one: a restart serves it."""
    agent = agent_factory(warmup=1)
    dep_id = start_second_deploy(agent, tmp_path)
    with agent.client() as client:
        assert wait_deployment(client, dep_id)["status"] == "active"
    agent.kill9()
    assert on_disk(agent)["active"]["version"] == "1.1.0"
    agent.start()
    with agent.client() as client:
        assert serves_a_whole_model(client) == "1.1.0"


def test_crash_leftovers_are_dropped(agent_factory, tmp_path):
    """A half-built release directory and a half-received blob (what a crash leaves) never count."""
    agent = agent_factory(warmup=1)
    with agent.client() as client:
        push(client, write_release(tmp_path / "old", PUBLISHER, version="1.0.0", models={"model.onnx": OLD}))
    agent.kill9()
    partial = agent.state_dir / "releases" / ".abc.1234.tmp" / "model"
    partial.mkdir(parents=True)
    (partial / "model.onnx").write_bytes(NEW[: len(NEW) // 2])
    (agent.state_dir / "blobs" / "tmp" / "half.part").write_bytes(NEW[:100])
    agent.start()
    with agent.client() as client:
        assert serves_a_whole_model(client) == "1.0.0"
    assert not (agent.state_dir / "releases" / ".abc.1234.tmp").exists()
    assert list((agent.state_dir / "blobs" / "tmp").iterdir()) == []


def test_a_corrupted_active_model_is_never_served(agent_factory, tmp_path):
    """The active release's files are rehashed on start: a truncated file means no model, not half a model."""
    agent = agent_factory(warmup=1)
    with agent.client() as client:
        push(client, write_release(tmp_path / "old", PUBLISHER, version="1.0.0", models={"model.onnx": OLD}))
    agent.stop()
    state = on_disk(agent)
    path = agent.state_dir / state["active"]["dir"] / "model" / "model.onnx"
    os.chmod(path, 0o644)
    path.write_bytes(OLD[: len(OLD) // 2])
    agent.start()
    with agent.client() as client:
        status = client.get("/v1/status").json()
        assert status["restore_error"].startswith("DIGEST_MISMATCH: ")
        assert status["serving"] is None
        assert refused(client.post("/v1/infer", json={"inputs": {"x": X.tolist()}}), 503,
                       "NO_ACTIVE_MODEL").startswith("no model is active on this device yet (DIGEST_MISMATCH: ")
