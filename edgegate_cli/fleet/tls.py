"""Where the fleet's TLS material lives in a home: HOME/fleet/ca/fleet-ca.crt|.key (the CA, made by
fleet/certs.py) and HOME/fleet/client/release-box.crt|.key (the release box's client certificate), keys 0600.

Minimal version of the fleet contract (/work/notes/contract14.md) written by the rollout helper; the
fleet helper's branch owns this module.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput


class FleetCAMissing(InvalidInput):
    code = "FLEET_CA_MISSING"


@dataclass(frozen=True)
class FleetTLS:
    ca_cert: Path
    client_cert: Path
    client_key: Path

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies agents against the fleet CA (hostname included) and presents the client certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_cert))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def fleet_paths(ws) -> FleetTLS:
    root = Path(ws.home.path) / "fleet"
    return FleetTLS(root / "ca" / "fleet-ca.crt", root / "client" / "release-box.crt",
                    root / "client" / "release-box.key")


def fleet_tls(ws) -> FleetTLS:
    paths = fleet_paths(ws)
    for path in (paths.ca_cert, paths.client_cert, paths.client_key):
        if not path.is_file():
            raise FleetCAMissing(f"{path} is missing: this home has no fleet CA or client certificate",
                                 hint="edgegate fleet ca init")
    return paths
