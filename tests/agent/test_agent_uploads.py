"""Bounded input: blob uploads (hashed as they arrive, cut at the declared length, nothing kept on a
refusal), JSON bodies (size, syntax) and slow clients (cut after the body timeout)."""

from __future__ import annotations

import hashlib
import socket
import time

import httpx
import pytest

from .fixtures import PUBLISHER, client_context, metric, refused
from .models import X, linear_bytes
from .releases import push, write_release

DATA = b"edgegate blob " * 1000
HEX = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def client(shared_agent):
    with shared_agent.client() as client:
        yield client


def leftovers(agent) -> list[str]:
    return sorted(p.name for p in (agent.state_dir / "blobs" / "tmp").iterdir())


def test_upload_then_head_then_skip(client, shared_agent):
    url = f"/v1/blobs/sha256:{HEX}"
    assert client.head(url).status_code == 404
    response = client.put(url, content=DATA, headers={"X-Edgegate-Size": str(len(DATA))})
    assert (response.status_code, response.json()) == (201, {"sha256": f"sha256:{HEX}", "size": len(DATA),
                                                             "stored": True})
    head = client.head(url)
    assert (head.status_code, head.headers["x-edgegate-size"]) == (200, str(len(DATA)))
    again = client.put(url, content=DATA)  # Content-Length alone declares the length too
    assert (again.status_code, again.json()["stored"]) == (200, False)
    blob = shared_agent.state_dir / "blobs" / "sha256" / HEX[:2] / HEX[2:]
    assert blob.read_bytes() == DATA and oct(blob.stat().st_mode & 0o777) == "0o444"


def test_digest_mismatch_keeps_nothing(client, shared_agent):
    wrong = "0" * 64
    message = refused(client.put(f"/v1/blobs/sha256:{wrong}", content=DATA), 422, "DIGEST_MISMATCH")
    assert message == f"blob sha256:{wrong}: the bytes hash to sha256:{HEX}; nothing kept"
    assert client.head(f"/v1/blobs/sha256:{wrong}").status_code == 404
    assert leftovers(shared_agent) == []


def test_declared_size_must_match_content_length(client):
    data = b"short"
    hexdigest = hashlib.sha256(data).hexdigest()
    message = refused(client.put(f"/v1/blobs/sha256:{hexdigest}", content=data, headers={"X-Edgegate-Size": "9"}),
                      422, "LENGTH_MISMATCH")
    assert message == "Content-Length 5 differs from the declared X-Edgegate-Size 9; nothing kept"


def test_chunked_body_shorter_than_declared(client, shared_agent):
    data = b"abc" * 100
    hexdigest = hashlib.sha256(data).hexdigest()
    response = client.put(f"/v1/blobs/sha256:{hexdigest}", content=iter([data]),
                          headers={"X-Edgegate-Size": str(len(data) + 10)})
    assert refused(response, 422, "LENGTH_MISMATCH") == (f"blob sha256:{hexdigest}: {len(data)} bytes arrived, "
                                                         f"{len(data) + 10} declared; nothing kept")
    assert client.head(f"/v1/blobs/sha256:{hexdigest}").status_code == 404 and leftovers(shared_agent) == []


def test_blob_longer_than_declared_is_cut_at_the_limit(shared_agent):
    """64 MiB sent against a declared 1 MiB: the agent stops reading past 1 MiB, answers LENGTH_MISMATCH
    and closes the connection; the client never gets to send most of it, and nothing is kept."""
    declared, total, chunk = 1 << 20, 64 << 20, b"x" * (1 << 16)
    sent = 0

    def body():
        nonlocal sent
        while sent < total:
            sent += len(chunk)
            yield chunk

    with shared_agent.client() as client:
        before = metric(client, "edgegate_agent_refusals_total", code="LENGTH_MISMATCH")
        try:
            response = client.put(f"/v1/blobs/sha256:{'1' * 64}", content=body(),
                                  headers={"X-Edgegate-Size": str(declared)})
        except httpx.TransportError:  # the connection was cut while the client was still sending
            response = None
        if response is not None:
            assert refused(response, 422, "LENGTH_MISMATCH").endswith("cut at the limit, nothing kept")
    assert sent < total // 2
    with shared_agent.client() as client:
        assert client.head(f"/v1/blobs/sha256:{'1' * 64}").status_code == 404
        assert metric(client, "edgegate_agent_refusals_total", code="LENGTH_MISMATCH") == before + 1
    assert leftovers(shared_agent) == []


def test_length_required_and_too_large(client):
    url = f"/v1/blobs/sha256:{HEX}"
    assert refused(client.put(url.replace(HEX, "2" * 64), content=iter([b"x"])), 411, "LENGTH_REQUIRED") == \
        "a blob upload must declare its length (X-Edgegate-Size or Content-Length)"
    huge = str(600 << 20)
    assert refused(client.put(url.replace(HEX, "3" * 64), content=iter([b"x"]), headers={"X-Edgegate-Size": huge}),
                   413, "BODY_TOO_LARGE") == f"the blob declares {huge} bytes; the limit is {500 << 20}"


@pytest.mark.parametrize("digest", ["sha256:ABC", "md5:" + "0" * 32, "sha256:" + "0" * 63])
def test_blob_address_must_be_a_sha256(client, digest):
    assert refused(client.put(f"/v1/blobs/{digest}", content=b"x"), 400, "INVALID_REQUEST") == \
        "blobs are addressed as /v1/blobs/sha256:<64 lowercase hex>"


@pytest.mark.parametrize("body,expected", [
    (b"{not json", "the body is not valid UTF-8 JSON (Expecting property name enclosed in double quotes"),
    (b'{"manifest": NaN}', "the body is not valid UTF-8 JSON (NaN is not JSON)"),
    (b"\xff\xfe", "the body is not valid UTF-8 JSON ("),
    (b"[1, 2]", "the deploy body is not a JSON object"),
    (b'{"nonce": "x"}', "manifest is missing or not an object (the release's DSSE envelope)"),
])
def test_malformed_deploy_bodies(client, body, expected):
    response = client.post("/v1/deploy", content=body, headers={"Content-Type": "application/json"})
    assert refused(response, 400, "INVALID_REQUEST").startswith(expected)


def test_oversized_json_bodies(client):
    big = b'{"x": "' + b"a" * (2 << 20) + b'"}'
    assert refused(client.post("/v1/deploy", content=big), 413, "BODY_TOO_LARGE") == \
        f"the body is {len(big)} bytes; the limit is {1 << 20}"
    chunked = refused(client.post("/v1/rollback", content=iter([big[i:i + 65536] for i in range(0, len(big), 65536)])),
                      413, "BODY_TOO_LARGE")
    assert chunked == f"the body passed the {1 << 20}-byte limit"


def test_a_huge_declared_body_is_cut_without_reading_it(shared_agent):
    """Past the drain cap (8 MiB) the agent answers at once and closes: the client sees the 413 or a
    reset, and the agent serves the next request."""
    body = b"{" + b" " * (20 << 20) + b"}"
    with shared_agent.client() as client:
        try:
            response = client.post("/v1/deploy", content=body)
        except httpx.TransportError:
            response = None
        if response is not None:
            assert refused(response, 413, "BODY_TOO_LARGE") == f"the body is {len(body)} bytes; the limit is {1 << 20}"
    with shared_agent.client() as client:
        assert client.get("/v1/status").status_code == 200


def test_infer_input_errors_are_the_clients_not_the_models(client, tmp_path):
    push(client, write_release(tmp_path / "r", PUBLISHER, name="inputs", version="1.0.0",
                               models={"model.onnx": linear_bytes(5)}))
    assert refused(client.post("/v1/infer", json={"inputs": {"x": [[1, 2]]}}), 400, "INVALID_REQUEST") == \
        "inputs.x has shape [1, 2], the model takes [1, 8]"
    assert refused(client.post("/v1/infer", json={"inputs": {"z": X.tolist()}}), 400, "INVALID_REQUEST") == \
        "inputs must be an object with exactly the model's inputs: x"
    assert refused(client.post("/v1/infer", json={"inputs": {"x": [["a"] * 8]}}), 400, "INVALID_REQUEST") == \
        "inputs.x is not a rectangular array of float32"
    assert metric(client, "edgegate_agent_inference_errors_total", name="inputs", version="1.0.0") == 0


def test_a_stalled_body_is_cut(agent_factory):
    """A client that sends headers and part of its body, then nothing: 408 after body_timeout_s (1 s)."""
    agent = agent_factory(limits="body_timeout_s = 1")
    ctx = client_context(agent.pki, agent.pki.client)
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"POST /v1/deploy HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100\r\n\r\n{\"manif")
        start = time.monotonic()
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = tls.recv(65536)
            if not data:
                break
            reply += data
        waited = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert b'"code":"REQUEST_TIMEOUT"' in reply and b"connection: close" in reply.lower()
    assert 0.8 < waited < 8
