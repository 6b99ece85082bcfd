"""Fleet certificates (ECDSA P-256): the CA, device server certificates and client certificates, and a
real mutual-TLS handshake between them."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgegate_cli.errors import InvalidInput
from edgegate_cli.fleet import certs


def load(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@pytest.fixture
def ca_dir(tmp_path):
    certs.create_ca(tmp_path / "ca")
    return tmp_path / "ca"


def test_ca_is_a_p256_ca_with_path_length_0(ca_dir):
    cert = load(ca_dir / "fleet-ca.crt")
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert stat.S_IMODE((ca_dir / "fleet-ca.key").stat().st_mode) == 0o600


def test_device_and_client_certificates(ca_dir, tmp_path):
    device = certs.issue_device_cert(ca_dir, tmp_path / "dev", "dev-1", ["127.0.0.1", "dev1.local"])
    client = certs.issue_client_cert(ca_dir, tmp_path / "box")
    dev_cert, box_cert, ca = load(device.cert), load(client.cert), load(ca_dir / "fleet-ca.crt")
    assert device.subject == "dev-1" and client.subject == "release-box"
    sans = dev_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["dev1.local"]
    assert list(dev_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.SERVER_AUTH]
    assert list(box_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    for leaf in (dev_cert, box_cert):
        leaf.verify_directly_issued_by(ca)
    assert stat.S_IMODE(Path(device.key).stat().st_mode) == 0o600


def test_mutual_tls_handshake_between_them(ca_dir, tmp_path):
    device = certs.issue_device_cert(ca_dir, tmp_path / "dev", "dev-1", ["127.0.0.1"])
    client = certs.issue_client_cert(ca_dir, tmp_path / "box")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(device.cert, device.key)
    server_ctx.load_verify_locations(str(ca_dir / "fleet-ca.crt"))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(ca_dir / "fleet-ca.crt"))
    client_ctx.load_cert_chain(client.cert, client.key)
    seen = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def accept():
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()["subject"]
                tls.sendall(b"ok")
        thread = threading.Thread(target=accept)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.recv(2) == b"ok"
        thread.join(timeout=10)
    assert seen["peer"] == ((("commonName", "release-box"),),)


def test_never_overwrites_and_names_bad_input(ca_dir, tmp_path):
    with pytest.raises(InvalidInput, match="fleet-ca.crt already exists; EdgeGate never overwrites"):
        certs.create_ca(ca_dir)
    with pytest.raises(InvalidInput, match="--device-id is 'a b'"):
        certs.issue_device_cert(ca_dir, tmp_path / "d", "a b", ["127.0.0.1"])
    with pytest.raises(InvalidInput, match="give at least one --host"):
        certs.issue_device_cert(ca_dir, tmp_path / "d", "dev-1", [])
    with pytest.raises(InvalidInput, match="--host 'bad host!' is neither an IP address nor a DNS name"):
        certs.issue_device_cert(ca_dir, tmp_path / "d", "dev-1", ["bad host!"])
    with pytest.raises(InvalidInput, match="cannot read the fleet CA"):
        certs.issue_client_cert(tmp_path / "nowhere", tmp_path / "c")
