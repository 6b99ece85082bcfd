"""fleet health against real `edgegate agent serve` processes on 127.0.0.1, over mutual TLS with the home's
fleet CA (`fleet ca init`); a dead device is reported unreachable and never healthy."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent.fixtures import AgentProcess, Pki, free_port, make_pki

from edgegate_cli.fleet import certs


def _home_pki(home: Path, tmp_path: Path) -> Pki:
    """The agent fixtures' PKI, but with the device and client certificates of this home's fleet CA."""
    base = make_pki(tmp_path / "base")  # publisher keys (and a foreign CA we do not use)
    ca_dir = home / "fleet" / "ca"
    device = certs.issue_device_cert(ca_dir, tmp_path / "device", "dev", ["127.0.0.1"])
    client = (home / "fleet" / "client" / "release-box.crt", home / "fleet" / "client" / "release-box.key")
    return Pki(ca_dir / "fleet-ca.crt", (Path(device.cert), Path(device.key)), client, base.foreign_client,
               base.publisher_pem, base.revoked_pem)


def test_health_polls_real_agents_and_reports_the_unreachable(invoke, tmp_path):
    home = Path(os.environ["EDGEGATE_HOME"])
    invoke("fleet", "ca", "init")
    assert oct((home / "fleet" / "ca" / "fleet-ca.key").stat().st_mode & 0o777) == "0o600"
    assert oct((home / "fleet" / "client" / "release-box.key").stat().st_mode & 0o777) == "0o600"
    pki = _home_pki(home, tmp_path)
    agents = [AgentProcess(tmp_path / f"a{i}", pki, device_id=f"dev-{i}") for i in range(2)]
    try:
        for agent in agents:
            agent.start()
        dead = f"https://127.0.0.1:{free_port()}"
        rows = [f"dev-{i},{a.url},test-board,eu," for i, a in enumerate(agents)] + [f"dev-9,{dead},test-board,us,"]
        (tmp_path / "fleet.csv").write_text("id,address,type,region,tags\n" + "\n".join(rows) + "\n")
        invoke("fleet", "import", tmp_path / "fleet.csv")
        result = json.loads(invoke("fleet", "health", "--json", "--timeout", "5", "--concurrency", "2",
                                   expect=3).stdout)
        health = {d["device_id"]: d["health"] for d in result["devices"]}
        assert health == {"dev-0": "healthy", "dev-1": "healthy", "dev-9": "unreachable"}
        assert (result["healthy"], result["unhealthy"]) == (2, 1)
        shown = json.loads(invoke("fleet", "show", "dev-0", "--json").stdout)
        assert shown["last_seen"] and shown["last_status"]["device_id"] == "dev-0" and shown["last_error"] is None
        dead_row = json.loads(invoke("fleet", "show", "dev-9", "--json").stdout)
        assert dead_row["last_seen"] is None and "AGENT_UNREACHABLE" in dead_row["last_error"]
        only_eu = json.loads(invoke("fleet", "health", "--filter", "region=eu", "--json").stdout)
        assert only_eu["healthy"] == 2 and only_eu["unhealthy"] == 0
    finally:
        for agent in agents:
            agent.stop()


def test_health_without_a_fleet_ca_is_refused(invoke, tmp_path):
    (tmp_path / "f.csv").write_text("id,address,type\nd1,https://127.0.0.1:1,t\n")
    invoke("fleet", "import", tmp_path / "f.csv")
    refused = invoke("fleet", "health", expect=2)
    assert "FLEET_CA_MISSING" in refused.stderr and "fleet ca init" in refused.stderr


def test_an_agent_of_another_ca_is_never_healthy(invoke, tmp_path):
    """Mutual TLS both ways: an agent whose certificate another CA signed fails verification -> unreachable."""
    invoke("fleet", "ca", "init")
    stranger = AgentProcess(tmp_path / "stranger", make_pki(tmp_path / "other"), device_id="dev-x").start()
    try:
        (tmp_path / "f.csv").write_text(f"id,address,type\ndev-x,{stranger.url},test-board\n")
        invoke("fleet", "import", tmp_path / "f.csv")
        result = json.loads(invoke("fleet", "health", "--json", "--timeout", "5", expect=3).stdout)
        row = result["devices"][0]
        assert row["health"] == "unreachable" and "AGENT_UNREACHABLE" in row["error"], row
    finally:
        stranger.stop()
