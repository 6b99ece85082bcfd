"""The release manifest contract: builder, canonical bytes, strict parser, and verification whose
refusals carry distinct codes (SIGNATURE_INVALID, KEY_UNTRUSTED, KEY_REVOKED, MANIFEST_EXPIRED,
MANIFEST_INVALID)."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime

import pytest

from edgegate_cli.canonical import canonical_json
from edgegate_cli.errors import InvalidInput, VerificationFailed
from edgegate_cli.evidence import dsse
from edgegate_cli.evidence import release_manifest as rm
from edgegate_cli.evidence.keys import signer_from_seed

SIGNER = signer_from_seed(bytes(range(32)))
OTHER = signer_from_seed(bytes(range(1, 33)))
TRUSTED = {SIGNER.key_id: (SIGNER.public_key, None)}
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HEX_A, HEX_B = "a" * 64, "b" * 64


def statement(**overrides) -> dict:
    fields = dict(name="quickstart", version="1.0.0", channel="stable", created_at="2026-05-01T00:00:00.000000Z",
                  model_format="onnx_external", identity="sha256:" + "c" * 64, publisher=SIGNER.key_id,
                  edgegate_version="0.1.0",
                  files=[{"path": "model.onnx", "sha256": "sha256:" + HEX_A, "size": 10},
                         {"path": "model.data", "sha256": "sha256:" + HEX_B, "size": 20}])
    fields.update(overrides)
    return rm.build_release_statement(**fields)


def envelope_of(doc: dict, signer=SIGNER) -> dict:
    return rm.sign_release(doc, signer)


def raw_envelope(payload: bytes, signer=SIGNER, payload_type=rm.PAYLOAD_TYPE) -> dict:
    return dsse.sign_envelope(payload, payload_type, signer)


def refusal(envelope, trusted=TRUSTED, now=NOW) -> tuple[str, str]:
    with pytest.raises(VerificationFailed) as exc:
        rm.verify_release_envelope(envelope, trusted, now=now, where="release.dsse.json")
    return exc.value.code, exc.value.message


def test_builder_sorts_files_and_lists_them_as_subjects():
    """Subjects are the model files (path as name) in path order; files are in the same order."""
    doc = statement()
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://edgegate.dev/release/v1"
    assert doc["subject"] == [{"name": "model.data", "digest": {"sha256": HEX_B}},
                              {"name": "model.onnx", "digest": {"sha256": HEX_A}}]
    assert [f["path"] for f in doc["predicate"]["model"]["files"]] == ["model.data", "model.onnx"]


def test_payload_is_canonical_json_and_stable():
    """Sorted keys, no spaces, UTF-8, no trailing newline: the same release gives the same bytes."""
    payload = rm.release_payload(statement())
    assert payload == rm.release_payload(statement())
    assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False).encode()
    assert not payload.endswith(b"\n") and b": " not in payload


def test_round_trip_gives_every_field():
    doc = statement(expires_at="2026-07-01T00:00:00.000000Z", compatible=["qcs6490"],
                    reference={"inputs": {"sha256": "sha256:" + HEX_A, "size": 5},
                               "outputs": {"sha256": "sha256:" + HEX_B, "size": 6}})
    manifest = rm.verify_release_envelope(envelope_of(doc), TRUSTED, now=NOW, where="x")
    assert (manifest.name, manifest.version, manifest.channel, manifest.model_format) == \
        ("quickstart", "1.0.0", "stable", "onnx_external")
    assert manifest.files == (rm.ReleaseFile("model.data", "sha256:" + HEX_B, 20),
                              rm.ReleaseFile("model.onnx", "sha256:" + HEX_A, 10))
    assert manifest.compatible == ("qcs6490",) and manifest.reference["inputs"]["size"] == 5
    assert manifest.evidence is None and manifest.publisher == SIGNER.key_id
    assert manifest.raw_payload == rm.release_payload(doc)
    import hashlib
    assert manifest.payload_sha256 == "sha256:" + hashlib.sha256(manifest.raw_payload).hexdigest()


def test_envelope_file_text_is_sorted_indented_json_with_newline():
    env = envelope_of(statement())
    text = rm.envelope_text(env)
    assert text == json.dumps(env, sort_keys=True, indent=2) + "\n"


@pytest.mark.parametrize("overrides,expected", [
    ({"name": "Quick/start"}, "release manifest: name is Quick/start, not a name of [a-z0-9._-]"),
    ({"version": "v1.0"}, "release manifest: version is v1.0, not a semver 2.0 version (e.g. 1.2.0)"),
    ({"created_at": "2026-05-01"}, "release manifest: created_at is 2026-05-01, not a UTC time"),
    ({"model_format": "pickle"}, "release manifest: model.format is pickle, expected one of onnx"),
    ({"files": [{"path": "../model.onnx", "sha256": "sha256:" + HEX_A, "size": 1}]},
     "release manifest: model.files[0].path is ../model.onnx, not a relative POSIX path"),
    ({"files": [{"path": "m.onnx", "sha256": HEX_A, "size": 1}]},
     "release manifest: model.files[0].sha256 is"),
    ({"files": [{"path": "m.onnx", "sha256": "sha256:" + HEX_A}]}, "release manifest: model.files:"),
])
def test_builder_refuses_what_the_parser_would_refuse(overrides, expected):
    """publish can never write a manifest that agents refuse: the builder raises InvalidInput naming the field."""
    with pytest.raises(InvalidInput) as exc:
        statement(**overrides)
    assert exc.value.message.startswith(expected)


def mutated(mutate) -> bytes:
    doc = copy.deepcopy(statement())
    mutate(doc)
    return canonical_json(doc)


def parse_error(payload: bytes) -> str:
    with pytest.raises(VerificationFailed) as exc:
        rm.parse_release_payload(payload, where="m")
    assert exc.value.code == "MANIFEST_INVALID"
    return exc.value.message


def test_parser_refuses_non_canonical_bytes():
    """Pretty-printed JSON of a valid statement is refused: the payload must be the canonical bytes."""
    pretty = json.dumps(statement(), indent=1).encode()
    assert parse_error(pretty) == "m: payload is not the canonical JSON of an object"


def test_parser_refuses_duplicate_keys_and_nan():
    payload = rm.release_payload(statement())
    assert parse_error(payload[:-1] + b',"predicate":{}}') == "m: payload is not the canonical JSON of an object"
    assert parse_error(b'{"a":NaN}').startswith("m: payload is not UTF-8 JSON (NaN is not JSON")
    assert parse_error(b"\xff").startswith("m: payload is not UTF-8 JSON")


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d["predicate"].pop("channel"), "m: predicate has missing field(s) ['channel'] / unknown field(s) []"),
    (lambda d: d["predicate"].update(extra=1), "m: predicate has missing field(s) [] / unknown field(s) ['extra']"),
    (lambda d: d["predicate"].update(release_format=2), "m: release_format is 2; this EdgeGate reads format 1"),
    (lambda d: d["predicate"].update(release_format=True), "m: release_format is True"),
    (lambda d: d.update(predicateType=dsse.EVIDENCE_PREDICATE_TYPE), "m: predicateType is "
                                                                     "https://edgegate.dev/evidence/v1, expected"),
    (lambda d: d["subject"].reverse(), "m: subject does not list the model files"),
    (lambda d: d["predicate"]["model"]["files"].reverse(), "m: model.files is not in path order"),
    (lambda d: d["predicate"]["model"]["files"][0].update(size=True), "m: model.files[0].size is True"),
    (lambda d: d["predicate"]["model"]["files"][0].update(size=rm.MAX_FILE_BYTES + 1), "m: model.files[0].size is"),
    (lambda d: d["predicate"]["model"]["files"][0].update(path="/etc/passwd"), "m: model.files[0].path is"),
    (lambda d: d["predicate"]["model"]["files"][0].update(path="a\\b"), "m: model.files[0].path is"),
    (lambda d: d["predicate"]["model"]["files"][0].update(path="a/./b"), "m: model.files[0].path is"),
    (lambda d: d["predicate"]["model"]["files"].append(d["predicate"]["model"]["files"][-1]),
     "m: model.files is not in path order without duplicates"),
    (lambda d: d["predicate"]["model"].update(files=[]), "m: model.files is not a non-empty list"),
    (lambda d: d["predicate"].update(name="x\x1b[31m"), "m: name is 'x\\x1b[31m'"),
    (lambda d: d["predicate"].update(publisher="alice"), "m: publisher is alice, not a key id"),
    (lambda d: d["predicate"].update(compatible="qcs6490"), "m: compatible is not a list"),
    (lambda d: d["predicate"].update(evidence={"verdict": "passed"}), "m: evidence has missing field(s)"),
    (lambda d: d["predicate"].update(reference={"inputs": {"sha256": "x", "size": 1}, "outputs": None}),
     "m: reference.inputs.sha256 is x"),
    (lambda d: d["predicate"]["model"].update(input_specs={"x": {"shape": [1, -1]}}),
     "m: model.input_specs.x.shape is not a list of positive integers"),
])
def test_parser_refuses_each_broken_field_by_name(mutate, expected):
    assert parse_error(mutated(mutate)).startswith(expected)


def test_verify_accepts_a_trusted_signature():
    manifest = rm.verify_release_envelope(envelope_of(statement()), TRUSTED, now=NOW, where="r")
    assert manifest.version == "1.0.0"


def test_untrusted_key_is_key_untrusted():
    env = envelope_of(statement(publisher=OTHER.key_id), OTHER)
    assert refusal(env) == ("KEY_UNTRUSTED", f"release.dsse.json: signed by untrusted key {OTHER.key_id}")


def test_altered_payload_is_signature_invalid():
    env = envelope_of(statement())
    other = rm.release_payload(statement(version="9.9.9"))
    env["payload"] = base64.b64encode(other).decode()
    assert refusal(env) == ("SIGNATURE_INVALID", f"release.dsse.json: bad signature by key {SIGNER.key_id} "
                                                 "(the payload or the signature was altered)")


def test_revoked_key_is_refused_whatever_the_claimed_creation_time():
    """The manifest claims a creation time before the revocation; a revoked key can backdate, so it
    is refused anyway (KEY_REVOKED)."""
    trusted = {SIGNER.key_id: (SIGNER.public_key, "2026-05-15T00:00:00.000000Z")}
    env = envelope_of(statement(created_at="2026-05-01T00:00:00.000000Z"))
    assert refusal(env, trusted) == ("KEY_REVOKED", f"release.dsse.json: signed by key {SIGNER.key_id}, "
                                                    "revoked at 2026-05-15T00:00:00.000000Z")


def test_revocation_in_the_future_does_not_refuse_yet():
    trusted = {SIGNER.key_id: (SIGNER.public_key, "2026-06-02T00:00:00.000000Z")}
    assert rm.verify_release_envelope(envelope_of(statement()), trusted, now=NOW, where="r").name == "quickstart"


def test_revoked_beats_untrusted_when_several_signatures_fail():
    env = envelope_of(statement())
    env["signatures"].insert(0, envelope_of(statement(), OTHER)["signatures"][0])
    trusted = {SIGNER.key_id: (SIGNER.public_key, "2026-01-01T00:00:00.000000Z")}
    assert refusal(env, trusted)[0] == "KEY_REVOKED"


def test_one_good_signature_among_several_is_enough():
    env = envelope_of(statement())
    env["signatures"].insert(0, envelope_of(statement(), OTHER)["signatures"][0])
    assert rm.verify_release_envelope(env, TRUSTED, now=NOW, where="r").publisher == SIGNER.key_id


def test_expired_manifest_is_manifest_expired():
    env = envelope_of(statement(expires_at="2026-06-01T11:59:59.000000Z"))
    assert refusal(env) == ("MANIFEST_EXPIRED", "release.dsse.json: quickstart 1.0.0 expired at "
                                                "2026-06-01T11:59:59.000000Z")


def test_evidence_envelope_is_not_a_release():
    env = raw_envelope(rm.release_payload(statement()), payload_type=dsse.EVIDENCE_PAYLOAD_TYPE)
    assert refusal(env) == ("MANIFEST_INVALID", "release.dsse.json: payloadType is application/vnd.in-toto+json, "
                                                "expected application/vnd.edgegate.release+json")


def test_publisher_must_be_the_signer():
    """A trusted key cannot sign a manifest that names another publisher."""
    signer_b = signer_from_seed(bytes(range(2, 34)))
    trusted = {**TRUSTED, signer_b.key_id: (signer_b.public_key, None)}
    env = envelope_of(statement(publisher=signer_b.key_id), SIGNER)
    assert refusal(env, trusted) == ("MANIFEST_INVALID", f"release.dsse.json: publisher is {signer_b.key_id} "
                                                         f"but the manifest was signed by {SIGNER.key_id}")


@pytest.mark.parametrize("envelope", [None, [], {"payloadType": rm.PAYLOAD_TYPE},
                                      {"payloadType": rm.PAYLOAD_TYPE, "payload": "e30=", "signatures": []}])
def test_malformed_envelope_is_manifest_invalid(envelope):
    code, message = refusal(envelope)
    assert code == "MANIFEST_INVALID" and message.startswith("release.dsse.json: malformed DSSE envelope: ")


def test_signature_is_checked_before_the_payload_is_parsed():
    """Garbage signed by an untrusted key is KEY_UNTRUSTED, not a parse error: nothing is parsed first."""
    assert refusal(raw_envelope(b"not json", OTHER))[0] == "KEY_UNTRUSTED"
    assert refusal(raw_envelope(b"not json", SIGNER))[0] == "MANIFEST_INVALID"
