"""Signing keys: files, ids, export formats, revocation, rotation, the env key, and no seed leaks."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from edgegate_cli.errors import InvalidInput, NotFound
from edgegate_cli.evidence import keys as signing
from edgegate_cli.store.workspace import open_workspace

# RFC 8032 §7.1, TEST 1
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


@pytest.fixture
def ws():
    return open_workspace()


def seed_of(info: signing.KeyInfo) -> bytes:
    with open(info.private_key_file, "rb") as fh:
        return base64.b64decode(fh.read().strip())


def test_generate_writes_a_0600_seed_file_and_records_only_the_public_key(ws):
    """The key file holds the base64 seed, mode 0600; signing_keys holds the public key, source generated."""
    info = signing.generate_key(ws)
    path = ws.home.keys_path / f"{info.key_id}.key"
    assert info.private_key_file == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    seed = seed_of(info)
    assert len(seed) == 32 and path.read_bytes() == base64.b64encode(seed) + b"\n"
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert base64.b64decode(info.public_key) == public
    row = ws.db["signing_keys"].get(info.key_id)
    assert (row["public_key"], row["revoked_at"], row["source"]) == (info.public_key, None, "generated")


def test_key_file_is_0600_even_with_a_permissive_umask(ws):
    """The file is created 0600 (O_CREAT|O_EXCL), never world-readable, whatever the umask."""
    old = os.umask(0)
    try:
        info = signing.generate_key(ws)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(info.private_key_file).st_mode) == 0o600


def test_key_id_v1_is_eg_and_16_hex_of_sha256_of_the_raw_public_key():
    """Key ids are stable: eg- + first 16 hex of sha256(public key); RFC 8032's test key gives a fixed id."""
    signer = signing.signer_from_seed(RFC_SEED)
    assert signer.public_key == RFC_PUBLIC
    assert signer.key_id == "eg-" + hashlib.sha256(RFC_PUBLIC).hexdigest()[:16] == "eg-21fe31dfa154a261"
    assert re.fullmatch(r"eg-[0-9a-f]{16}", signer.key_id)
    assert "9d61b1" not in repr(signer)


def test_export_pem_and_base64_parse_with_cryptography(ws):
    """PEM is SubjectPublicKeyInfo that cryptography loads; base64 is the raw 32 bytes; pem is the default."""
    info = signing.generate_key(ws)
    raw = base64.b64decode(info.public_key)
    pem = signing.export_public_key(ws, info.key_id)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n") and pem.endswith("-----END PUBLIC KEY-----\n")
    loaded = load_pem_public_key(pem.encode())
    assert isinstance(loaded, Ed25519PublicKey)
    assert loaded.public_bytes(Encoding.Raw, PublicFormat.Raw) == raw
    b64 = signing.export_public_key(ws, info.key_id, "base64")
    assert b64 == info.public_key + "\n"
    assert Ed25519PublicKey.from_public_bytes(base64.b64decode(b64)).public_bytes(
        Encoding.Raw, PublicFormat.Raw) == raw


def test_parse_public_key_reads_both_exports_and_cryptographys_pem(tmp_path):
    """`verify --key` input: our PEM, our base64, and a PEM written by cryptography all give the raw key."""
    pem_by_cryptography = Ed25519PublicKey.from_public_bytes(RFC_PUBLIC).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    assert signing.public_key_pem(RFC_PUBLIC) == pem_by_cryptography
    for text in (pem_by_cryptography, base64.b64encode(RFC_PUBLIC).decode() + "\n"):
        assert signing.parse_public_key(text, what="k") == RFC_PUBLIC
    keyfile = tmp_path / "signer.pem"
    keyfile.write_text(pem_by_cryptography)
    assert signing.read_public_key_file(keyfile) == ("eg-21fe31dfa154a261", RFC_PUBLIC)


@pytest.mark.parametrize("text", ["", "not a key", base64.b64encode(bytes(31)).decode(),
                                  "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_parse_public_key_rejects_other_text(text):
    with pytest.raises(InvalidInput) as exc:
        signing.parse_public_key(text, what="keys/x.pem")
    assert exc.value.message == ("keys/x.pem: not an Ed25519 public key (expected the PEM or base64 output "
                                 "of `edgegate keys export`)")


def test_read_public_key_file_names_a_missing_file(tmp_path):
    with pytest.raises(InvalidInput) as exc:
        signing.read_public_key_file(tmp_path / "nope.pem")
    assert exc.value.message == f"{tmp_path / 'nope.pem'}: cannot read public key (no such file)"


def test_export_rejects_unknown_format_and_unknown_key(ws):
    info = signing.generate_key(ws)
    with pytest.raises(InvalidInput) as exc:
        signing.export_public_key(ws, info.key_id, "der")
    assert exc.value.message == "--format is 'der', expected one of: pem, base64"
    with pytest.raises(NotFound) as exc:
        signing.export_public_key(ws, "eg-0000000000000000")
    assert exc.value.message == "signing key eg-0000000000000000 is not known to this home"
    with pytest.raises(InvalidInput) as exc:
        signing.export_public_key(ws, "mykey")
    assert exc.value.message == "'mykey' is not a key id (expected eg- and 16 lowercase hex digits)"


def test_revoke_records_the_time_and_only_moves_it_earlier(ws):
    """Revocation time defaults to now; a later revoke can backdate it but never postpone it."""
    info = signing.generate_key(ws)
    before = datetime.now(UTC)
    revoked = signing.revoke_key(ws, info.key_id)
    assert before <= signing.parse_utc(revoked.revoked_at, what="t") <= datetime.now(UTC)
    assert signing.revoke_key(ws, info.key_id, "2999-01-01T00:00:00Z").revoked_at == revoked.revoked_at
    earlier = signing.revoke_key(ws, info.key_id, "2020-01-01T00:00:00+02:00")
    assert earlier.revoked_at == "2019-12-31T22:00:00.000000Z"
    events = [json.loads(r["detail_json"]) for r in ws.db["audit_events"].rows_where("event = 'key_revoked'")]
    assert [e["revoked_at"] for e in events] == [revoked.revoked_at, earlier.revoked_at]


def test_revoke_rejects_a_time_without_zone_and_unknown_keys(ws):
    info = signing.generate_key(ws)
    with pytest.raises(InvalidInput) as exc:
        signing.revoke_key(ws, info.key_id, "2020-01-01 00:00")
    assert exc.value.message == ("--at is '2020-01-01 00:00', not an ISO-8601 time with a zone "
                                 "(e.g. 2025-01-02T03:04:05Z)")
    with pytest.raises(NotFound):
        signing.revoke_key(ws, "eg-0123456789abcdef")


def test_rotate_generates_a_new_key_and_retires_the_previous_one(ws):
    """After rotate the new key signs; the old key is retired (not revoked) as of the rotation."""
    old = signing.generate_key(ws)
    result = signing.rotate_key(ws)
    assert result.retired_key.key_id == old.key_id and result.retired_key.revoked_at is None
    assert result.retired_key.retired_at >= result.new_key.created_at
    assert signing.load_signing_key(ws).key_id == result.new_key.key_id
    assert signing.list_keys(ws).active == result.new_key.key_id
    event = ws.db["audit_events"].rows_where("event = 'key_rotated'").__next__()
    assert json.loads(event["detail_json"]) == {"new_key_id": result.new_key.key_id, "retired_key_id": old.key_id}


def test_rotate_with_no_key_just_generates(ws):
    result = signing.rotate_key(ws)
    assert result.retired_key is None
    assert signing.load_signing_key(ws).key_id == result.new_key.key_id


def test_load_without_any_key_says_what_to_do(ws):
    with pytest.raises(InvalidInput) as exc:
        signing.load_signing_key(ws)
    assert exc.value.message == "no signing key: this home has no non-revoked key file"
    assert exc.value.hint == "run `edgegate keys generate`, or set EDGEGATE_SIGNING_KEY to a base64 Ed25519 seed"


def test_load_picks_the_newest_non_revoked_key_file(ws):
    first = signing.generate_key(ws)
    second = signing.generate_key(ws)
    signer = signing.load_signing_key(ws)
    assert signer.key_id == second.key_id and signer.public_key == base64.b64decode(second.public_key)
    signing.revoke_key(ws, second.key_id)
    assert signing.load_signing_key(ws).key_id == first.key_id
    with pytest.raises(InvalidInput) as exc:
        signing.load_signing_key(ws, second.key_id)
    assert exc.value.message.startswith(f"signing key {second.key_id} was revoked at ")


def test_load_refuses_a_key_file_readable_by_others(ws):
    info = signing.generate_key(ws)
    os.chmod(info.private_key_file, 0o644)
    with pytest.raises(InvalidInput) as exc:
        signing.load_signing_key(ws)
    assert exc.value.message == f"{info.private_key_file}: permissions 0644 are too open for a private key"
    assert exc.value.hint == f"run `chmod 600 {info.private_key_file}`"


def test_load_refuses_a_key_file_holding_another_key(ws):
    a, b = signing.generate_key(ws), signing.generate_key(ws)
    os.replace(a.private_key_file, b.private_key_file)
    with pytest.raises(InvalidInput) as exc:
        signing.load_signing_key(ws, b.key_id)
    assert exc.value.message == f"{b.private_key_file}: holds key {a.key_id}, not {b.key_id} (was the file renamed?)"


def test_env_key_takes_precedence_and_is_recorded(ws, monkeypatch):
    """EDGEGATE_SIGNING_KEY signs ahead of key files; its public key is stored (source env) on first use."""
    signing.generate_key(ws)
    monkeypatch.setenv("EDGEGATE_SIGNING_KEY", base64.b64encode(RFC_SEED).decode() + "\n")
    assert signing.list_keys(ws).active == "eg-21fe31dfa154a261"
    assert ws.db["signing_keys"].count == 1  # listing does not record
    signer = signing.load_signing_key(ws)
    assert (signer.key_id, signer.source, signer.public_key) == ("eg-21fe31dfa154a261", "env", RFC_PUBLIC)
    row = ws.db["signing_keys"].get("eg-21fe31dfa154a261")
    assert (row["source"], base64.b64decode(row["public_key"])) == ("env", RFC_PUBLIC)
    assert signing.trusted_keys(ws)["eg-21fe31dfa154a261"] == (RFC_PUBLIC, None)
    signing.load_signing_key(ws)  # recording is idempotent
    assert ws.db["signing_keys"].count == 2


def test_revoked_env_key_is_refused(ws, monkeypatch):
    monkeypatch.setenv("EDGEGATE_SIGNING_KEY", base64.b64encode(RFC_SEED).decode())
    info = signing.revoke_key(ws, "eg-21fe31dfa154a261")
    with pytest.raises(InvalidInput) as exc:
        signing.load_signing_key(ws)
    assert exc.value.message == f"EDGEGATE_SIGNING_KEY holds key eg-21fe31dfa154a261, revoked at {info.revoked_at}"
    assert signing.list_keys(ws).active is None


@pytest.mark.parametrize("value, got", [("bm90IGEgc2VlZCBhdCBhbGw=", "17 bytes"),
                                        ("%%%%%%%%not-base64", "not valid base64")])
def test_malformed_env_key_is_refused_without_echoing_it(ws, monkeypatch, value, got):
    monkeypatch.setenv("EDGEGATE_SIGNING_KEY", value)
    with pytest.raises(InvalidInput) as exc:
        signing.load_signing_key(ws)
    assert exc.value.message == f"EDGEGATE_SIGNING_KEY is not a base64 Ed25519 seed (expected 32 bytes, got {got})"
    assert value not in exc.value.message + (exc.value.hint or "")


def test_signer_signs_ed25519_that_cryptography_verifies():
    signer = signing.signer_from_seed(RFC_SEED)
    sig = signer.sign(b"")
    # RFC 8032 TEST 1: the signature of the empty message
    assert sig.hex().startswith("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155")
    Ed25519PublicKey.from_public_bytes(signer.public_key).verify(sig, b"")


def test_no_seed_byte_reaches_the_state_database_or_audit_log(ws, monkeypatch):
    """Scan state.db (and its WAL) for every form of every seed after generate, rotate, revoke and env use."""
    keys = [signing.generate_key(ws), signing.rotate_key(ws).new_key]
    signing.revoke_key(ws, keys[1].key_id, "2020-01-01T00:00:00Z")
    monkeypatch.setenv("EDGEGATE_SIGNING_KEY", base64.b64encode(RFC_SEED).decode())
    signing.load_signing_key(ws)
    seeds = [seed_of(k) for k in keys] + [RFC_SEED]
    ws.db.conn.commit()
    blobs = b"".join(p.read_bytes() for p in ws.home.path.glob("state.db*"))
    audit = json.dumps(list(ws.db["audit_events"].rows)).encode()
    assert ws.db["audit_events"].count >= 5
    for seed in seeds:
        for form in (seed, base64.b64encode(seed), seed.hex().encode(), base64.b64encode(seed)[:16]):
            assert form not in blobs and form not in audit
