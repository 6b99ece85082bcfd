"""`edgegate agent certs ca|device|client` and `edgegate agent serve --check` through the CLI (the
served agent itself is tested as a real process in tests/agent/)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from edgegate_cli.evidence import dsse
from edgegate_cli.evidence.keys import signer_from_seed

HINT = "see `edgegate agent serve --help` and the README's Edge agent section"


def make_pki(invoke, root: Path) -> None:
    invoke("agent", "certs", "ca", root / "ca")
    invoke("agent", "certs", "device", root / "dev", "--ca", root / "ca", "--device-id", "dev-1",
           "--host", "127.0.0.1")
    invoke("agent", "certs", "client", root / "box", "--ca", root / "ca")


def test_certs_commands_write_the_files(invoke, tmp_path):
    result = invoke("agent", "certs", "ca", tmp_path / "ca")
    assert result.stdout.startswith(f"Wrote {tmp_path / 'ca' / 'fleet-ca.crt'} and {tmp_path / 'ca' / 'fleet-ca.key'}"
                                    " (mode 0600)\nSubject EdgeGate fleet CA, valid until ")
    result = invoke("agent", "certs", "device", tmp_path / "dev", "--ca", tmp_path / "ca", "--device-id", "dev-1",
                    "--host", "127.0.0.1", "--host", "dev1.local", "--json")
    doc = json.loads(result.stdout)
    assert (doc["subject"], doc["cert"], doc["ca"]) == ("dev-1", str(tmp_path / "dev" / "device.crt"),
                                                        str(tmp_path / "ca" / "fleet-ca.crt"))
    assert doc["sha256"].startswith("sha256:") and len(doc["sha256"]) == 71
    invoke("agent", "certs", "client", tmp_path / "box", "--ca", tmp_path / "ca", "--name", "box-1")
    assert stat.S_IMODE((tmp_path / "box" / "box-1.key").stat().st_mode) == 0o600


def test_certs_refuse_to_overwrite(invoke, tmp_path):
    invoke("agent", "certs", "ca", tmp_path / "ca")
    result = invoke("agent", "certs", "ca", tmp_path / "ca", expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: {tmp_path / 'ca' / 'fleet-ca.crt'} already exists; EdgeGate "
                             "never overwrites a certificate or key (choose another directory, or move the old "
                             "files away first)\n")


def test_serve_check(invoke, tmp_path):
    make_pki(invoke, tmp_path)
    signer = signer_from_seed(bytes(range(32)))
    (tmp_path / "pub.pem").write_text(dsse.public_key_pem(signer.public_key))
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "dev-1"\ndevice_type = "qcs6490"\nstate_dir = "state"\n'
                      'listen = "127.0.0.1:8443"\n[tls]\ncert = "dev/device.crt"\nkey = "dev/device.key"\n'
                      'client_ca = "ca/fleet-ca.crt"\n[trust]\npublisher_keys = ["pub.pem"]\n')
    result = invoke("agent", "serve", "--config", config, "--check")
    assert result.stdout == (f"{config}: OK — device dev-1 (qcs6490) on https://127.0.0.1:8443, trusting "
                             f"{signer.key_id}\n")
    assert not (tmp_path / "state").exists()  # --check touches nothing
    # a key file given as the certificate: named, exit 2
    config.write_text(config.read_text().replace('cert = "dev/device.crt"', 'cert = "dev/device.key"'))
    result = invoke("agent", "serve", "--config", config, "--check", expect=2)
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {config}: tls.cert / tls.key (")


def test_serve_with_a_bad_config_exits_2_naming_the_field(invoke, tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "dev-1"\ndevice_typ = "x"\n')
    result = invoke("agent", "serve", "--config", config, expect=2)
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {config}: device_typ is not a known setting (known: ")
    assert result.stderr.endswith(f"({HINT})\n")


def test_serve_on_a_busy_port_exits_2_naming_listen(invoke, tmp_path):
    import socket

    make_pki(invoke, tmp_path)
    (tmp_path / "pub.pem").write_text(dsse.public_key_pem(signer_from_seed(bytes(range(32))).public_key))
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        config = tmp_path / "agent.toml"
        config.write_text(f'device_id = "dev-1"\ndevice_type = "t"\nstate_dir = "state"\nlisten = "127.0.0.1:{port}"\n'
                          '[tls]\ncert = "dev/device.crt"\nkey = "dev/device.key"\nclient_ca = "ca/fleet-ca.crt"\n'
                          '[trust]\npublisher_keys = ["pub.pem"]\n')
        result = invoke("agent", "serve", "--config", config, expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: {config}: listen 127.0.0.1:{port}: cannot listen there "
                             "(Address already in use) (another process may hold the port; choose another)\n")
