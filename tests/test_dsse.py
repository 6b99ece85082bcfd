"""DSSE envelopes: PAE per the spec, sign/verify round trip, independent verification, tamper matrix."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgegate_cli.errors import VerificationFailed
from edgegate_cli.evidence import dsse
from edgegate_cli.evidence.keys import signer_from_seed

SIGNER = signer_from_seed(bytes(range(32)))
OTHER = signer_from_seed(bytes(range(1, 33)))
PAYLOAD = json.dumps({"_type": dsse.IN_TOTO_STATEMENT_TYPE, "predicate": {"verdict": "pass"}}).encode()
SIGNED_AT = "2025-06-01T12:00:00Z"
TRUSTED = {SIGNER.key_id: (SIGNER.public_key, None)}


def spec_pae(payload_type: str, payload: bytes) -> bytes:
    """PAE written straight from the DSSE spec (protocol.md), independently of edgegate_cli.evidence.dsse:

    PAE(type, body) = "DSSEv1" + SP + LEN(type) + SP + type + SP + LEN(body) + SP + body
    where LEN(s) is the ASCII decimal encoding of the byte length of s, with no leading zeros.
    """
    t = payload_type.encode("utf-8")
    return b"".join([b"DSSEv1", b" ", str(len(t)).encode("ascii"), b" ", t, b" ",
                     str(len(payload)).encode("ascii"), b" ", payload])


def verify(envelope, trusted=TRUSTED, expected=dsse.EVIDENCE_PAYLOAD_TYPE, signed_at=SIGNED_AT):
    return dsse.verify_envelope(envelope, trusted, expected_payload_type=expected, signed_at=signed_at)


def failure(envelope, **kwargs) -> str:
    with pytest.raises(VerificationFailed) as exc:
        verify(envelope, **kwargs)
    return exc.value.message


def test_pae_matches_the_spec_example():
    """The example from DSSE protocol.md."""
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "
    assert dsse.pae("t/\u00e9", b"\x00\xff") == spec_pae("t/\u00e9", b"\x00\xff") == b"DSSEv1 4 t/\xc3\xa9 2 \x00\xff"


def test_sign_envelope_shape():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)
    assert set(env) == {"payloadType", "payload", "signatures"}
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(env["payload"]) == PAYLOAD
    assert [set(s) for s in env["signatures"]] == [{"keyid", "sig"}]
    assert env["signatures"][0]["keyid"] == SIGNER.key_id


def test_round_trip_returns_payload_and_key_id():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)
    assert verify(env) == (PAYLOAD, SIGNER.key_id)


def test_independent_verification_with_cryptography():
    """A standard Ed25519 implementation checks the signature over the spec's PAE: no EdgeGate code involved."""
    env = json.loads(json.dumps(dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)))
    payload = base64.b64decode(env["payload"])
    sig = base64.b64decode(env["signatures"][0]["sig"])
    public = Ed25519PublicKey.from_public_bytes(SIGNER.public_key)
    assert payload == PAYLOAD
    public.verify(sig, spec_pae(env["payloadType"], payload))  # raises InvalidSignature if it does not verify
    with pytest.raises(InvalidSignature):  # and the same check refuses a one-bit change
        public.verify(sig, spec_pae(env["payloadType"], payload[:-1] + bytes([payload[-1] ^ 1])))


def test_url_safe_base64_is_accepted():
    """DSSE allows standard or URL-safe base64."""
    env = dsse.sign_envelope(b"\xfb\xff" * 10, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)
    env["payload"] = base64.urlsafe_b64encode(b"\xfb\xff" * 10).decode()
    assert "-" in env["payload"] or "_" in env["payload"]
    assert verify(env) == (b"\xfb\xff" * 10, SIGNER.key_id)


def test_flipped_payload_byte_is_a_bad_signature():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)
    tampered = bytearray(PAYLOAD)
    tampered[10] ^= 0x01
    env["payload"] = base64.b64encode(bytes(tampered)).decode()
    assert failure(env) == f"bad signature by key {SIGNER.key_id} (the payload or the signature was altered)"


def test_flipped_signature_byte_is_a_bad_signature():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[0] ^= 0x80
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    assert failure(env) == f"bad signature by key {SIGNER.key_id} (the payload or the signature was altered)"


def test_valid_signature_over_another_payload_type_is_refused():
    """A release envelope can't pass as evidence, even with a good signature by a trusted key."""
    env = dsse.sign_envelope(PAYLOAD, dsse.RELEASE_PAYLOAD_TYPE, SIGNER)
    assert failure(env) == ("payloadType is application/vnd.edgegate.release+json, "
                            "expected application/vnd.in-toto+json")
    assert verify(env, expected=dsse.RELEASE_PAYLOAD_TYPE) == (PAYLOAD, SIGNER.key_id)


def test_relabelled_payload_type_breaks_the_signature():
    """Changing payloadType after signing is caught: PAE binds the type."""
    env = dsse.sign_envelope(PAYLOAD, dsse.RELEASE_PAYLOAD_TYPE, SIGNER)
    env["payloadType"] = dsse.EVIDENCE_PAYLOAD_TYPE
    assert failure(env) == f"bad signature by key {SIGNER.key_id} (the payload or the signature was altered)"


def test_untrusted_key_is_refused_with_a_hint():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, OTHER)
    with pytest.raises(VerificationFailed) as exc:
        verify(env)
    assert exc.value.message == f"signature by untrusted key {OTHER.key_id}"
    assert exc.value.hint == "pass the signer's public key with --key if you trust it"


def test_key_id_claiming_a_trusted_key_does_not_help_another_signer():
    """The keyid is only a hint: a signature by OTHER labelled with SIGNER's id fails as a bad signature."""
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, OTHER)
    env["signatures"][0]["keyid"] = SIGNER.key_id
    assert failure(env) == f"bad signature by key {SIGNER.key_id} (the payload or the signature was altered)"


def test_key_revoked_before_signing_time_is_refused():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)
    trusted = {SIGNER.key_id: (SIGNER.public_key, "2025-05-31T00:00:00.000000Z")}
    assert failure(env, trusted=trusted) == (
        f"signature by key {SIGNER.key_id}, revoked at 2025-05-31T00:00:00.000000Z, "
        "before the signing time 2025-06-01T12:00:00.000000Z")


def test_key_revoked_at_the_signing_instant_is_refused():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)
    trusted = {SIGNER.key_id: (SIGNER.public_key, "2025-06-01T12:00:00.000000Z")}
    assert failure(env, trusted=trusted).startswith(f"signature by key {SIGNER.key_id}, revoked at ")


def test_key_revoked_after_signing_still_verifies():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)
    trusted = {SIGNER.key_id: (SIGNER.public_key, "2025-06-01T12:00:00.000001Z")}
    assert verify(env, trusted=trusted) == (PAYLOAD, SIGNER.key_id)


def test_one_good_signature_among_several_is_enough():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)
    extra = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, OTHER)["signatures"]
    env["signatures"] = extra + env["signatures"]
    assert verify(env) == (PAYLOAD, SIGNER.key_id)
    env["signatures"] = extra
    assert failure(env) == f"signature by untrusted key {OTHER.key_id}"


def test_where_prefixes_messages():
    env = dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, OTHER)
    with pytest.raises(VerificationFailed) as exc:
        dsse.verify_envelope(env, TRUSTED, expected_payload_type=dsse.EVIDENCE_PAYLOAD_TYPE,
                             signed_at=SIGNED_AT, where="summary.dsse.json")
    assert exc.value.message == f"summary.dsse.json: signature by untrusted key {OTHER.key_id}"


def _good() -> dict:
    return dsse.sign_envelope(PAYLOAD, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)


@pytest.mark.parametrize("mutate, detail", [
    (lambda e: [], "not a JSON object"),
    (lambda e: {k: v for k, v in e.items() if k != "payloadType"}, "payloadType is missing or not a string"),
    (lambda e: {**e, "payload": "***"}, "payload is missing or not base64"),
    (lambda e: {**e, "payload": 5}, "payload is missing or not base64"),
    (lambda e: {**e, "signatures": []}, "signatures is missing or empty"),
    (lambda e: {**e, "signatures": "x"}, "signatures is missing or empty"),
    (lambda e: {**e, "signatures": [{"sig": e["signatures"][0]["sig"]}]},
     "signatures[0].keyid is missing or not a string"),
    (lambda e: {**e, "signatures": [{"keyid": SIGNER.key_id, "sig": "%%"}]},
     "signatures[0].sig is missing or not base64"),
])
def test_malformed_envelopes(mutate, detail):
    assert failure(mutate(_good())) == f"malformed DSSE envelope: {detail}"


def test_truncated_signature_is_a_bad_signature():
    env = _good()
    env["signatures"][0]["sig"] = base64.b64encode(b"\x01" * 10).decode()
    assert failure(env) == f"bad signature by key {SIGNER.key_id} (the payload or the signature was altered)"


def test_hostile_key_id_is_shown_on_one_line():
    env = _good()
    env["signatures"][0]["keyid"] = "evil\nkey"
    assert failure(env) == "signature by untrusted key 'evil\\nkey'"
