"""The signed rollback directive: builder, strict parser, verification with distinct codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from edgegate_cli.canonical import canonical_json
from edgegate_cli.errors import InvalidInput, VerificationFailed
from edgegate_cli.evidence import rollback_directive as rd
from edgegate_cli.evidence.keys import signer_from_seed

SIGNER = signer_from_seed(bytes(range(32)))
OTHER = signer_from_seed(bytes(range(1, 33)))
TRUSTED = {SIGNER.key_id: (SIGNER.public_key, None)}
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def directive(**overrides) -> dict:
    fields = dict(rollout_id="ro-1", device_id="dev-1", from_sha256="sha256:" + "a" * 64, to_name="quickstart",
                  to_version="1.0.0", to_sha256="sha256:" + "b" * 64, nonce="0" * 32,
                  issued_at="2026-06-01T11:59:00.000000Z", expires_at="2026-06-01T13:00:00.000000Z")
    fields.update(overrides)
    return rd.build_rollback_directive(**fields)


def refusal(envelope, trusted=TRUSTED) -> tuple[str, str]:
    with pytest.raises(VerificationFailed) as exc:
        rd.verify_rollback_envelope(envelope, trusted, now=NOW, where="rollback")
    return exc.value.code, exc.value.message


def test_round_trip():
    result = rd.verify_rollback_envelope(rd.sign_rollback_directive(directive(), SIGNER), TRUSTED, now=NOW,
                                         where="rollback")
    assert result == rd.RollbackDirective(
        rollout_id="ro-1", device_id="dev-1", cohort=None, from_sha256="sha256:" + "a" * 64, to_name="quickstart",
        to_version="1.0.0", to_sha256="sha256:" + "b" * 64, nonce="0" * 32, issued_at="2026-06-01T11:59:00.000000Z",
        expires_at="2026-06-01T13:00:00.000000Z", signer=SIGNER.key_id)


def test_payload_is_canonical_with_the_rollback_payload_type():
    env = rd.sign_rollback_directive(directive(), SIGNER)
    assert env["payloadType"] == "application/vnd.edgegate.rollback+json"
    import base64
    assert base64.b64decode(env["payload"]) == canonical_json(directive())


@pytest.mark.parametrize("overrides,expected", [
    ({"device_id": None}, "rollback directive: device_id and cohort are both null"),
    ({"nonce": "xyz"}, "rollback directive: nonce is xyz, not 32 to 64 lowercase hex digits"),
    ({"to_version": "1"}, "rollback directive: to_version is 1, not a semver 2.0 version"),
    ({"from_sha256": "abc"}, "rollback directive: from_sha256 is abc, not sha256:<64 lowercase hex>"),
    ({"expires_at": "2026-06-01T11:00:00.000000Z"}, "rollback directive: expires_at 2026-06-01T11:00:00.000000Z "
                                                    "is not after issued_at"),
])
def test_builder_refuses_bad_fields(overrides, expected):
    with pytest.raises(InvalidInput) as exc:
        directive(**overrides)
    assert exc.value.message.startswith(expected)


def test_parser_refuses_unknown_fields_and_pretty_json():
    doc = directive()
    with pytest.raises(VerificationFailed, match=r"unknown field\(s\) \['x'\]"):
        rd.parse_rollback_payload(canonical_json({**doc, "x": 1}), where="d")
    with pytest.raises(VerificationFailed, match="not the canonical JSON"):
        rd.parse_rollback_payload(json.dumps(doc, indent=2).encode(), where="d")


def test_refusal_codes():
    assert refusal(rd.sign_rollback_directive(directive(), OTHER))[0] == "KEY_UNTRUSTED"
    revoked = {SIGNER.key_id: (SIGNER.public_key, "2026-06-01T00:00:00.000000Z")}
    assert refusal(rd.sign_rollback_directive(directive(), SIGNER), revoked)[0] == "KEY_REVOKED"
    expired = directive(issued_at="2026-06-01T10:00:00.000000Z", expires_at="2026-06-01T11:00:00.000000Z")
    assert refusal(rd.sign_rollback_directive(expired, SIGNER)) == (
        "MANIFEST_EXPIRED", "rollback: rollback directive for ro-1 expired at 2026-06-01T11:00:00.000000Z")
    env = rd.sign_rollback_directive(directive(), SIGNER)
    env["payloadType"] = "application/vnd.edgegate.release+json"
    assert refusal(env)[0] == "MANIFEST_INVALID"
