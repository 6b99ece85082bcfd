"""Shared by the rollout tests: a home with a signing key, two releases published (--force, so no run is
needed; the agents here do not require evidence), a fleet of real `edgegate agent serve` processes on
127.0.0.1 registered in the home (fleet.devices) with the fleet's TLS material (fleet.tls), installed
on 1.0.0, and background inference traffic (health analysis needs data: "no data" is never healthy).

Every process is stopped by its fixture; every wait is bounded."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.fixtures import AgentProcess, metric
from agent.models import linear_bytes
from agent.releases import push, read_export


@dataclass
class Fleet:
    home: Path
    agents: list[AgentProcess]
    r1: object  # agent.releases.Release of qs@1.0.0
    r2: object  # qs@1.1.0
    traffic: Traffic | None = None

    def reports(self) -> dict[str, str]:
        """device id -> the sha256 its agent reports active (asked now, over mutual TLS)."""
        out = {}
        for a in self.agents:
            with a.client() as client:
                out[a.device_id] = client.get("/v1/status").json()["active"]["sha256"]
        return out

    def deploy_swaps(self, agent: AgentProcess) -> float:
        with agent.client() as client:
            return metric(client, "edgegate_agent_swaps_total", kind="deploy")


@dataclass
class Traffic:
    """A thread per agent posting /v1/infer every `gap` s until stopped (errors ignored: an agent may be down)."""

    agents: list[AgentProcess]
    gap: float = 0.02
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Traffic:
        for a in self.agents:
            t = threading.Thread(target=self._run, args=(a,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _run(self, agent: AgentProcess) -> None:
        import httpx

        body = {"inputs": {"x": [[0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8]]}}
        with agent.client(timeout=5.0) as client:
            while not self.stop_event.is_set():
                try:
                    client.post("/v1/infer", json=body)
                except httpx.HTTPError:
                    time.sleep(0.1)
                self.stop_event.wait(self.gap)

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=10)


def publish_releases(invoke, tmp_path: Path) -> tuple[Path, object, object]:
    """A signing key, its public key file, and qs@1.0.0 / qs@1.1.0 (different models) published + exported."""
    invoke("keys", "generate")
    pem = tmp_path / "publisher.pem"
    pem.write_text(json.loads(invoke("keys", "export", "--json").stdout)["public_key"])
    releases = []
    for seed, version in ((1, "1.0.0"), (2, "1.1.0")):
        model = tmp_path / f"model-{version}.onnx"
        model.write_bytes(linear_bytes(seed))
        invoke("publish", model, "--name", "qs", "--version", version, "--force")
        invoke("releases", "export", f"qs@{version}", tmp_path / f"export-{version}")
        releases.append(read_export(tmp_path / f"export-{version}"))
    return pem, releases[0], releases[1]


def register(home: Path, agents: list[AgentProcess], pki, regions: dict[str, str] | None = None) -> None:
    """Each agent as a fleet device of the home (the fleet contract's upsert_device), and the fleet's TLS
    material: the test PKI's CA and release-box client certificate where fleet.tls looks for them."""
    from edgegate_cli.fleet.devices import Device, upsert_device
    from edgegate_cli.fleet.tls import fleet_paths
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace(Home(home, "--home"))
    paths = fleet_paths(ws)
    pairs = ((pki.ca_cert, paths.ca_cert), (pki.client[0], paths.client_cert), (pki.client[1], paths.client_key))
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    paths.client_key.chmod(0o600)
    for a in agents:
        upsert_device(ws.db, Device(device_id=a.device_id, address=a.url, device_type="test-board",
                                    region=(regions or {}).get(a.device_id), tags={}, active_release=None,
                                    previous_release=None, last_seen=None))


def make_fleet(invoke, tmp_path: Path, pki, home: Path, n: int = 4, slow: dict[str, float] | None = None,
               traffic: bool = True, regions: dict[str, str] | None = None, started: list | None = None,
               untrusting: set[str] = frozenset()) -> Fleet:
    """n agents dev-0..dev-{n-1} (those in `slow` with inject_latency_ms), registered, all on qs@1.0.0."""
    pem, r1, r2 = publish_releases(invoke, tmp_path)
    agents = []
    for i in range(n):
        device_id = f"dev-{i}"
        agents.append(AgentProcess(tmp_path / f"agent-{device_id}", pki, device_id=device_id, warmup=1,
                                   require_evidence=False,
                                   publisher_keys=[pki.publisher_pem] if device_id in untrusting else [pem],
                                   inject_latency_ms=(slow or {}).get(device_id, 0)))
    fleet = Fleet(home, agents, r1, r2)
    if started is not None:
        started.extend(agents)  # stopped by the caller's fixture even if a later step fails
    for a in agents:
        a.start()
        with a.client() as client:  # an untrusting agent gets 1.0.0 signed by a key it trusts
            release = r1 if a.device_id not in untrusting else resign(r1, tmp_path)
            assert push(client, release)["status"] == "active"
    register(home, agents, pki, regions)
    if traffic:  # and wait (bounded) until every agent has a history on 1.0.0: the "before" baseline
        fleet.traffic = Traffic(agents).start()
        deadline = time.monotonic() + 30
        while any(served(a) < 40 for a in agents):
            assert time.monotonic() < deadline, "the traffic threads did not reach the agents"
            time.sleep(0.1)
    return fleet


def served(agent: AgentProcess) -> float:
    with agent.client() as client:
        return metric(client, "edgegate_agent_inferences_total")


def resign(release, tmp_path: Path):
    """The same release signed by the agent tests' PUBLISHER key (trusted by an 'untrusting' agent)."""
    from agent.fixtures import PUBLISHER
    from agent.releases import Release

    from edgegate_cli.evidence import release_manifest as rm
    from edgegate_cli.evidence.dsse import parse_envelope

    _, payload, _ = parse_envelope(release.envelope)
    statement = json.loads(payload)
    statement["predicate"]["publisher"] = PUBLISHER.key_id
    return Release(release.dir, rm.sign_release(statement, PUBLISHER), release.name, release.version,
                   release.identity, release.files)


def stop_fleet(fleet: Fleet) -> None:
    if fleet.traffic:
        fleet.traffic.stop()
    for a in fleet.agents:
        a.stop()
