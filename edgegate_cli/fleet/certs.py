"""The one certificate code path of the fleet (SPEC §10.2–10.3): a fleet CA, device server certificates
and release-box client certificates, ECDSA P-256 through `cryptography`. Devices and the release box
authenticate each other with mutual TLS against the fleet CA.

Files (PEM): `<dir>/fleet-ca.crt` + `fleet-ca.key`, `<dir>/<name>.crt` + `<name>.key`. Private keys
are unencrypted PKCS#8, mode 0600 from the moment they exist; nothing is ever overwritten.
`cryptography` is imported inside functions so `--help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput

CA_NAME = "fleet-ca"
CA_DAYS = 3650
LEAF_DAYS = 397  # the CA/Browser Forum limit for server certificates; a habit worth keeping
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@dataclass(frozen=True)
class IssuedCert:
    cert: str  # path of the certificate (PEM)
    key: str  # path of the private key (PEM, 0600)
    subject: str  # the certificate's common name
    not_after: str  # ISO-8601 UTC
    sha256: str  # fingerprint of the DER certificate, "sha256:<hex>"
    ca: str  # path of the CA certificate that signed it (itself for a CA)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_name(value: str, what: str) -> str:
    if not NAME_RE.match(value or ""):
        raise InvalidInput(f"{what} is {value!r}, expected letters, digits and ._- (at most 64, starting with a "
                           "letter or digit)")
    return value


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` (O_EXCL: never overwrite, never a moment with wider permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except FileExistsError:
        raise InvalidInput(f"{path} already exists; EdgeGate never overwrites a certificate or key",
                           hint="choose another directory, or move the old files away first") from None
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _save(out_dir: Path, name: str, cert, key, ca_path: Path | None, subject: str) -> IssuedCert:
    from cryptography.hazmat.primitives import hashes, serialization

    cert_path, key_path = out_dir / f"{name}.crt", out_dir / f"{name}.key"
    for path in (cert_path, key_path):
        if path.exists():
            raise InvalidInput(f"{path} already exists; EdgeGate never overwrites a certificate or key",
                               hint="choose another directory, or move the old files away first")
    _write_new(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return IssuedCert(cert=str(cert_path), key=str(key_path), subject=subject,
                      not_after=cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                      sha256="sha256:" + cert.fingerprint(hashes.SHA256()).hex(),
                      ca=str(ca_path or cert_path))


def _builder(subject_cn: str, issuer_name, public_key, days: int):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    now = _now()
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
            .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def create_ca(out_dir: Path | str, *, days: int = CA_DAYS, common_name: str = "EdgeGate fleet CA") -> IssuedCert:
    """Make a fleet CA (self-signed, path length 0) as `<out_dir>/fleet-ca.crt` and `.key`.

    Raises InvalidInput when either file exists.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(common_name, None, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _save(Path(out_dir), CA_NAME, cert, key, None, common_name)


def _load_ca(ca_dir: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = ca_dir / f"{CA_NAME}.crt", ca_dir / f"{CA_NAME}.key"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        raise InvalidInput(f"{exc.filename}: cannot read the fleet CA ({exc.strerror})",
                           hint="make one with `edgegate agent certs ca DIR`") from None
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{ca_dir}: not a fleet CA certificate and key ({exc})") from None
    return cert, key, cert_path


def _issue(ca_dir: Path | str, out_dir: Path | str, name: str, cn: str, *, hosts: list[str], client: bool,
           days: int) -> IssuedCert:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_cert, ca_key, ca_path = _load_ca(Path(ca_dir))
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (_builder(cn, ca_cert.subject, key.public_key(), days)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
    return _save(Path(out_dir), name, builder.sign(ca_key, hashes.SHA256()), key, ca_path, cn)


def _san(host: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        if not re.match(r"^[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})\Z", host):
            raise InvalidInput(f"--host {host!r} is neither an IP address nor a DNS name") from None
        return x509.DNSName(host)


def issue_device_cert(ca_dir: Path | str, out_dir: Path | str, device_id: str, hosts: list[str], *,
                      days: int = LEAF_DAYS) -> IssuedCert:
    """A device's TLS server certificate (`<out_dir>/device.crt`, `.key`), CN = device id, SANs = hosts.

    The release box checks it against the fleet CA and the host it dials. Raises InvalidInput.
    """
    _check_name(device_id, "--device-id")
    if not hosts:
        raise InvalidInput("give at least one --host (the address or name the release box dials)")
    return _issue(ca_dir, out_dir, "device", device_id, hosts=hosts, client=False, days=days)


def issue_client_cert(ca_dir: Path | str, out_dir: Path | str, name: str = "release-box", *,
                      days: int = LEAF_DAYS) -> IssuedCert:
    """A client certificate (`<out_dir>/<name>.crt`, `.key`) that agents accept for mutual TLS."""
    _check_name(name, "--name")
    return _issue(ca_dir, out_dir, name, name, hosts=[], client=True, days=days)
