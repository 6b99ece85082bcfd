"""Verified downloads from a real local HTTP server, a real S3 store and export directories: exactly the
declared bytes or nothing, transient failures retried, permanent ones not."""

from __future__ import annotations

import hashlib
import os

import pytest
from blob_server import BlobServer, Route
from s3_store import free_ports

from edgegate_cli.download import Blob, Fetcher, RetryPolicy, export_blob, fetch_blob
from edgegate_cli.errors import (
    DigestMismatch,
    ExitCode,
    InvalidInput,
    LengthMismatch,
    StoreCredentialsMissing,
    StoreDenied,
    StoreError,
    StoreNotFound,
    StoreUnreachable,
)

FAST = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.05)
DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def server():
    with BlobServer() as running:
        yield running


def _fetch(blob: Blob, dest, retry: RetryPolicy = FAST):
    return fetch_blob(blob, dest, retry=retry)


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_fetch_over_http(server, tmp_path):
    """The bytes land under the final name in one attempt, with Accept-Encoding: identity (no transparent
    decompression of what gets hashed), and no temp file stays behind."""
    route = server.add("/blob", Route(DATA))
    result = _fetch(Blob(server.url("/blob"), f"sha256:{SHA}", len(DATA)), tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").read_bytes() == DATA
    assert (result.attempts, result.size) == (1, len(DATA))
    assert route.headers[0]["Accept-Encoding"] == "identity"
    assert _leftovers(tmp_path) == ["model.onnx"]


def test_a_declared_length_over_the_blob_is_refused_before_reading(server, tmp_path):
    """Content-Length one byte over: LENGTH_MISMATCH (exit 1) before the body, not retried, nothing kept."""
    route = server.add("/blob", Route(DATA, extra=b"!"))
    with pytest.raises(LengthMismatch) as excinfo:
        _fetch(Blob(server.url("/blob"), SHA, len(DATA)), tmp_path / "m")
    assert excinfo.value.message == (f"{server.url('/blob')}: the source declares {len(DATA) + 1} bytes, more than "
                                     f"the {len(DATA)} expected")
    assert excinfo.value.exit_code == ExitCode.GATES_FAILED
    assert route.requests == 1 and _leftovers(tmp_path) == []


def test_endless_data_is_cut_off_at_the_declared_length(server, tmp_path):
    """Without a Content-Length (chunked), extra bytes stop the download as soon as they arrive."""
    server.add("/blob", Route(DATA, extra=b"x" * (5 << 20), chunked=True))
    with pytest.raises(LengthMismatch) as excinfo:
        _fetch(Blob(server.url("/blob"), SHA, len(DATA)), tmp_path / "m")
    assert excinfo.value.message == f"{server.url('/blob')}: more than the {len(DATA)} declared bytes arrived"
    assert _leftovers(tmp_path) == []


def test_fewer_bytes_than_declared(server, tmp_path):
    server.add("/blob", Route(DATA, truncate=1, chunked=True))
    with pytest.raises(LengthMismatch) as excinfo:
        _fetch(Blob(server.url("/blob"), SHA, len(DATA)), tmp_path / "m")
    assert excinfo.value.message == f"{server.url('/blob')}: {len(DATA) - 1} bytes arrived, {len(DATA)} declared"


def test_wrong_bytes_leave_the_old_file_alone(server, tmp_path):
    """Right length, wrong bytes: DIGEST_MISMATCH naming both digests, not retried; a file already under
    the destination name keeps its content."""
    route = server.add("/blob", Route(DATA, corrupt=True))
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"previous model")
    with pytest.raises(DigestMismatch) as excinfo:
        _fetch(Blob(server.url("/blob"), SHA, len(DATA)), dest)
    actual = hashlib.sha256(Route(DATA, corrupt=True).body()).hexdigest()
    assert excinfo.value.message == f"{server.url('/blob')}: sha256 is {actual}, expected {SHA}"
    assert route.requests == 1
    assert dest.read_bytes() == b"previous model" and _leftovers(tmp_path) == ["model.onnx"]


@pytest.mark.parametrize("failure", ["status", "drop"])
def test_transient_failures_are_retried(server, tmp_path, failure):
    """Two 503s, or two connections dropped mid-body, then success on the third attempt."""
    route = server.add("/blob", Route(DATA, fail_first=2, failure=failure))
    result = _fetch(Blob(server.url("/blob"), SHA, len(DATA)), tmp_path / "m")
    assert (result.attempts, route.requests) == (3, 3)
    assert (tmp_path / "m").read_bytes() == DATA and _leftovers(tmp_path) == ["m"]


def test_retries_are_bounded(server, tmp_path):
    """A server that keeps answering 503 is given up on after the policy's attempts, saying so (exit 3)."""
    route = server.add("/blob", Route(DATA, fail_first=100))
    with pytest.raises(StoreError) as excinfo:
        _fetch(Blob(server.url("/blob"), SHA, len(DATA)), tmp_path / "m")
    assert excinfo.value.message == f"{server.url('/blob')}: the server answered HTTP 503 (gave up after 3 attempts)"
    assert excinfo.value.exit_code == ExitCode.RUN_ERROR
    assert route.requests == 3 and _leftovers(tmp_path) == []


def test_not_found_is_not_retried_and_hides_credentials_and_query(server, tmp_path):
    """404 is STORE_NOT_FOUND at once; a URL's user:password and query (presigned signatures) are not shown."""
    url = f"http://user:pw-secret@127.0.0.1:{server.port}/absent?X-Amz-Signature=sig-secret"
    with pytest.raises(StoreNotFound) as excinfo:
        _fetch(Blob(url, SHA, 1), tmp_path / "m")
    assert excinfo.value.message == f"http://127.0.0.1:{server.port}/absent: the server has no such file (HTTP 404)"


def test_an_unreachable_server_is_a_run_error(tmp_path):
    (port,) = free_ports(1)
    with pytest.raises(StoreUnreachable) as excinfo:
        _fetch(Blob(f"http://127.0.0.1:{port}/blob", SHA, 1), tmp_path / "m")
    assert excinfo.value.message == (f"http://127.0.0.1:{port}/blob: the server did not answer or the connection "
                                     "broke (ConnectError) (gave up after 3 attempts)")
    assert excinfo.value.exit_code == ExitCode.RUN_ERROR


def test_redirects_are_followed(server, tmp_path):
    server.add("/blob", Route(DATA))
    server.add("/old", Route(b"", redirect="/blob"))
    _fetch(Blob(server.url("/old"), SHA, len(DATA)), tmp_path / "m")
    assert (tmp_path / "m").read_bytes() == DATA


@pytest.mark.parametrize("sha,size,location,message", [
    ("abc", 1, "http://h/x", "http://h/x: sha256 'abc' is not 64 lowercase hex"),
    (SHA, -1, "http://h/x", "http://h/x: size -1 is not a byte count"),
    (SHA, 1, "ftp://h/x", "ftp://h/x: not an https://, http://, s3:// or file:// URL or a local path"),
])
def test_a_bad_blob_description(sha, size, location, message):
    with pytest.raises(InvalidInput) as excinfo:
        Blob(location, sha, size)
    assert excinfo.value.message == message


def test_fetch_from_s3(aws_env, s3_server, s3_bucket, tmp_path):
    """s3:// blobs stream through objectstore with the standard AWS environment."""
    s3_server.client().put_object(Bucket=s3_bucket, Key="blobs/sha256/x", Body=DATA)
    result = _fetch(Blob(f"s3://{s3_bucket}/blobs/sha256/x", SHA, len(DATA)), tmp_path / "m")
    assert (tmp_path / "m").read_bytes() == DATA and result.attempts == 1


def test_s3_refusals(aws_env, s3_server, s3_bucket, tmp_path, monkeypatch):
    """From S3 too: a longer object is refused before its body, other bytes are DIGEST_MISMATCH, a missing
    key is STORE_NOT_FOUND, and no credentials is STORE_CREDENTIALS_MISSING; nothing is kept."""
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="long", Body=DATA + b"!")
    client.put_object(Bucket=s3_bucket, Key="wrong", Body=bytes(len(DATA)))
    with pytest.raises(LengthMismatch):
        _fetch(Blob(f"s3://{s3_bucket}/long", SHA, len(DATA)), tmp_path / "m")
    with pytest.raises(DigestMismatch):
        _fetch(Blob(f"s3://{s3_bucket}/wrong", SHA, len(DATA)), tmp_path / "m")
    with pytest.raises(StoreNotFound):
        _fetch(Blob(f"s3://{s3_bucket}/absent", SHA, len(DATA)), tmp_path / "m")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(StoreCredentialsMissing):
        _fetch(Blob(f"s3://{s3_bucket}/wrong", SHA, len(DATA)), tmp_path / "m")
    assert _leftovers(tmp_path) == []


def test_fetch_from_an_export_directory(tmp_path):
    """A file inside a `releases export` directory, by relative path or file:// URL; a path that leaves
    the directory is refused; a longer or missing file is refused like any other source."""
    export = tmp_path / "export"
    (export / "model").mkdir(parents=True)
    (export / "model" / "model.onnx").write_bytes(DATA)
    (tmp_path / "out").mkdir()
    _fetch(export_blob(export, "model/model.onnx", SHA, len(DATA)), tmp_path / "out" / "a")
    _fetch(Blob((export / "model" / "model.onnx").as_uri(), SHA, len(DATA)), tmp_path / "out" / "b")
    assert (tmp_path / "out" / "a").read_bytes() == (tmp_path / "out" / "b").read_bytes() == DATA
    with pytest.raises(LengthMismatch):
        _fetch(export_blob(export, "model/model.onnx", SHA, len(DATA) - 1), tmp_path / "out" / "c")
    with pytest.raises(StoreNotFound):
        _fetch(export_blob(export, "model/other.onnx", SHA, len(DATA)), tmp_path / "out" / "c")
    with pytest.raises(InvalidInput) as excinfo:
        export_blob(export, "model/../../etc/passwd", SHA, 1)
    assert excinfo.value.message == f"{export}: 'model/../../etc/passwd' is not a relative path inside the export " \
                                    "directory"
    assert _leftovers(tmp_path / "out") == ["a", "b"]


def test_one_fetcher_serves_many_blobs(server, tmp_path):
    """A Fetcher keeps one connection pool; each fetch reports its own attempts."""
    server.add("/a", Route(b"a" * 10))
    server.add("/b", Route(b"b" * 20, fail_first=1))
    with Fetcher(retry=FAST) as fetcher:
        first = fetcher.fetch(Blob(server.url("/a"), hashlib.sha256(b"a" * 10).hexdigest(), 10), tmp_path / "a")
        second = fetcher.fetch(Blob(server.url("/b"), hashlib.sha256(b"b" * 20).hexdigest(), 20), tmp_path / "b")
    assert (first.attempts, second.attempts) == (1, 2)


@pytest.mark.parametrize("route_options,error", [({}, None), ({"corrupt": True}, DigestMismatch),
                                                 ({"extra": b"!", "chunked": True}, LengthMismatch)])
def test_large_blobs_hashed_in_a_second_thread(server, tmp_path, route_options, error):
    """From 8 MiB on, sha256 runs in a second thread: the same bytes verify, wrong or extra ones do not."""
    data = os.urandom(9 << 20)
    server.add("/big", Route(data, **route_options))
    blob = Blob(server.url("/big"), hashlib.sha256(data).hexdigest(), len(data))
    if error is None:
        _fetch(blob, tmp_path / "big")
        assert hashlib.sha256((tmp_path / "big").read_bytes()).hexdigest() == blob.sha256
    else:
        with pytest.raises(error):
            _fetch(blob, tmp_path / "big")
        assert _leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def tls_ca():
    import trustme

    return trustme.CA()


def test_https_with_a_private_ca(tls_ca, tmp_path):
    """https:// verifies the server against the given CA bundle (e.g. a fleet's own CA)."""
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    with BlobServer(tls=tls_ca.issue_cert("127.0.0.1")) as tls_server:
        tls_server.add("/blob", Route(DATA))
        fetch_blob(Blob(tls_server.url("/blob"), SHA, len(DATA)), tmp_path / "m", retry=FAST, ca_bundle=ca_file)
    assert (tmp_path / "m").read_bytes() == DATA


def test_an_untrusted_certificate_is_refused_at_once(tls_ca, tmp_path):
    """Without the CA, TLS verification fails: STORE_UNREACHABLE, not retried (same certificate next time),
    and no request reached the server."""
    with BlobServer(tls=tls_ca.issue_cert("127.0.0.1")) as tls_server:
        route = tls_server.add("/blob", Route(DATA))
        with pytest.raises(StoreUnreachable) as excinfo:
            _fetch(Blob(tls_server.url("/blob"), SHA, len(DATA)), tmp_path / "m")
    assert excinfo.value.message == f"{tls_server.url('/blob')}: TLS certificate verification failed"
    assert excinfo.value.transient is False and route.requests == 0


def test_a_redirect_from_https_to_http_is_refused_before_the_request(tls_ca, server, tmp_path):
    """The plain-http target never sees a request: model bytes do not travel in the clear."""
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    target = server.add("/blob", Route(DATA))
    with BlobServer(tls=tls_ca.issue_cert("127.0.0.1")) as tls_server:
        tls_server.add("/old", Route(b"", redirect=server.url("/blob")))
        with pytest.raises(StoreDenied) as excinfo:
            fetch_blob(Blob(tls_server.url("/old"), SHA, len(DATA)), tmp_path / "m", retry=FAST, ca_bundle=ca_file)
    assert excinfo.value.message == f"{tls_server.url('/old')}: redirected from https to plain http; refused"
    assert target.requests == 0


def test_a_redirect_loop_is_bounded(server, tmp_path):
    loop = server.add("/loop", Route(b"", redirect="/loop"))
    with pytest.raises(StoreError) as excinfo:
        _fetch(Blob(server.url("/loop"), SHA, 1), tmp_path / "m")
    assert excinfo.value.message == f"{server.url('/loop')}: more than 5 redirects"
    assert loop.requests == 6


def test_a_missing_ca_bundle_is_invalid_input(server, tmp_path):
    server.add("/blob", Route(DATA))
    with pytest.raises(InvalidInput) as excinfo:
        fetch_blob(Blob(server.url("/blob"), SHA, len(DATA)), tmp_path / "m", ca_bundle=tmp_path / "absent.pem")
    assert excinfo.value.message == f"{tmp_path / 'absent.pem'}: not a readable PEM file of CA certificates"
