"""`fleet enroll`: register a device and write its agent bundle (SPEC §10.2): its TLS server certificate
and key (fleet/certs.py, the one certificate code path), the fleet CA certificate, this home's publisher
public keys (with their revocations), and a starter `agent.toml` in the agent's config format
(agent/config.py). Nothing is overwritten; the device is registered only once its bundle is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InvalidInput
from ..evidence import dsse
from ..evidence.keys import trusted_keys
from .certs import issue_device_cert
from .devices import upsert_device
from .inventory import make_device
from .tls import fleet_tls


def enroll(ws, out_dir: Path, fields: dict) -> dict:
    """Write the bundle for the device `fields` (id, address, type, region, tags) into `out_dir` and register it."""
    device = make_device(fields, "fleet enroll")
    tls = fleet_tls(ws)
    keys = trusted_keys(ws)
    if not keys:
        raise InvalidInput("this home has no publisher key for the agent to trust", hint="edgegate keys generate")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidInput(f"{out_dir} is not empty; EdgeGate never overwrites a device bundle",
                           hint="choose another --out directory")
    parts = urlsplit(device.address)
    host = (parts.hostname or "").strip("[]")
    issued = issue_device_cert(tls.ca_cert.parent, out_dir, device.device_id, [host])
    shutil.copyfile(tls.ca_cert, out_dir / "fleet-ca.crt")
    names, revocations = [], []
    for key_id, (raw, revoked_at) in sorted(keys.items()):
        (out_dir / f"publisher-{key_id}.pem").write_text(dsse.public_key_pem(raw))
        names.append(f'"publisher-{key_id}.pem"')
        if revoked_at:
            revocations.append(f'{{key_id = "{key_id}", revoked_at = "{revoked_at}"}}')
    (out_dir / "agent.toml").write_text(
        f'device_id = "{device.device_id}"\ndevice_type = "{device.device_type}"\nstate_dir = "state"\n'
        f'listen = "0.0.0.0:{parts.port}"\n\n[tls]\ncert = "device.crt"\nkey = "device.key"\n'
        f'client_ca = "fleet-ca.crt"\n\n[trust]\npublisher_keys = [{", ".join(names)}]\n'
        f'revocations = [{", ".join(revocations)}]\n')
    with ws.db.atomic():
        upsert_device(ws.db, device)
        ws.db["devices"].update(device.device_id, {"cert_fingerprint": issued.sha256})
    return {"device_id": device.device_id, "bundle": str(out_dir), "config": str(out_dir / "agent.toml"),
            "cert_sha256": issued.sha256, "not_after": issued.not_after}
