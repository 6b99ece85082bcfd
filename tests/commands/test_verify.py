"""`edgegate verify` on real bundles: valid output, the tamper matrix with exact messages, trust from
the home or from --key files (no home needed), and unusable arguments."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
from bundle_evidence import entries, home_signer, resign, rewrite

from edgegate_cli.evidence.keys import signer_from_seed

OUTSIDER = signer_from_seed(bytes(range(100, 132)))
RAW = ["raw/local-cpu/0-warmup.json", "raw/local-cpu/1.json", "raw/local-cpu/2.json", "raw/local-cpu/3.json"]
LISTED = ["capabilities.json", "gates.json", "mapping.json", "metrics.json", "pipeline.json", *RAW, "report.md"]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rows(home, sql: str, params=()) -> list:
    import sqlite3

    con = sqlite3.connect(home / "state.db")
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def error_line(result) -> str:
    assert result.stdout == ""
    return result.stderr


def test_valid_bundle_human_and_json(invoke, ev):
    result = invoke("verify", ev.pass_zip)
    lines = result.stdout.splitlines()
    assert lines[0] == f"VALID: {ev.pass_zip}"
    assert lines[1:3] == ["  verdict: passed", f"  run: {ev.passed} of quickstart on local"]
    assert lines[3].startswith("  model: model.onnx sha256:")
    assert lines[4].startswith(f"  signer: {ev.key_id}, signed at ") and lines[4].endswith(
        f"(trusted: signing keys of the home {ev.home})")
    assert lines[5] == "  files checked: 10 (every listed sha256 matches; no extra files)"
    doc = json.loads(invoke("verify", ev.fail_zip, "--json").stdout)
    assert (doc["valid"], doc["verdict"], doc["run_id"], doc["key_id"], doc["files_checked"]) == (
        True, "failed", ev.failed, ev.key_id, 10)


def _data_offset(path, name) -> int:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    return info.header_offset + 30 + name_len + extra_len


def _flip_at(name: str, data: bytes) -> int:
    """Which byte of `name` to flip: inside the signature for the envelope, else the middle."""
    if name == "summary.dsse.json":
        return data.index(b'"sig":"') + 20
    return len(data) // 2


def _flipped(name: str, data: bytes) -> bytes:
    """`data` with one byte changed; in the envelope's signature, to another base64 letter (the key is
    random, so a bit flip could leave the base64 alphabet and test the parser instead)."""
    at = _flip_at(name, data)
    new = (b"B" if data[at:at + 1] == b"A" else b"A") if name == "summary.dsse.json" else bytes([data[at] ^ 0x01])
    return data[:at] + new + data[at + 1:]


@pytest.mark.parametrize("name", LISTED)
def test_one_flipped_byte_on_disk_names_the_file(invoke, ev, name):
    """The bundle file itself edited in place (CRC left stale): the sha256 check names the file."""
    data = entries(ev.pass_zip)[name]
    at = _flip_at(name, data)
    blob = bytearray(ev.pass_zip.read_bytes())
    blob[_data_offset(ev.pass_zip, name) + at] ^= 0x01
    ev.pass_zip.write_bytes(bytes(blob))
    changed = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
    result = invoke("verify", ev.pass_zip, expect=1)
    assert error_line(result) == (f"Error [VERIFICATION_FAILED]: {name}: content is {sha(changed)}, summary.json "
                                  f"lists {sha(data)} (modified after signing)\n")


def test_flipped_bytes_in_the_summary_and_its_envelope(invoke, ev, tmp_path):
    files = entries(ev.pass_zip)
    messages = {}
    for name in ("summary.json", "summary.dsse.json"):
        rewrite(ev.pass_zip, tmp_path / "t.zip", {name: _flipped(name, files[name])})
        messages[name] = error_line(invoke("verify", tmp_path / "t.zip", expect=1))
    assert messages["summary.json"] == ("Error [VERIFICATION_FAILED]: summary.json: bytes differ from the payload "
                                        "signed in summary.dsse.json\n")
    assert messages["summary.dsse.json"] == (f"Error [VERIFICATION_FAILED]: summary.dsse.json: bad signature by key "
                                             f"{ev.key_id} (the payload or the signature was altered)\n")
    blob = bytearray(ev.pass_zip.read_bytes())  # in place, the zip's own CRC catches the summary first
    blob[_data_offset(ev.pass_zip, "summary.json") + 40] ^= 0x01
    ev.pass_zip.write_bytes(bytes(blob))
    assert error_line(invoke("verify", ev.pass_zip, expect=1)) == (
        f"Error [VERIFICATION_FAILED]: {ev.pass_zip}: entry 'summary.json' is corrupt (Bad CRC-32 for file "
        "'summary.json')\n")


def test_tamper_matrix_gives_distinct_messages(invoke, ev, tmp_path, fresh_home):
    """Added file, removed file, untrusted signer, revoked signer, another payloadType: exit 1 each."""
    signer = home_signer(ev.home)
    cases = {
        "added": rewrite(ev.pass_zip, tmp_path / "added.zip", {"notes.txt": b"trust me\n"}),
        "removed": rewrite(ev.pass_zip, tmp_path / "removed.zip", {"metrics.json": None}),
        "untrusted": resign(ev.pass_zip, tmp_path / "untrusted.zip", OUTSIDER),
        "payload_type": resign(ev.pass_zip, tmp_path / "type.zip", signer,
                               payload_type="application/vnd.edgegate.release+json"),
    }
    got = {case: error_line(invoke("verify", path, expect=1)) for case, path in cases.items()}
    recorded = rows(ev.home, "SELECT first_seen_at FROM bundle_records WHERE sha256 = ?",
                    [hashlib.sha256(ev.pass_zip.read_bytes()).hexdigest()])[0][0]
    invoke("keys", "revoke", ev.key_id, "--at", "2020-01-01T00:00:00Z")
    got["revoked"] = error_line(invoke("verify", ev.pass_zip, expect=1))
    assert got == {
        "added": "Error [VERIFICATION_FAILED]: notes.txt: not listed in summary.json (extra file)\n",
        "removed": "Error [VERIFICATION_FAILED]: metrics.json: listed in summary.json but missing from the bundle\n",
        "untrusted": (f"Error [VERIFICATION_FAILED]: summary.dsse.json: signature by untrusted key {OUTSIDER.key_id} "
                      "(pass the signer's public key with --key if you trust it)\n"),
        "payload_type": ("Error [VERIFICATION_FAILED]: summary.dsse.json: payloadType is "
                         "application/vnd.edgegate.release+json, expected application/vnd.in-toto+json\n"),
        "revoked": (f"Error [KEY_REVOKED]: summary.dsse.json: key {ev.key_id} was revoked at "
                    "2020-01-01T00:00:00.000000Z; a revoked key's signatures are refused unless this home recorded "
                    f"the bundle before then (this home first recorded this bundle at {recorded}) (ask the publisher "
                    "to sign it again with a current key)\n"),
    }
    assert len(set(got.values())) == len(got)


def test_a_key_revoked_after_signing_still_verifies(invoke, ev):
    invoke("keys", "revoke", ev.key_id)  # now: after the run finished and was signed
    assert invoke("verify", ev.pass_zip).stdout.startswith("VALID: ")


def test_key_files_need_no_home_and_create_none(invoke, ev, tmp_path, monkeypatch):
    nowhere = tmp_path / "no-home-here"
    monkeypatch.setenv("EDGEGATE_HOME", str(nowhere))
    monkeypatch.chdir(tmp_path)
    result = invoke("verify", ev.pass_zip, "--key", ev.pem)
    assert f"(trusted: key files {ev.pem})" in result.stdout
    (tmp_path / "other.pem").write_text("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA" +
                                        "A" * 43 + "=\n-----END PUBLIC KEY-----\n")
    result = invoke("verify", ev.pass_zip, "--key", tmp_path / "other.pem", expect=1)
    assert result.stderr.startswith(f"Error [VERIFICATION_FAILED]: summary.dsse.json: signature by untrusted key "
                                    f"{ev.key_id}")
    assert invoke("verify", ev.pass_zip, "--key", tmp_path / "other.pem", "--key", ev.pem).exit_code == 0
    assert not nowhere.exists() and not (tmp_path / ".edgegate").exists()


def test_unusable_arguments_exit_2(invoke, ev, tmp_path, monkeypatch):
    result = invoke("verify", tmp_path / "nope.zip", "--key", ev.pem, expect=2)
    assert result.stderr == f"Error [INVALID_INPUT]: {tmp_path / 'nope.zip'}: no such file\n"
    result = invoke("verify", ev.pass_zip, "--key", tmp_path / "missing.pem", expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: {tmp_path / 'missing.pem'}: cannot read public key "
                             "(no such file)\n")
    (tmp_path / "junk.pem").write_text("hello\n")
    result = invoke("verify", ev.pass_zip, "--key", tmp_path / "junk.pem", expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: {tmp_path / 'junk.pem'}: not an Ed25519 public key (expected "
                             "the PEM or base64 output of `edgegate keys export`)\n")
    monkeypatch.setenv("EDGEGATE_HOME", str(tmp_path / "absent"))
    result = invoke("verify", ev.pass_zip, "--json", expect=2)
    assert json.loads(result.stdout) == {"error": {
        "code": "INVALID_INPUT", "exit_code": 2, "message": f"no EdgeGate home at {tmp_path / 'absent'} to take "
        "trusted keys from", "hint": "pass the signer's public key with --key PUBFILE (see `edgegate keys export`)"}}
    assert not (tmp_path / "absent").exists()


def test_not_a_zip_and_a_truncated_zip(invoke, ev, tmp_path):
    (tmp_path / "text.zip").write_text("not a zip at all\n")
    assert error_line(invoke("verify", tmp_path / "text.zip", expect=1)) == (
        f"Error [VERIFICATION_FAILED]: {tmp_path / 'text.zip'}: not a zip file\n")
    (tmp_path / "cut.zip").write_bytes(ev.pass_zip.read_bytes()[:5000])
    assert error_line(invoke("verify", tmp_path / "cut.zip", expect=1)) == (
        f"Error [VERIFICATION_FAILED]: {tmp_path / 'cut.zip'}: truncated zip (no end of central directory record)\n")
