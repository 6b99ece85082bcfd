"""The agent config file: every field checked, every error naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgegate_cli.agent.config import load_config
from edgegate_cli.errors import InvalidInput
from edgegate_cli.evidence import dsse

from .fixtures import PUBLISHER, REVOKED

BASE = """device_id = "dev-7"
device_type = "qcs6490"
state_dir = "state"
{extra}
[tls]
cert = "device.crt"
key = "device.key"
client_ca = "ca.crt"

[trust]
publisher_keys = ["pub.pem", "old.pem"]
{trust}
"""


def write(tmp_path: Path, extra: str = "", trust: str = "", text: str | None = None) -> Path:
    for name in ("device.crt", "device.key", "ca.crt"):
        (tmp_path / name).write_text("placeholder")  # the TLS files are loaded by the server, not here
    (tmp_path / "pub.pem").write_text(dsse.public_key_pem(PUBLISHER.public_key))
    (tmp_path / "old.pem").write_text(dsse.public_key_pem(REVOKED.public_key))
    path = tmp_path / "agent.toml"
    path.write_text(text if text is not None else BASE.format(extra=extra, trust=trust))
    return path


def error(path: Path) -> str:
    with pytest.raises(InvalidInput) as exc:
        load_config(path)
    return exc.value.message


def test_defaults_and_relative_paths(tmp_path):
    cfg = load_config(write(tmp_path))
    assert (cfg.device_id, cfg.device_type, cfg.host, cfg.port, cfg.warmup, cfg.require_evidence, cfg.threads) == \
        ("dev-7", "qcs6490", "127.0.0.1", 8443, 3, True, 1)
    assert cfg.state_dir == tmp_path / "state" and cfg.tls_cert == tmp_path / "device.crt"
    assert cfg.trusted_keys == {PUBLISHER.key_id: (PUBLISHER.public_key, None),
                                REVOKED.key_id: (REVOKED.public_key, None)}
    assert cfg.limits == {"max_json_bytes": 1 << 20, "max_blob_bytes": 500 << 20, "body_timeout_s": 30,
                          "replay_window_s": 300, "concurrency": 64}
    assert cfg.inject_latency_ms == 0 and cfg.cohorts == ()


def test_revocations_accept_toml_times_and_strings(tmp_path):
    trust = (f'revocations = [{{key_id = "{REVOKED.key_id}", revoked_at = 2026-01-01T00:00:00Z}},\n'
             f'  {{key_id = "eg-0000000000000000", revoked_at = "2026-02-01T00:00:00+01:00"}}]')
    cfg = load_config(write(tmp_path, trust=trust))
    assert cfg.trusted_keys[REVOKED.key_id] == (REVOKED.public_key, "2026-01-01T00:00:00.000000Z")
    assert "eg-0000000000000000" not in cfg.trusted_keys  # revoking an unlisted key trusts nothing new


def test_ipv6_listen_and_settings(tmp_path):
    top = 'listen = "[::1]:9443"\ncohorts = ["canary", "eu"]\nwarmup = 0\nrequire_evidence = false'
    tables = "\n[limits]\nbody_timeout_s = 5\n[testing]\ninject_latency_ms = 250\n"
    cfg = load_config(write(tmp_path, text=BASE.format(extra=top, trust="") + tables))
    assert (cfg.host, cfg.port, cfg.cohorts, cfg.warmup, cfg.require_evidence) == ("::1", 9443, ("canary", "eu"),
                                                                                    0, False)
    assert cfg.limits["body_timeout_s"] == 5 and cfg.inject_latency_ms == 250


@pytest.mark.parametrize("extra,expected", [
    ('listen = "8443"', "listen is '8443', expected host:port"),
    ("warmup = -1", "warmup must be a number >= 0"),
    ('warmup = "3"', "warmup must be a number >= 0"),
    ("require_evidence = 1", "require_evidence must be true or false"),
    ('cohorts = "canary"', "cohorts must be a list of names"),
    ("colour = 1", "colour is not a known setting"),
    ("[limits]\nmax_json_byte = 10", "limits.max_json_byte is not a known setting"),
    ("[limits]\nbody_timeout_s = 0", "limits.body_timeout_s must be a number >= 1"),
])
def test_bad_settings_name_the_file_and_field(tmp_path, extra, expected):
    table = extra.startswith("[")  # a table goes after the others, a top-level key before them
    path = write(tmp_path, text=BASE.format(extra="", trust="") + extra + "\n" if table else None, extra=extra)
    message = error(path)
    assert message.startswith(f"{path}: {expected}")


def test_missing_pieces(tmp_path):
    path = write(tmp_path, text='device_id = "d"\ndevice_type = "t"\nstate_dir = "s"\n')
    assert error(path) == f"{path}: tls is missing (a [tls] table is required)"
    path = write(tmp_path, text=BASE.format(extra="", trust="").replace('device_id = "dev-7"\n', ""))
    assert error(path) == f"{path}: device_id is missing"
    path = write(tmp_path, text=BASE.format(extra="", trust="").replace('"pub.pem", "old.pem"', ""))
    assert error(path).startswith(f"{path}: trust.publisher_keys must list at least one public key file")
    path = write(tmp_path, text=BASE.format(extra="", trust="").replace('"ca.crt"', '"nope.crt"'))
    assert error(path) == f"{path}: tls.client_ca names {tmp_path / 'nope.crt'}, which is not a file"


def test_bad_key_file_and_bad_toml(tmp_path):
    path = write(tmp_path)
    (tmp_path / "pub.pem").write_text("not a key")
    assert error(path) == f"{tmp_path / 'pub.pem'}: not an Ed25519 public key (expected the PEM or base64 output " \
                          "of `edgegate keys export`)"
    path.write_text("device_id = ")
    assert error(path).startswith(f"{path}: not valid TOML (")
    assert error(tmp_path / "absent.toml") == f"{tmp_path / 'absent.toml'}: cannot read the agent config " \
                                              "(No such file or directory)"


def test_bad_revocation(tmp_path):
    path = write(tmp_path, trust=f'revocations = [{{key_id = "{REVOKED.key_id}"}}]')
    assert error(path) == f"{path}: trust.revocations[0] must be a table with exactly key_id and revoked_at"
    path = write(tmp_path, trust=f'revocations = [{{key_id = "{REVOKED.key_id}", revoked_at = "yesterday"}}]')
    assert "trust.revocations[0].revoked_at is 'yesterday', not an ISO-8601 time with a zone" in error(path)
