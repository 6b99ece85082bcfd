"""The release half end to end: releases made by `edgegate publish` from real evidence and exported
with `edgegate releases export` are pushed to a real agent: 1.0.0, then 1.1.0, a refused downgrade,
and a signed rollback back to 1.0.0. The agent also checks publish's reference data on the device."""

from __future__ import annotations

import time

from bundle_evidence import home_signer
from conftest import REPO

from .fixtures import metric, refused
from .releases import deploy_body, push, read_export, rollback_envelope

MODEL = REPO / "examples" / "quickstart" / "model.onnx"


def reference_of(client, version: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in client.get("/v1/status").json()["health"]:
            if entry["version"] == version and entry["reference"]:
                return entry["reference"]
        time.sleep(0.05)
    raise AssertionError(f"no reference agreement for {version} within {timeout} s")


def test_published_releases_deploy_refuse_a_downgrade_and_roll_back(invoke, ev, agent_factory, tmp_path):
    exports = {}
    for version in ("1.0.0", "1.1.0"):
        invoke("publish", MODEL, "--name", "quickstart", "--version", version, "--bundle", ev.pass_zip)
        invoke("releases", "export", f"quickstart@{version}", tmp_path / version)
        exports[version] = read_export(tmp_path / version)
    r1, r2 = exports["1.0.0"], exports["1.1.0"]
    agent = agent_factory(publisher_keys=[ev.pem])
    with agent.client() as client:
        assert push(client, r1)["status"] == "active"
        record = push(client, r2)
        assert (record["status"], record["release"]["version"]) == ("active", "1.1.0")
        status = client.get("/v1/status").json()
        assert (status["active"]["name"], status["active"]["version"], status["active"]["sha256"]) == \
            ("quickstart", "1.1.0", r2.identity)
        assert status["previous"]["version"] == "1.0.0" and status["highest"] == {"quickstart": "1.1.0"}
        # publish's reference data (the run's inputs and the model's outputs) agree on the device
        reference = reference_of(client, "1.1.0")
        assert reference["compared"] == ["logits"] and reference["cosine"] > 0.9999

        assert refused(client.post("/v1/deploy", json=deploy_body(r1)), 409, "DOWNGRADE") == \
            "quickstart 1.0.0 is not above 1.1.0, the highest version this device accepted"

        directive = rollback_envelope(home_signer(ev.home), from_sha256=r2.identity, to=r1)
        response = client.post("/v1/rollback", json={"directive": directive})
        assert response.status_code == 200, response.text
        status = client.get("/v1/status").json()
        assert (status["active"]["version"], status["previous"]["version"]) == ("1.0.0", "1.1.0")
        assert status["highest"] == {"quickstart": "1.1.0"}
        served = client.post("/v1/infer", json={"inputs": {"image": [[[[0.0] * 64] * 64] * 3]}}).json()
        assert served["model"]["version"] == "1.0.0" and served["outputs"]["logits"]["shape"] == [1, 10]
        assert metric(client, "edgegate_agent_swaps_total", kind="rollback") == 1
