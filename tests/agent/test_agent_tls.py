"""Mutual TLS: the agent answers only clients holding a certificate from the fleet CA."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from .fixtures import client_context


def test_fleet_client_certificate_is_served(shared_agent):
    with shared_agent.client() as client:
        assert client.get("/v1/status").json()["device_id"] == "dev-1"


@pytest.mark.parametrize("which", ["none", "foreign"])
def test_handshake_refused_without_a_fleet_certificate(shared_agent, which):
    """No client certificate, or one from another CA: no HTTP answer ever comes back."""
    cert = None if which == "none" else shared_agent.pki.foreign_client
    with shared_agent.client(cert=cert, timeout=10) as client, pytest.raises(httpx.TransportError):
        client.get("/v1/status")


@pytest.mark.parametrize("which", ["none", "foreign"])
@pytest.mark.parametrize("tls_version", ["TLSv1_2", "TLSv1_3"])
def test_no_http_answer_ever_comes_back(shared_agent, which, tls_version):
    """At the socket: under TLS 1.2 the handshake itself fails; under TLS 1.3 (where the client's
    certificate is checked after the client thinks the handshake is done) the connection ends before
    any application data. Either way the request gets no byte of an answer."""
    cert = None if which == "none" else shared_agent.pki.foreign_client
    ctx = client_context(shared_agent.pki, cert)
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, tls_version)
    received = b""
    with socket.create_connection(("127.0.0.1", shared_agent.port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                while data := tls.recv(4096):
                    received += data
            handshake_failed = False
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            handshake_failed = True
    assert received == b""
    if tls_version == "TLSv1_2":
        assert handshake_failed


def test_the_client_checks_the_device_certificate(shared_agent, tmp_path):
    """The release box refuses a server whose certificate its CA did not sign (the other direction)."""
    from edgegate_cli.fleet.certs import create_ca

    other = create_ca(tmp_path / "other")
    ctx = ssl.create_default_context(cafile=other.cert)
    ctx.load_cert_chain(*map(str, shared_agent.pki.client))
    with httpx.Client(base_url=shared_agent.url, verify=ctx, timeout=10) as client, \
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get("/v1/status")
