"""The signed way down: a rollback directive is refused unless every rule holds, each with its code;
nothing changes on a refusal; a cohort directive works for a device in that cohort."""

from __future__ import annotations

import pytest

from .fixtures import PUBLISHER, REVOKED, STRANGER, metric, refused
from .models import linear_bytes
from .releases import push, rollback_envelope, utc, write_release


@pytest.fixture(scope="module")
def setup(tmp_path_factory, pki):
    """An agent on 1.1.0 holding 1.0.0 as its rollback target (shared: every test but the last refuses)."""
    from .fixtures import AgentProcess

    root = tmp_path_factory.mktemp("rollback")
    agent = AgentProcess(root / "agent", pki, warmup=1).start()
    r1 = write_release(root / "r1", PUBLISHER, version="1.0.0", models={"model.onnx": linear_bytes(51)})
    r2 = write_release(root / "r2", PUBLISHER, version="1.1.0", models={"model.onnx": linear_bytes(52)})
    r3 = write_release(root / "r3", PUBLISHER, version="0.9.0", models={"model.onnx": linear_bytes(53)})
    with agent.client() as client:
        push(client, r1)
        push(client, r2)
    yield agent, r1, r2, r3
    agent.stop()


def refuse(agent, envelope_or_body, status: int, code: str) -> str:
    with agent.client() as client:
        before = client.get("/v1/status").json()
        count = metric(client, "edgegate_agent_refusals_total", code=code)
        body = envelope_or_body if "directive" in envelope_or_body else {"directive": envelope_or_body}
        message = refused(client.post("/v1/rollback", json=body), status, code)
        after = client.get("/v1/status").json()
        assert metric(client, "edgegate_agent_refusals_total", code=code) == count + 1
    assert (after["active"], after["previous"], after["highest"]) == (before["active"], before["previous"],
                                                                      before["highest"])
    assert after["recent_refusals"][-1]["code"] == code
    return message


@pytest.mark.parametrize("signer,status,code", [(STRANGER, 403, "KEY_UNTRUSTED"), (REVOKED, 403, "KEY_REVOKED")])
def test_untrusted_and_revoked_signers(setup, signer, status, code):
    agent, r1, r2, _ = setup
    refuse(agent, rollback_envelope(signer, from_sha256=r2.identity, to=r1), status, code)


def test_altered_directive(setup):
    agent, r1, r2, r3 = setup
    envelope = rollback_envelope(PUBLISHER, from_sha256=r2.identity, to=r1)
    envelope["payload"] = rollback_envelope(PUBLISHER, from_sha256=r2.identity, to=r3)["payload"]
    assert refuse(agent, envelope, 403, "SIGNATURE_INVALID").startswith("directive: bad signature by key")


def test_expired_directive(setup):
    agent, r1, r2, _ = setup
    envelope = rollback_envelope(PUBLISHER, from_sha256=r2.identity, to=r1, issued_at=utc(minutes=-20),
                                 expires_at=utc(minutes=-10))
    assert "rollback directive for ro-test expired at" in refuse(agent, envelope, 422, "MANIFEST_EXPIRED")


def test_directive_issued_in_the_future(setup):
    agent, r1, r2, _ = setup
    envelope = rollback_envelope(PUBLISHER, from_sha256=r2.identity, to=r1, issued_at=utc(minutes=30),
                                 expires_at=utc(minutes=40))
    assert "is in the future" in refuse(agent, envelope, 409, "REPLAY")


def test_another_device_or_cohort(setup):
    agent, r1, r2, _ = setup
    envelope = rollback_envelope(PUBLISHER, from_sha256=r2.identity, to=r1, device_id="dev-2", cohort="eu")
    assert refuse(agent, envelope, 422, "WRONG_DEVICE") == \
        "the directive names device dev-2 / cohort eu; this is dev-1 in cohorts canary"


def test_from_must_be_the_active_model(setup):
    agent, r1, _, _ = setup
    assert refuse(agent, rollback_envelope(PUBLISHER, from_sha256=r1.identity, to=r1), 409,
                  "ROLLBACK_MISMATCH").startswith(f"the directive leaves {r1.identity}, but the active model is ")


def test_to_must_be_the_held_model(setup):
    """Only to a release the device still holds: 0.9.0 was never deployed here."""
    agent, _, r2, r3 = setup
    message = refuse(agent, rollback_envelope(PUBLISHER, from_sha256=r2.identity, to=r3), 409, "NO_ROLLBACK_TARGET")
    assert message.endswith("this device holds quickstart 1.0.0 (" + setup[1].identity + ") as its rollback target")


def test_a_deploy_envelope_is_not_a_directive(setup):
    agent, r1, _, _ = setup
    assert refuse(agent, r1.envelope, 400, "MANIFEST_INVALID").startswith(
        "directive: payloadType is application/vnd.edgegate.release+json, expected "
        "application/vnd.edgegate.rollback+json")
    assert refuse(agent, {"directive": r1.envelope, "extra": 1}, 400, "INVALID_REQUEST") == \
        'the body must be {"directive": <signed rollback directive>}'


def test_cohort_directive_applies_once(setup):
    """Named by cohort (not device id): accepted; the same directive again is a REPLAY. Runs last."""
    agent, r1, r2, _ = setup
    envelope = rollback_envelope(PUBLISHER, from_sha256=r2.identity, to=r1, device_id=None, cohort="canary")
    with agent.client() as client:
        response = client.post("/v1/rollback", json={"directive": envelope})
        assert response.status_code == 200, response.text
        record = response.json()
        assert (record["kind"], record["status"], record["signer"], record["release"]["version"]) == \
            ("rollback", "active", PUBLISHER.key_id, "1.0.0")
        assert client.get("/v1/status").json()["active"]["version"] == "1.0.0"
    assert refuse(agent, envelope, 409, "REPLAY").startswith("directive nonce ")
