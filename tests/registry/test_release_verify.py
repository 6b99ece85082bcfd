"""`releases export` writes exactly the contract's layout; `releases verify` checks a manifest, an exported
directory (offline, no home with --key) or a release of the home, and names the file at fault."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime

import pytest
from bundle_evidence import entries
from release_helpers import MODEL, error_line, open_home, publish, publish_json

from edgegate_cli.context import Clock, Context
from edgegate_cli.errors import ManifestExpired, ManifestInvalid
from edgegate_cli.evidence import release_manifest as rm
from edgegate_cli.evidence.keys import trusted_keys

LAYOUT = ["evidence.zip", "model/model.onnx", "reference/inputs.npz", "reference/outputs.npz", "release.dsse.json"]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tree(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def exported(invoke, ev, tmp_path):
    """quickstart@1.0.0 published from the passing bundle and exported to tmp_path/export."""
    publish(invoke, "--bundle", ev.pass_zip)
    invoke("releases", "export", "quickstart@1.0.0", tmp_path / "export")
    return tmp_path / "export"


def test_export_writes_exactly_the_contract_layout(invoke, ev, exported):
    assert tree(exported) == LAYOUT
    ws = open_home(ev.home)
    row = ws.db["releases"].get(("quickstart", "1.0.0"))
    assert (exported / "release.dsse.json").read_bytes() == ws.cas.read_bytes(row["envelope_sha256"])
    assert (exported / "model" / "model.onnx").read_bytes() == MODEL.read_bytes()
    assert (exported / "evidence.zip").read_bytes() == ev.pass_zip.read_bytes()
    manifest = rm.parse_release_payload(base64.b64decode(json.loads(
        (exported / "release.dsse.json").read_text())["payload"]), where="x")
    for side in ("inputs", "outputs"):
        data = (exported / "reference" / f"{side}.npz").read_bytes()
        assert manifest.reference[side] == {"sha256": sha(data), "size": len(data)}
    assert {oct(p.stat().st_mode & 0o777) for p in exported.rglob("*") if p.is_file()} == {"0o644"}
    assert [p.name for p in exported.parent.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_verify_the_exported_directory_with_a_key_file_and_no_home(invoke, ev, exported, tmp_path, monkeypatch):
    nowhere = tmp_path / "no-home"
    monkeypatch.setenv("EDGEGATE_HOME", str(nowhere))
    monkeypatch.chdir(tmp_path)
    lines = invoke("releases", "verify", exported, "--key", ev.pem).stdout.splitlines()
    assert lines[0] == f"VALID: quickstart@1.0.0 ({exported})"
    assert lines[1].endswith(f"signed by {ev.key_id} (trusted: key files {ev.pem})")
    assert lines[3] == "  files checked: 4 (length and sha256; nothing extra)"
    assert lines[4] == f"  evidence: passed (re-derived) for run {ev.passed}, signed by {ev.key_id}"
    doc = json.loads(invoke("releases", "verify", exported, "--key", ev.pem, "--json").stdout)
    assert (doc["valid"], doc["kind"], doc["files_checked"], doc["evidence"]["verdict"]) == (True, "directory", 4,
                                                                                            "passed")
    assert not nowhere.exists() and not (tmp_path / ".edgegate").exists()


def test_an_independent_ed25519_implementation_verifies_the_manifest(exported, ev):
    """`cryptography`'s Ed25519 and PAE written here from the DSSE spec accept the release envelope."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    envelope = json.loads((exported / "release.dsse.json").read_text())
    payload_type = envelope["payloadType"].encode()
    body = base64.b64decode(envelope["payload"])
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(body), body)
    key = load_pem_public_key(ev.pem.read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    (signature,) = envelope["signatures"]
    key.verify(base64.b64decode(signature["sig"]), pae)  # raises InvalidSignature if not
    statement = json.loads(body)
    assert payload_type == b"application/vnd.edgegate.release+json" and signature["keyid"] == ev.key_id
    assert statement["subject"] == [{"name": "model.onnx", "digest": {"sha256": hashlib.sha256(
        (exported / "model" / "model.onnx").read_bytes()).hexdigest()}}]
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        key.verify(base64.b64decode(signature["sig"]), pae.replace(b'"stable"', b'"stabla"'))


def _flip(path, at=None):
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


def test_tamper_matrix_names_the_file(invoke, ev, exported, tmp_path):
    """Extra file, missing file, wrong length, flipped byte (model, reference, evidence): exit 1, its file named."""
    import shutil

    model = (exported / "model" / "model.onnx").read_bytes()
    outputs = (exported / "reference" / "outputs.npz").read_bytes()
    bundle = (exported / "evidence.zip").read_bytes()

    def case(edit):
        copy = tmp_path / f"case{len(results)}"
        shutil.copytree(exported, copy)
        edit(copy)
        results.append(error_line(invoke("releases", "verify", copy, "--key", ev.pem, expect=1)))

    results: list[str] = []
    case(lambda d: (d / "model" / "extra.bin").write_bytes(b"x"))
    case(lambda d: (d / "notes.txt").write_text("trust me\n"))
    case(lambda d: (d / "model" / "model.onnx").unlink())
    case(lambda d: (d / "evidence.zip").unlink())
    case(lambda d: (d / "reference" / "outputs.npz").unlink())
    case(lambda d: (d / "model" / "model.onnx").write_bytes(model + b"\0"))
    case(lambda d: (d / "model" / "model.onnx").write_bytes(model[:-1]))
    flipped = bytearray(model)
    flipped[len(model) // 2] ^= 1
    case(lambda d: (d / "model" / "model.onnx").write_bytes(bytes(flipped)))
    flipped_out = bytearray(outputs)
    flipped_out[-30] ^= 1
    case(lambda d: (d / "reference" / "outputs.npz").write_bytes(bytes(flipped_out)))
    case(lambda d: (d / "evidence.zip").write_bytes(ev.fail_zip.read_bytes()))
    n = len(model)
    assert results == [
        "Error [EXTRA_FILE]: model/extra.bin: not named by release.dsse.json (an exported release holds only the "
        "files its manifest names) (re-export the release into an empty directory)",
        "Error [EXTRA_FILE]: notes.txt: not named by release.dsse.json (an exported release holds only the files "
        "its manifest names) (re-export the release into an empty directory)",
        "Error [FILE_MISSING]: model/model.onnx: missing (the manifest names it)",
        "Error [FILE_MISSING]: evidence.zip: missing (the manifest names it)",
        "Error [FILE_MISSING]: reference/outputs.npz: missing (the manifest names it)",
        f"Error [LENGTH_MISMATCH]: model/model.onnx: {n + 1} bytes, the manifest declares {n}",
        f"Error [LENGTH_MISMATCH]: model/model.onnx: {n - 1} bytes, the manifest declares {n}",
        f"Error [DIGEST_MISMATCH]: model/model.onnx: content is {sha(bytes(flipped))}, the manifest declares "
        f"{sha(model)}",
        f"Error [DIGEST_MISMATCH]: reference/outputs.npz: content is {sha(bytes(flipped_out))}, the manifest "
        f"declares {sha(outputs)}",
        f"Error [DIGEST_MISMATCH]: evidence.zip: content is {sha(ev.fail_zip.read_bytes())}, the manifest declares "
        f"{sha(bundle)}",
    ]


def test_a_flipped_byte_in_the_manifest(invoke, ev, exported):
    envelope = json.loads((exported / "release.dsse.json").read_text())
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[payload.index(b'"stable"') + 1] ^= 0x01  # "stable" -> "rtable": still a valid manifest
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    (exported / "release.dsse.json").write_text(rm.envelope_text(envelope))
    assert error_line(invoke("releases", "verify", exported, "--key", ev.pem, expect=1)) == (
        f"Error [SIGNATURE_INVALID]: release.dsse.json: bad signature by key {ev.key_id} (the payload or the "
        "signature was altered) (the manifest was altered after signing)")


def test_an_evidence_envelope_is_not_a_release(invoke, ev, tmp_path):
    """Where a release is expected, an evidence bundle's (validly signed) envelope is refused."""
    path = tmp_path / "summary.dsse.json"
    path.write_bytes(entries(ev.pass_zip)["summary.dsse.json"])
    assert error_line(invoke("releases", "verify", path, "--key", ev.pem, expect=1)) == (
        f"Error [MANIFEST_INVALID]: {path}: payloadType is application/vnd.in-toto+json, expected "
        "application/vnd.edgegate.release+json")
    envelope = json.loads(path.read_text())
    with pytest.raises(ManifestInvalid):
        rm.verify_release_envelope(envelope, trusted_keys(open_home(ev.home)), now=datetime.now(UTC), where="x")


def test_verify_a_manifest_file_alone(invoke, ev, exported):
    lines = invoke("releases", "verify", exported / "release.dsse.json").stdout.splitlines()
    assert lines[0] == f"VALID: quickstart@1.0.0 ({exported / 'release.dsse.json'})"
    assert lines[3] == "  only the manifest was checked: verify the exported directory to check its files"


def test_verify_a_release_of_the_home_and_a_corrupted_blob(invoke, ev, exported):
    lines = invoke("releases", "verify", "quickstart@1.0.0").stdout.splitlines()
    assert lines[0] == "VALID: quickstart@1.0.0 (quickstart@1.0.0)"
    assert lines[3] == "  files checked: 4 (length and sha256; nothing extra)"
    ws = open_home(ev.home)
    blob = ws.cas.path_of(json.loads(invoke("releases", "show", "quickstart@1.0.0", "--json").stdout)
                          ["reference"]["outputs"]["sha256"])
    os.chmod(blob, 0o644)
    original = blob.read_bytes()
    changed = _flip(blob, at=len(original) - 30)
    assert error_line(invoke("releases", "verify", "quickstart@1.0.0", expect=1)) == (
        f"Error [DIGEST_MISMATCH]: reference/outputs.npz: content is {sha(changed)}, the manifest declares "
        f"{sha(original)}")


def test_key_refusals(invoke, ev, exported, tmp_path):
    other = tmp_path / "other.pem"
    other.write_text("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA" + "A" * 43 + "=\n-----END PUBLIC KEY-----\n")
    assert error_line(invoke("releases", "verify", exported, "--key", other, expect=1)) == (
        f"Error [KEY_UNTRUSTED]: release.dsse.json: signed by untrusted key {ev.key_id} (trust the publisher's "
        "current key: --key PUBFILE (from `edgegate keys export`))")
    invoke("keys", "revoke", ev.key_id, "--at", "2020-01-01T00:00:00Z")
    assert error_line(invoke("releases", "verify", exported, expect=1)) == (
        f"Error [KEY_REVOKED]: release.dsse.json: signed by key {ev.key_id}, revoked at 2020-01-01T00:00:00.000000Z "
        "(trust the publisher's current key: --key PUBFILE (from `edgegate keys export`))")


def test_an_expired_release(invoke, ev, tmp_path):
    """Verified at a time after its expiry (the Context's clock), a release is MANIFEST_EXPIRED."""
    from edgegate_cli.registry.verify import verify_release

    publish(invoke, "--bundle", ev.pass_zip, "--expires-at", "2999-01-01T00:00:00Z")
    invoke("releases", "export", "quickstart@1.0.0", tmp_path / "out")
    later = Context(clock=Clock(lambda: datetime(3000, 1, 1, tzinfo=UTC)))
    with pytest.raises(ManifestExpired, match=r"^release.dsse.json: quickstart 1.0.0 expired at 2999-01-01T00:00"):
        verify_release(later, str(tmp_path / "out"), [str(ev.pem)])
    assert verify_release(Context(), str(tmp_path / "out"), [str(ev.pem)]).valid


def test_a_forced_release_exports_without_evidence(invoke, ev, tmp_path):
    publish(invoke, "--force")
    invoke("releases", "export", "quickstart", tmp_path / "forced")
    assert tree(tmp_path / "forced") == ["model/model.onnx", "release.dsse.json"]
    out = invoke("releases", "verify", tmp_path / "forced", "--key", ev.pem).stdout
    assert "  files checked: 1 (length and sha256; nothing extra)" in out
    assert "  evidence: none (published with --force)" in out


def test_a_symlink_in_the_export_is_refused(invoke, ev, exported):
    target = exported / "model" / "model.onnx"
    real = exported.parent / "real.onnx"
    target.rename(real)
    target.symlink_to(real)
    assert error_line(invoke("releases", "verify", exported, "--key", ev.pem, expect=1)) == (
        "Error [VERIFICATION_FAILED]: model/model.onnx: not a regular file (a symlink or a directory)")


def test_export_refusals(invoke, ev, exported, tmp_path):
    result = invoke("releases", "export", "quickstart@1.0.0", exported, expect=2)
    assert error_line(result) == (f"Error [INVALID_INPUT]: {exported}: is not empty; give a new or empty directory "
                                  "(an export holds only the release's files (`releases verify DIR` refuses others))")
    (tmp_path / "afile").write_text("x")
    assert error_line(invoke("releases", "export", "quickstart@1.0.0", tmp_path / "afile", expect=2)) == (
        f"Error [INVALID_INPUT]: {tmp_path / 'afile'}: exists and is not a directory; give a new or empty directory")
    assert error_line(invoke("releases", "export", "quickstart@9.9.9", tmp_path / "new", expect=2)) == (
        "Error [NOT_FOUND]: release quickstart@9.9.9 is not in this home (see `edgegate releases list --name "
        "quickstart`)")
    (tmp_path / "empty").mkdir()
    invoke("releases", "export", "quickstart@1.0.0", tmp_path / "empty")
    assert tree(tmp_path / "empty") == LAYOUT
    assert not (tmp_path / "new").exists()


def test_verify_unusable_arguments(invoke, ev, tmp_path):
    assert error_line(invoke("releases", "verify", tmp_path / "nothing", expect=2)) == (
        f"Error [INVALID_INPUT]: {tmp_path / 'nothing'}: no such file or directory (and not NAME@VERSION of this "
        "home)")
    (tmp_path / "empty").mkdir()
    assert error_line(invoke("releases", "verify", tmp_path / "empty", "--key", ev.pem, expect=1)) == (
        f"Error [FILE_MISSING]: {tmp_path / 'empty'}: no release.dsse.json (not a directory `releases export` "
        "wrote)")
    publish_json(invoke, "--force")
    assert json.loads(invoke("releases", "verify", "quickstart@1.0.0", "--json").stdout)["kind"] == "home"


def test_evidence_signed_by_another_key_than_the_publisher(invoke, ev, tmp_path):
    """publish --key signs with a second key; offline, both keys are needed: the publisher's for the
    manifest, the evidence signer's for the bundle (EVIDENCE_UNTRUSTED without it)."""
    new = json.loads(invoke("keys", "generate", "--json").stdout)["key_id"]
    doc = publish_json(invoke, "--bundle", ev.pass_zip, "--key", new)
    assert (doc["publisher"], doc["evidence"]["signer"]) == (new, ev.key_id)
    invoke("releases", "export", "quickstart@1.0.0", tmp_path / "out")
    (tmp_path / "new.pem").write_text(invoke("keys", "export", new).stdout)
    assert error_line(invoke("releases", "verify", tmp_path / "out", "--key", tmp_path / "new.pem", expect=1)) == (
        f"Error [EVIDENCE_UNTRUSTED]: {tmp_path / 'out'}: evidence.zip: signed by untrusted key {ev.key_id} (trust "
        "the key that signed the evidence too: --key PUBFILE)")
    invoke("releases", "verify", tmp_path / "out", "--key", tmp_path / "new.pem", "--key", ev.pem)


def test_a_manifest_whose_identity_its_files_do_not_imply(invoke, ev, tmp_path):
    """Signed by a trusted key but inconsistent: identity must follow from the files by the rule `run` uses."""
    from bundle_evidence import home_signer

    signer = home_signer(ev.home)
    digest = sha(MODEL.read_bytes())
    statement = rm.build_release_statement(
        name="quickstart", version="1.0.0", channel="stable", created_at="2026-01-01T00:00:00.000000Z",
        model_format="onnx", identity="sha256:" + "0" * 64, publisher=signer.key_id, edgegate_version="0.1.0",
        files=[{"path": "model.onnx", "sha256": digest, "size": MODEL.stat().st_size}])
    path = tmp_path / "release.dsse.json"
    path.write_text(rm.envelope_text(rm.sign_release(statement, signer)))
    assert error_line(invoke("releases", "verify", path, expect=1)) == (
        f"Error [MANIFEST_INVALID]: {path}: model.identity is sha256:{'0' * 64}, but its files imply {digest}")
