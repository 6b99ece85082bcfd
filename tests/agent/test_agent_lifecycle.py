"""A device's life: deploy 1.0.0 then 1.1.0, refuse going back down, roll back only by a signed
directive, and come back after a restart serving the same model with the same floor."""

from __future__ import annotations

import numpy as np

from .fixtures import DEVICE_ID, PUBLISHER, metric, refused
from .models import X, linear_bytes, run
from .releases import deploy_body, push, rollback_envelope, upload, write_release

V1, V2 = linear_bytes(1), linear_bytes(2)


def served(client) -> tuple[str, np.ndarray]:
    response = client.post("/v1/infer", json={"inputs": {"x": X.tolist()}})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["model"]["version"], np.array(body["outputs"]["y"]["data"], dtype=np.float32)


def test_deploy_upgrade_downgrade_rollback_and_restart(agent, tmp_path):
    r1 = write_release(tmp_path / "r1", PUBLISHER, version="1.0.0", models={"model.onnx": V1})
    r2 = write_release(tmp_path / "r2", PUBLISHER, version="1.1.0", models={"model.onnx": V2})
    with agent.client() as client:
        status = client.get("/v1/status").json()
        assert (status["device_id"], status["active"], status["previous"], status["highest"]) == (DEVICE_ID, None,
                                                                                                  None, {})
        refused(client.post("/v1/infer", json={"inputs": {"x": X.tolist()}}), 503, "NO_ACTIVE_MODEL")

        assert push(client, r1)["status"] == "active"
        version, y = served(client)
        assert version == "1.0.0" and np.allclose(y, run(V1, X), atol=1e-6)

        record = push(client, r2)
        assert (record["status"], record["release"]["version"], record["release"]["sha256"]) == \
            ("active", "1.1.0", r2.identity)
        status = client.get("/v1/status").json()
        assert (status["active"]["version"], status["active"]["sha256"]) == ("1.1.0", r2.identity)
        assert (status["previous"]["version"], status["previous"]["sha256"]) == ("1.0.0", r1.identity)
        assert status["highest"] == {"quickstart": "1.1.0"}
        assert status["active"]["deployment_id"] == record["id"]
        version, y = served(client)
        assert version == "1.1.0" and np.allclose(y, run(V2, X), atol=1e-6)

        message = refused(client.post("/v1/deploy", json=deploy_body(r1)), 409, "DOWNGRADE")
        assert message == "quickstart 1.0.0 is not above 1.1.0, the highest version this device accepted"

        directive = rollback_envelope(PUBLISHER, from_sha256=r2.identity, to=r1)
        response = client.post("/v1/rollback", json={"directive": directive})
        assert response.status_code == 200, response.text
        assert (response.json()["kind"], response.json()["status"]) == ("rollback", "active")
        status = client.get("/v1/status").json()
        assert (status["active"]["version"], status["previous"]["version"]) == ("1.0.0", "1.1.0")
        assert status["highest"] == {"quickstart": "1.1.0"}  # a rollback never lowers the floor
        version, y = served(client)
        assert version == "1.0.0" and np.allclose(y, run(V1, X), atol=1e-6)

        refused(client.post("/v1/deploy", json=deploy_body(r1)), 409, "DOWNGRADE")
        refused(client.post("/v1/deploy", json=deploy_body(r2)), 409, "DOWNGRADE")
        assert metric(client, "edgegate_agent_refusals_total", code="DOWNGRADE") == 3
        assert metric(client, "edgegate_agent_swaps_total", kind="deploy") == 2
        assert metric(client, "edgegate_agent_swaps_total", kind="rollback") == 1
        assert metric(client, "edgegate_agent_active_release_info", name="quickstart", version="1.0.0",
                      sha256=r1.identity) == 1

    agent.stop()
    agent.start()
    with agent.client() as client:
        status = client.get("/v1/status").json()
        assert (status["active"]["version"], status["previous"]["version"]) == ("1.0.0", "1.1.0")
        assert status["highest"] == {"quickstart": "1.1.0"} and status["refusals"]["DOWNGRADE"] == 3
        assert served(client)[0] == "1.0.0"
        refused(client.post("/v1/deploy", json=deploy_body(r2)), 409, "DOWNGRADE")  # the floor survived
        # ... and so did the rollback target: going back up to 1.1.0 by directive loads it from disk.
        directive = rollback_envelope(PUBLISHER, from_sha256=r1.identity, to=r2)
        assert client.post("/v1/rollback", json={"directive": directive}).status_code == 200
        assert served(client)[0] == "1.1.0"


def test_a_higher_version_after_a_rollback_is_accepted(agent, tmp_path):
    """The way forward after a rollback is a new version; blobs already held are not sent again."""
    r1 = write_release(tmp_path / "r1", PUBLISHER, version="1.0.0", models={"model.onnx": V1})
    r2 = write_release(tmp_path / "r2", PUBLISHER, version="1.1.0", models={"model.onnx": V2})
    r3 = write_release(tmp_path / "r3", PUBLISHER, version="1.2.0", models={"model.onnx": V2})
    with agent.client() as client:
        push(client, r1)
        push(client, r2)
        assert client.post("/v1/rollback", json={"directive": rollback_envelope(
            PUBLISHER, from_sha256=r2.identity, to=r1)}).status_code == 200
        assert upload(client, r3) == []  # HEAD says the agent holds it
        assert push(client, r3)["status"] == "active"
        status = client.get("/v1/status").json()
        assert (status["active"]["version"], status["previous"]["version"], status["highest"]["quickstart"]) == \
            ("1.2.0", "1.0.0", "1.2.0")


def test_multi_file_model_with_external_data_is_served(agent, tmp_path):
    from .models import external_data_files

    files = external_data_files(7)
    release = write_release(tmp_path / "r", PUBLISHER, version="2.0.0", models=files)
    with agent.client() as client:
        assert push(client, release)["status"] == "active"
        version, y = served(client)
        assert version == "2.0.0" and np.allclose(y, run(linear_bytes(7), X), atol=1e-6)
