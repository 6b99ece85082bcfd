"""Fixtures for the agent tests: a fleet PKI made by `edgegate_cli.fleet.certs` (the one certificate
code path), publisher keys, and real `edgegate agent serve` processes on 127.0.0.1 with mutual TLS.

Every wait is bounded and every process is stopped by the fixture's finalizer.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgegate_cli.evidence import dsse
from edgegate_cli.evidence.keys import signer_from_seed

PUBLISHER = signer_from_seed(bytes(range(100, 132)))
REVOKED = signer_from_seed(bytes(range(140, 172)))  # trusted, but revoked in the config
STRANGER = signer_from_seed(bytes(range(180, 212)))  # never trusted
REVOKED_AT = "2026-01-01T00:00:00.000000Z"
DEVICE_ID, DEVICE_TYPE = "dev-1", "test-board"


@dataclass
class Pki:
    ca_cert: Path
    device: tuple[Path, Path]  # (cert, key)
    client: tuple[Path, Path]
    foreign_client: tuple[Path, Path]  # from another CA
    publisher_pem: Path
    revoked_pem: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def make_pki(root: Path) -> Pki:
    """A fleet CA, a device certificate for 127.0.0.1, a fleet client certificate, a client certificate
    from another CA, and the publisher keys' PEM files, under `root`."""
    from edgegate_cli.fleet import certs

    ca = certs.create_ca(root / "ca")
    device = certs.issue_device_cert(root / "ca", root / "device", DEVICE_ID, ["127.0.0.1", "localhost"])
    client = certs.issue_client_cert(root / "ca", root / "box")
    certs.create_ca(root / "other-ca")
    foreign = certs.issue_client_cert(root / "other-ca", root / "intruder", "intruder")
    (root / "publisher.pem").write_text(dsse.public_key_pem(PUBLISHER.public_key))
    (root / "revoked.pem").write_text(dsse.public_key_pem(REVOKED.public_key))
    return Pki(Path(ca.cert), (Path(device.cert), Path(device.key)), (Path(client.cert), Path(client.key)),
               (Path(foreign.cert), Path(foreign.key)), root / "publisher.pem", root / "revoked.pem")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_context(pki: Pki, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


class AgentProcess:
    """One `edgegate agent serve` process, its config and state directory under `root`."""

    def __init__(self, root: Path, pki: Pki, *, warmup: int = 2, require_evidence: bool = True,
                 extra: str = "", limits: str = "", inject_latency_ms: float = 0,
                 publisher_keys: list[Path] | None = None, device_id: str = DEVICE_ID,
                 args: tuple[str, ...] = (), env: dict[str, str] | None = None):
        self.root, self.pki = root, pki
        self.device_id, self.args, self.env = device_id, tuple(args), env
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.state_dir = root / "state"
        self.config = root / "agent.toml"
        self.log = root / "agent.log"
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)
        keys = ", ".join(f'"{k}"' for k in (publisher_keys or [pki.publisher_pem, pki.revoked_pem]))
        self.config.write_text(
            f'device_id = "{device_id}"\ndevice_type = "{DEVICE_TYPE}"\ncohorts = ["canary"]\n'
            f'state_dir = "state"\nlisten = "127.0.0.1:{self.port}"\nwarmup = {warmup}\n'
            f"require_evidence = {'true' if require_evidence else 'false'}\n{extra}\n"
            f'[tls]\ncert = "{pki.device[0]}"\nkey = "{pki.device[1]}"\nclient_ca = "{pki.ca_cert}"\n\n'
            f'[trust]\npublisher_keys = [{keys}]\n'
            f'revocations = [{{key_id = "{REVOKED.key_id}", revoked_at = "{REVOKED_AT}"}}]\n\n'
            f"[limits]\n{limits}\n\n[testing]\ninject_latency_ms = {inject_latency_ms}\n")

    def start(self, timeout: float = 60.0) -> AgentProcess:
        """Start the process and wait (bounded) until /v1/status answers over mutual TLS."""
        import httpx

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "edgegate_cli.cli", "agent", "serve", "--config",
                                          str(self.config), "--log-level", "info", *self.args],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env} if self.env is not None else None)
        deadline = time.monotonic() + timeout
        with self.client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log.read_text()}")
                try:
                    if client.get("/v1/status").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"agent not ready within {timeout} s:\n{self.log.read_text()}")

    def client(self, cert: tuple[Path, Path] | None | str = "fleet", timeout: float = 30.0):
        import httpx

        cert = self.pki.client if cert == "fleet" else cert
        return httpx.Client(base_url=self.url, verify=client_context(self.pki, cert), timeout=timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)


@pytest.fixture
def agent_factory(tmp_path, pki):
    """make(**settings) starts an agent (see AgentProcess); all are stopped after the test."""
    made: list[AgentProcess] = []

    def make(start: bool = True, **settings) -> AgentProcess:
        process = AgentProcess(tmp_path / f"agent{len(made)}", pki, **settings)
        made.append(process)
        return process.start() if start else process

    yield make
    for process in made:
        process.stop()


@pytest.fixture
def agent(agent_factory) -> AgentProcess:
    return agent_factory()


@pytest.fixture(scope="module")
def shared_agent(tmp_path_factory, pki):
    """One agent for a module's tests that each use their own release names (cheaper than one each)."""
    process = AgentProcess(tmp_path_factory.mktemp("shared-agent"), pki).start()
    yield process
    process.stop()


def refused(response, status: int, code: str) -> str:
    """Assert an answer is the refusal `code` with HTTP `status`; return its message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error["message"]


def metric(client, metric_name: str, **labels) -> float:
    """A sample of /metrics, read with prometheus-client's own parser (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == metric_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
