"""Every refusal of SPEC §10.3, against a real agent process: answered 4xx with its code, counted in
/metrics, recorded in the state, and nothing changed. Each test uses its own release name, so the
tests share one agent process."""

from __future__ import annotations

import base64
import secrets

import pytest

from edgegate_cli.evidence import dsse

from .fixtures import PUBLISHER, REVOKED, STRANGER, metric, refused
from .models import fails_at_run_bytes, linear_bytes
from .releases import deploy_body, push, upload, utc, wait_deployment, write_release

MODEL = linear_bytes(3)


@pytest.fixture
def client(shared_agent):
    with shared_agent.client() as client:
        yield client


def release(tmp_path, name: str, signer=PUBLISHER, version: str = "1.0.0", models=None, **kwargs):
    return write_release(tmp_path / f"{name}-{version}", signer, name=name, version=version,
                         models=models or {"model.onnx": MODEL}, **kwargs)


def refuse_deploy(client, rel, status: int, code: str, **body) -> str:
    """Upload the release, deploy it, and check the refusal: code, metric +1, recorded, no state change."""
    upload(client, rel)
    before = client.get("/v1/status").json()
    count = metric(client, "edgegate_agent_refusals_total", code=code)
    message = refused(client.post("/v1/deploy", json=deploy_body(rel, **body)), status, code)
    after = client.get("/v1/status").json()
    assert metric(client, "edgegate_agent_refusals_total", code=code) == count + 1
    assert after["refusals"][code] == before["refusals"].get(code, 0) + 1
    assert after["recent_refusals"][-1]["code"] == code
    for key in ("active", "previous", "highest", "deployment"):
        assert after[key] == before[key]
    return message


def test_signature_invalid(client, tmp_path):
    rel = release(tmp_path, "sig")
    other = release(tmp_path, "sig", version="9.0.0")
    forged = dict(rel.envelope, payload=other.envelope["payload"])  # 9.0.0's payload under 1.0.0's signature
    upload(client, other)
    message = refused(client.post("/v1/deploy", json=deploy_body(forged)), 403, "SIGNATURE_INVALID")
    assert message == f"manifest: bad signature by key {PUBLISHER.key_id} (the payload or the signature was altered)"


def test_key_untrusted(client, tmp_path):
    message = refuse_deploy(client, release(tmp_path, "untrusted", STRANGER), 403, "KEY_UNTRUSTED")
    assert message == f"manifest: signed by untrusted key {STRANGER.key_id}"


def test_key_revoked_whatever_the_claimed_time(client, tmp_path):
    """The revoked key signs a manifest 'created' now; the revocation (2026-01-01) refuses it anyway."""
    message = refuse_deploy(client, release(tmp_path, "revoked", REVOKED), 403, "KEY_REVOKED")
    assert message == f"manifest: signed by key {REVOKED.key_id}, revoked at 2026-01-01T00:00:00.000000Z"


def test_manifest_expired(client, tmp_path):
    rel = release(tmp_path, "expired", expires_at=utc(minutes=-1))
    assert refuse_deploy(client, rel, 422, "MANIFEST_EXPIRED").startswith("manifest: expired 1.0.0 expired at ")


def test_evidence_envelope_is_not_a_release(client, tmp_path):
    rel = release(tmp_path, "evidence")
    payload = base64.b64decode(rel.envelope["payload"])
    envelope = dsse.sign_envelope(payload, dsse.EVIDENCE_PAYLOAD_TYPE, PUBLISHER)
    message = refused(client.post("/v1/deploy", json=deploy_body(envelope)), 400, "MANIFEST_INVALID")
    assert message.startswith("manifest: payloadType is application/vnd.in-toto+json")


def test_downgrade_and_equal_version(client, tmp_path):
    assert push(client, release(tmp_path, "down", version="2.0.0"))["status"] == "active"
    assert refuse_deploy(client, release(tmp_path, "down", version="1.9.9"), 409, "DOWNGRADE") == \
        "down 1.9.9 is not above 2.0.0, the highest version this device accepted"
    # the same version signed again (another build) is not above the floor either
    rebuilt = release(tmp_path / "rebuilt", "down", version="2.0.0+rebuild", models={"model.onnx": linear_bytes(4)})
    refuse_deploy(client, rebuilt, 409, "DOWNGRADE")


def test_replay_of_a_nonce(client, tmp_path):
    rel = release(tmp_path, "replay")
    upload(client, rel)
    body = deploy_body(rel)
    accepted = client.post("/v1/deploy", json=body)
    assert accepted.status_code == 202
    wait_deployment(client, accepted.json()["id"])
    assert refused(client.post("/v1/deploy", json=body), 409, "REPLAY") == f"nonce {body['nonce']} was already used"


@pytest.mark.parametrize("minutes", [-6, 6])
def test_replay_outside_the_time_window(client, tmp_path, minutes):
    rel = release(tmp_path, f"stale{minutes + 10}")
    message = refuse_deploy(client, rel, 409, "REPLAY", issued_at=utc(minutes=minutes))
    assert "is more than 300 s from the device clock" in message


def test_incompatible_device_type(client, tmp_path):
    rel = release(tmp_path, "compat", compatible=["qcs8550", "qcs6490"])
    assert refuse_deploy(client, rel, 422, "INCOMPATIBLE") == \
        "compat 1.0.0 is for device types qcs8550, qcs6490; this device is test-board"


def test_incompatible_format(client, tmp_path):
    rel = release(tmp_path, "tfl", models={"model.tflite": b"TFL3 not really"}, model_format="tflite")
    assert "is a tflite model; this agent serves onnx, onnx_external, aimet" in \
        refuse_deploy(client, rel, 422, "INCOMPATIBLE")


def test_no_evidence(client, tmp_path):
    rel = release(tmp_path, "noev", evidence=False)
    assert refuse_deploy(client, rel, 422, "NO_EVIDENCE") == \
        "noev 1.0.0 was published without evidence and this device requires it"


def test_blob_never_uploaded(client, tmp_path):
    rel = release(tmp_path, "missing", models={"model.onnx": linear_bytes(99)})
    count = metric(client, "edgegate_agent_refusals_total", code="BLOB_MISSING")
    message = refused(client.post("/v1/deploy", json=deploy_body(rel)), 409, "BLOB_MISSING")
    assert message.startswith("1 blob(s) not on this device: model/model.onnx (sha256:")
    assert metric(client, "edgegate_agent_refusals_total", code="BLOB_MISSING") == count + 1


def test_manifest_length_differs_from_the_held_blob(client, tmp_path):
    """A signed manifest that declares another size for a blob the agent holds: LENGTH_MISMATCH."""
    rel = release(tmp_path, "length", declared_sizes={"model.onnx": len(MODEL) + 1})
    assert refuse_deploy(client, rel, 422, "LENGTH_MISMATCH").startswith(
        f"model/model.onnx: blob {rel.identity} holds {len(MODEL)} bytes, the manifest says {len(MODEL) + 1}")


def test_load_failed_leaves_the_active_model_serving(client, tmp_path):
    """A model ONNX Runtime cannot load, and one whose warm-up fails: accepted (202), then the deployment
    fails with LOAD_FAILED and the active model keeps serving."""
    good = release(tmp_path, "load", version="1.0.0")
    push(client, good)
    messages = []
    for version, data in (("1.1.0", b"\x08\x07 not an onnx model"), ("1.2.0", fails_at_run_bytes())):
        bad = release(tmp_path, "load", version=version, models={"model.onnx": data})
        before = metric(client, "edgegate_agent_refusals_total", code="LOAD_FAILED")
        record = push(client, bad)
        assert (record["status"], record["code"]) == ("failed", "LOAD_FAILED")
        assert metric(client, "edgegate_agent_refusals_total", code="LOAD_FAILED") == before + 1
        status = client.get("/v1/status").json()
        assert status["recent_refusals"][-1]["code"] == "LOAD_FAILED"
        assert status["highest"]["load"] == version  # accepted, so the floor moved: a fix needs a new version
        assert (status["active"]["version"], status["serving"]["version"]) == ("1.0.0", "1.0.0")
        messages.append(record["message"])
    assert messages[0].startswith("load 1.1.0: ONNX Runtime cannot load model.onnx: ")
    assert messages[1].startswith("load 1.2.0: warm-up inference 1 of 2 failed: ")


def test_unknown_deployment_is_404(client):
    assert refused(client.get("/v1/deployments/dep-000000000000"), 404, "NOT_FOUND") == \
        "no deployment 'dep-000000000000' on this device"


def test_second_deploy_while_one_is_in_flight_is_refused(agent_factory, tmp_path):
    """One deployment at a time: while the first warms up (slowly: 2 x 1 s injected), a second deploy gets
    409 DEPLOY_IN_PROGRESS naming the first; once it is active, the second goes through."""
    slow = agent_factory(warmup=2, inject_latency_ms=1000)
    first, second = release(tmp_path, "busy", version="1.0.0"), release(tmp_path, "busy", version="1.1.0")
    with slow.client() as client:
        upload(client, first)
        upload(client, second)
        accepted = client.post("/v1/deploy", json=deploy_body(first))
        assert accepted.status_code == 202
        message = refused(client.post("/v1/deploy", json=deploy_body(second)), 409, "DEPLOY_IN_PROGRESS")
        assert message.startswith(f"deployment {accepted.json()['id']} (busy 1.0.0) is ")
        assert wait_deployment(client, accepted.json()["id"])["status"] == "active"
        assert push(client, second)["status"] == "active"


def test_nonce_must_be_fresh_random_text(client, tmp_path):
    rel = release(tmp_path, "nonce")
    message = refused(client.post("/v1/deploy", json=deploy_body(rel, nonce="short")), 400, "INVALID_REQUEST")
    assert message == "nonce is missing or not 16-128 characters of [A-Za-z0-9_-]"
    body = deploy_body(rel, nonce=secrets.token_hex(16))
    body["urls"] = ["s3://bucket/x"]
    assert refused(client.post("/v1/deploy", json=body), 400, "INVALID_REQUEST").startswith("unknown field 'urls'")
