"""The SeaweedFS fixture is a real S3 store: signed requests work, everything else is refused, and it is
gone after teardown."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError
from s3_store import running_seaweedfs


def _error_code(excinfo) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_put_and_get_with_boto3(s3_server, s3_bucket):
    """An object written with the admin identity reads back byte for byte, with its content type."""
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="dir/blob.bin", Body=b"\x00edge\xff", ContentType="application/x-test")
    got = client.get_object(Bucket=s3_bucket, Key="dir/blob.bin")
    assert got["Body"].read() == b"\x00edge\xff"
    assert got["ContentType"] == "application/x-test"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]] == ["dir/blob.bin"]


def test_each_test_gets_an_empty_bucket_of_its_own(s3_server, s3_bucket):
    """The per-test bucket starts empty and is not one of the other tests' buckets."""
    assert s3_server.client().list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0


def test_unsigned_requests_are_refused(s3_server, s3_bucket):
    """With identities configured, an anonymous GET, PUT or listing gets 403."""
    s3_server.client().put_object(Bucket=s3_bucket, Key="k", Body=b"secret")
    with httpx.Client(base_url=s3_server.endpoint_url, timeout=10) as http:
        assert http.get(f"/{s3_bucket}/k").status_code == 403
        assert http.put(f"/{s3_bucket}/other", content=b"x").status_code == 403
        assert http.get(f"/{s3_bucket}").status_code == 403
    assert s3_server.client().head_object(Bucket=s3_bucket, Key="k")["ContentLength"] == 6
    with pytest.raises(ClientError) as excinfo:
        s3_server.client().head_object(Bucket=s3_bucket, Key="other")
    assert _error_code(excinfo)[0] == 404  # the anonymous PUT stored nothing


@pytest.mark.parametrize("which,code", [("secret", "SignatureDoesNotMatch"), ("key", "InvalidAccessKeyId")])
def test_wrong_credentials_are_refused(s3_server, s3_bucket, which, code):
    """A wrong secret fails the signature check; an unknown access key is refused outright."""
    access = "EGNOSUCHKEY000000000" if which == "key" else s3_server.access_key
    secret = "wrong-secret-0123456789" if which == "secret" else s3_server.secret_key
    with pytest.raises(ClientError) as excinfo:
        s3_server.client(access, secret).list_objects_v2(Bucket=s3_bucket)
    assert _error_code(excinfo) == (403, code)


def test_the_reader_identity_reads_but_cannot_write(s3_server, s3_bucket):
    """The read-only identity gets objects; its PUT is AccessDenied (403)."""
    s3_server.client().put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    reader = s3_server.client(s3_server.reader_access_key, s3_server.reader_secret_key)
    assert reader.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"
    with pytest.raises(ClientError) as excinfo:
        reader.put_object(Bucket=s3_bucket, Key="k2", Body=b"v")
    assert _error_code(excinfo) == (403, "AccessDenied")


def test_a_missing_key_is_404(s3_server, s3_bucket):
    """GET of an absent key is NoSuchKey/404; HEAD is a bare 404; a missing bucket is NoSuchBucket."""
    client = s3_server.client()
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=s3_bucket, Key="absent")
    assert _error_code(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=s3_bucket, Key="absent")
    assert _error_code(excinfo)[0] == 404
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=s3_bucket + "-gone", Key="absent")
    assert _error_code(excinfo) == (404, "NoSuchBucket")


def _refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_server_is_gone_after_teardown(tmp_path):
    """Leaving `running_seaweedfs` stops weed with SIGTERM (exit 0): the process is reaped, every port it
    listened on refuses connections, and its unix sockets in /tmp are removed."""
    with running_seaweedfs(tmp_path / "weed") as server:
        assert server.process.poll() is None and server.startup_seconds > 0
        assert not _refuses_connections(server.ports["s3.port"])
        server.client().list_buckets()
    assert server.process.returncode == 0
    assert _pid_gone(server.process.pid)
    assert all(_refuses_connections(port) for port in server.ports.values())
    ours = {str(p) for p in server.ports.values()}
    assert [p for p in Path("/tmp").glob("seaweedfs-*.sock") if p.stem.rsplit("-", 1)[-1] in ours] == []


def test_a_server_that_ignores_sigterm_is_killed(tmp_path):
    """Teardown is bounded: a stopped (SIGSTOP) server cannot act on SIGTERM, so stop() kills it."""
    with running_seaweedfs(tmp_path / "weed") as server:
        os.kill(server.process.pid, signal.SIGSTOP)
        assert server.stop(timeout=0.5) == -signal.SIGKILL
    assert _pid_gone(server.process.pid)
    assert _refuses_connections(server.ports["s3.port"])


def test_a_device_identity_can_be_scoped_to_its_own_status_key(tmp_path):
    """SeaweedFS scopes actions to key prefixes (`Write:BUCKET/prefix*`), as an IAM policy does on AWS: a
    device's keys read releases and write its own status/<device>/ keys, and nothing else."""
    from s3_store import identity

    entry, access, secret = identity("dev-1", ["Read:fleet/releases/*", "List:fleet",
                                               "Write:fleet/status/dev-1/*"])
    with running_seaweedfs(tmp_path / "weed", extra_identities=[entry]) as server:
        admin = server.client()
        admin.create_bucket(Bucket="fleet")
        admin.put_object(Bucket="fleet", Key="releases/stable.json", Body=b"{}")
        admin.put_object(Bucket="fleet", Key="keys/private.json", Body=b"{}")
        device = server.client(access, secret)
        assert device.get_object(Bucket="fleet", Key="releases/stable.json")["Body"].read() == b"{}"
        device.put_object(Bucket="fleet", Key="status/dev-1/status.json", Body=b'{"ok":true}')
        for call in (lambda: device.get_object(Bucket="fleet", Key="keys/private.json"),
                     lambda: device.put_object(Bucket="fleet", Key="status/dev-2/status.json", Body=b"{}"),
                     lambda: device.put_object(Bucket="fleet", Key="releases/stable.json", Body=b"{}")):
            with pytest.raises(ClientError) as excinfo:
                call()
            assert _error_code(excinfo) == (403, "AccessDenied")
        assert admin.get_object(Bucket="fleet", Key="releases/stable.json")["Body"].read() == b"{}"
