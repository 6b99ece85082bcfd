"""`edgegate keys ...` through the real CLI: output, exit codes, exact errors, and no seed in any output."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_KEY_ID = "eg-21fe31dfa154a261"


def generate(invoke) -> dict:
    return json.loads(invoke("keys", "generate", "--json").stdout)


def test_generate_json_and_key_file(invoke, fresh_home):
    key = generate(invoke)
    assert set(key) == {"key_id", "public_key", "created_at", "revoked_at", "retired_at", "source",
                        "private_key_file"}
    assert (key["source"], key["revoked_at"]) == ("generated", None)
    path = Path(key["private_key_file"])
    assert path == fresh_home / "keys" / f"{key['key_id']}.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_generate_human(invoke, fresh_home):
    result = invoke("keys", "generate")
    key_id = next((fresh_home / "keys").iterdir()).stem
    assert result.stdout.startswith(f"Generated signing key {key_id}, now the active key\n")
    # rich wraps long lines at COLUMNS=100, and the tmp path is long
    assert " ".join(result.stdout.split()[8:]) == f"Private key file: {fresh_home / 'keys' / key_id}.key (mode 0600)"


def test_list_empty_and_with_keys(invoke):
    assert invoke("keys", "list").stdout == \
        "No signing keys. Run `edgegate keys generate`, or set EDGEGATE_SIGNING_KEY.\n"
    first, second = generate(invoke), generate(invoke)
    listed = json.loads(invoke("keys", "list", "--json").stdout)
    assert listed["active"] == second["key_id"]
    assert [k["key_id"] for k in listed["keys"]] == [first["key_id"], second["key_id"]]
    table = invoke("keys", "list").stdout
    assert first["key_id"] in table and second["key_id"] in table and "active" in table


def test_export_pem_default_base64_and_json(invoke):
    key = generate(invoke)
    pem = invoke("keys", "export", key["key_id"]).stdout
    loaded = load_pem_public_key(pem.encode())
    assert isinstance(loaded, Ed25519PublicKey)
    assert loaded.public_bytes(Encoding.Raw, PublicFormat.Raw) == base64.b64decode(key["public_key"])
    assert invoke("keys", "export", key["key_id"], "--format", "base64").stdout == key["public_key"] + "\n"
    doc = json.loads(invoke("keys", "export", key["key_id"], "--json").stdout)
    assert doc == {"key_id": key["key_id"], "format": "pem", "public_key": pem}


def test_export_errors(invoke):
    key = generate(invoke)
    result = invoke("keys", "export", "eg-0000000000000000", expect=2)
    assert result.stderr == ("Error [NOT_FOUND]: signing key eg-0000000000000000 is not known to this home "
                             "(run `edgegate keys list` to see the key ids of this home)\n")
    assert result.stdout == ""
    result = invoke("keys", "export", key["key_id"], "--format", "der", expect=2)
    assert result.stderr == "Error [INVALID_INPUT]: --format is 'der', expected one of: pem, base64\n"
    result = invoke("keys", "export", "eg-0000000000000000", "--json", expect=2)
    assert json.loads(result.stdout) == {"error": {
        "code": "NOT_FOUND", "exit_code": 2, "hint": "run `edgegate keys list` to see the key ids of this home",
        "message": "signing key eg-0000000000000000 is not known to this home"}}


def test_revoke_human_json_and_bad_time(invoke):
    key = generate(invoke)
    result = invoke("keys", "revoke", key["key_id"], "--at", "2024-02-03T04:05:06Z")
    assert result.stdout == f"Revoked {key['key_id']} as of 2024-02-03T04:05:06.000000Z\n"
    doc = json.loads(invoke("keys", "revoke", key["key_id"], "--json").stdout)
    assert doc["revoked_at"] == "2024-02-03T04:05:06.000000Z"  # never postponed
    result = invoke("keys", "revoke", key["key_id"], "--at", "tomorrow", expect=2)
    assert result.stderr == ("Error [INVALID_INPUT]: --at is 'tomorrow', not an ISO-8601 time with a zone "
                             "(e.g. 2025-01-02T03:04:05Z)\n")


def test_rotate_human_and_json(invoke):
    first = generate(invoke)
    result = invoke("keys", "rotate")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("New signing key eg-") and lines[0].endswith(", now the active key")
    assert lines[1].startswith(f"Retired {first['key_id']} as of ")
    doc = json.loads(invoke("keys", "rotate", "--json").stdout)
    new_id = lines[0].split()[3].rstrip(",")
    assert doc["retired_key"]["key_id"] == new_id
    assert json.loads(invoke("keys", "list", "--json").stdout)["active"] == doc["new_key"]["key_id"]


def test_env_key_is_listed_active_and_exportable(invoke, monkeypatch):
    generate(invoke)
    monkeypatch.setenv("EDGEGATE_SIGNING_KEY", base64.b64encode(RFC_SEED).decode())
    listed = json.loads(invoke("keys", "list", "--json").stdout)
    assert listed["active"] == RFC_KEY_ID
    assert [k["source"] for k in listed["keys"]] == ["generated", "env"]
    assert invoke("keys", "export", RFC_KEY_ID, "--format", "base64").stdout == \
        base64.b64encode(RFC_PUBLIC).decode() + "\n"


def test_malformed_env_key_is_an_error_that_never_echoes_it(invoke, monkeypatch):
    value = base64.b64encode(b"sixteen byte key").decode()
    monkeypatch.setenv("EDGEGATE_SIGNING_KEY", value)
    result = invoke("keys", "list", expect=2)
    assert result.stderr == ("Error [INVALID_INPUT]: EDGEGATE_SIGNING_KEY is not a base64 Ed25519 seed (expected "
                             "32 bytes, got 16 bytes) (use the one-line content of a key file made by "
                             "`edgegate keys generate`)\n")
    result = invoke("keys", "list", "--json", expect=2)
    assert json.loads(result.stdout)["error"]["code"] == "INVALID_INPUT"
    assert value not in result.stdout + result.stderr


def test_no_seed_in_any_output_or_in_the_state_database(invoke, monkeypatch, fresh_home):
    """Every command, human and --json, success and error: no form of any seed is written anywhere."""
    outputs = []

    def run(*args, expect=0):
        result = invoke(*args, expect=expect)
        outputs.append(result.stdout + result.stderr)
        return result

    for json_flag in ((), ("--json",)):
        run("keys", "generate", *json_flag)
        run("keys", "list", *json_flag)
        run("keys", "rotate", *json_flag)
    key_ids = sorted(p.stem for p in (fresh_home / "keys").iterdir())
    for key_id in key_ids:
        run("keys", "export", key_id)
        run("keys", "export", key_id, "--format", "base64", "--json")
    run("keys", "revoke", key_ids[0], "--json")
    monkeypatch.setenv("EDGEGATE_SIGNING_KEY", base64.b64encode(RFC_SEED).decode())
    run("keys", "list", "--json")
    run("keys", "export", RFC_KEY_ID)
    run("keys", "revoke", RFC_KEY_ID, "--at", "2020-01-01T00:00:00Z")
    run("keys", "export", "eg-ffffffffffffffff", "--json", expect=2)
    seeds = [base64.b64decode((fresh_home / "keys" / f"{k}.key").read_text()) for k in key_ids] + [RFC_SEED]
    assert len(seeds) == 5
    stored = b"".join(p.read_bytes() for p in fresh_home.glob("state.db*"))
    text = "\n".join(outputs)
    for seed in seeds:
        for form in (base64.b64encode(seed).decode(), seed.hex(), base64.b64encode(seed).decode()[:12]):
            assert form not in text
            assert form.encode() not in stored
        assert seed not in stored
    assert all(stat.S_IMODE(os.stat(fresh_home / "keys" / f"{k}.key").st_mode) == 0o600 for k in key_ids)
