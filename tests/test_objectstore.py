"""objectstore: s3:// URLs, the boto3 wrapper against a real SeaweedFS, and the error mapping."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from s3_store import free_ports

from edgegate_cli.errors import (
    ExitCode,
    InvalidInput,
    LengthMismatch,
    StoreCredentialsMissing,
    StoreDenied,
    StoreError,
    StoreNotFound,
    StoreUnreachable,
)
from edgegate_cli.objectstore import ObjectStore, S3Location, parse_s3_url
from edgegate_cli.objectstore.failures import map_store_error


@pytest.mark.parametrize("url,bucket,prefix", [
    ("s3://releases", "releases", ""),
    ("s3://releases/", "releases", ""),
    ("s3://my.bucket-1/edge/models/", "my.bucket-1", "edge/models"),
])
def test_parse_s3_url(url, bucket, prefix):
    """Bucket and prefix are split; slashes around the prefix are dropped; keys join with one '/'."""
    location = parse_s3_url(url)
    assert location == S3Location(bucket, prefix)
    assert location.key("blobs/x") == (f"{prefix}/blobs/x" if prefix else "blobs/x")


@pytest.mark.parametrize("url,message", [
    ("https://bucket/x", "'https://bucket/x' is not an s3:// URL"),
    ("s3://Bucket/x", "'s3://Bucket/x': bucket name 'Bucket' is not valid"),
    ("s3://ab", "'s3://ab': bucket name 'ab' is not valid"),
    ("s3://a_b/x", "'s3://a_b/x': bucket name 'a_b' is not valid"),
    ("s3://bucket/a/../b", "'s3://bucket/a/../b': the key prefix has an empty, '.' or '..' part"),
    ("s3://bucket/a//b", "'s3://bucket/a//b': the key prefix has an empty, '.' or '..' part"),
    ("s3://bucket/a\x1b[31m", "'s3://bucket/a\\x1b[31m': control characters, backslashes, '?' and '#' are not "
                              "allowed in an s3:// URL"),
    ("s3://bucket/a?versionId=1", "'s3://bucket/a?versionId=1': control characters, backslashes, '?' and '#' are "
                                  "not allowed in an s3:// URL"),
])
def test_parse_s3_url_refuses(url, message):
    """A bad URL is InvalidInput (exit 2) with one line naming it; control characters come out escaped."""
    with pytest.raises(InvalidInput) as excinfo:
        parse_s3_url(url)
    assert excinfo.value.message == message
    assert excinfo.value.exit_code == ExitCode.INVALID_INPUT


def test_round_trip_with_the_standard_environment(aws_env, s3_bucket):
    """Credentials and endpoint come from AWS_ACCESS_KEY_ID/SECRET and AWS_ENDPOINT_URL alone (botocore reads
    the endpoint variable itself); put, head, list and a bounded read all work."""
    store = ObjectStore(f"s3://{s3_bucket}/rel")
    assert store.endpoint_url == aws_env["AWS_ENDPOINT_URL"]
    info = store.put_bytes(store.location.key("a.json"), b'{"a":1}', content_type="application/json")
    store.put_bytes(store.location.key("b/c.bin"), b"\x00" * 10)
    store.put_bytes("outside.txt", b"not under the prefix")
    head = store.head("rel/a.json")
    assert (head.size, head.content_type, head.etag) == (7, "application/json", info.etag)
    assert [(o.key, o.size) for o in store.list("rel/")] == [("rel/a.json", 7), ("rel/b/c.bin", 10)]
    with store.get_stream("rel/a.json", max_bytes=7, chunk_size=3) as chunks:
        assert list(chunks) == [b'{"a', b'":1', b"}"]


def test_the_s3_specific_endpoint_variable_is_honoured(aws_env, s3_bucket, monkeypatch):
    """AWS_ENDPOINT_URL_S3 (service-specific) works as well as AWS_ENDPOINT_URL."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_env["AWS_ENDPOINT_URL"])
    store = ObjectStore(f"s3://{s3_bucket}")
    store.put_bytes("k", b"v")
    assert store.head("k").size == 1


def test_a_named_profile_supplies_keys_and_endpoint(aws_env, s3_server, s3_bucket, monkeypatch, tmp_path):
    """AWS_PROFILE-style profiles from ~/.aws/config work, endpoint_url included; the environment's keys
    are not needed."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    config = tmp_path / "aws-config"
    config.write_text(f"[profile edge]\naws_access_key_id = {s3_server.access_key}\n"
                      f"aws_secret_access_key = {s3_server.secret_key}\nendpoint_url = {s3_server.endpoint_url}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    ObjectStore(f"s3://{s3_bucket}", profile="edge").put_bytes("p", b"via profile")
    monkeypatch.setenv("AWS_PROFILE", "edge")
    assert ObjectStore(f"s3://{s3_bucket}").head("p").size == len(b"via profile")


def test_put_file_streams_a_multipart_upload(aws_env, s3_bucket, tmp_path):
    """A file larger than the part size goes up in parts (the multipart ETag ends in -<parts>) and reads
    back with the same sha256."""
    path = tmp_path / "model.bin"
    data = os.urandom(12 << 20)
    path.write_bytes(data)
    store = ObjectStore(f"s3://{s3_bucket}")
    assert store.put_file("models/model.bin", path, part_size=5 << 20).size == len(data)
    head = store.head("models/model.bin")
    assert head.size == len(data) and head.etag.endswith("-3")
    digest = hashlib.sha256()
    with store.get_stream("models/model.bin", max_bytes=len(data)) as chunks:
        for chunk in chunks:
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_key_with_control_characters_is_shown_escaped(aws_env, s3_bucket):
    """Keys are the caller's; an error naming one never echoes its control characters raw."""
    with pytest.raises(StoreNotFound) as excinfo, ObjectStore(f"s3://{s3_bucket}").get_stream("a\x1b[2Jb", max_bytes=1):
        pass
    assert excinfo.value.message.startswith(f"'s3://{s3_bucket}/a\\x1b[2Jb': no such object at ")


def test_put_file_of_a_missing_file(aws_env, s3_bucket, tmp_path):
    with pytest.raises(InvalidInput) as excinfo:
        ObjectStore(f"s3://{s3_bucket}").put_file("k", tmp_path / "absent.bin")
    assert excinfo.value.message == f"{tmp_path / 'absent.bin'}: no such file"


def test_get_stream_refuses_an_object_longer_than_declared(aws_env, s3_bucket):
    """The store's Content-Length is checked before the body is read: one byte over is LENGTH_MISMATCH."""
    store = ObjectStore(f"s3://{s3_bucket}")
    store.put_bytes("blob", b"0123456789")
    with pytest.raises(LengthMismatch) as excinfo, store.get_stream("blob", max_bytes=9):
        pytest.fail("the stream must not open")
    assert excinfo.value.message == f"s3://{s3_bucket}/blob: the store holds 10 bytes, more than the 9 declared"
    assert excinfo.value.exit_code == ExitCode.GATES_FAILED


def test_missing_key_and_bucket(aws_env, s3_bucket):
    """A missing key is STORE_NOT_FOUND on read and None on head; a missing bucket says so."""
    store = ObjectStore(f"s3://{s3_bucket}/p")
    with pytest.raises(StoreNotFound) as excinfo, store.get_stream("p/absent", max_bytes=10):
        pass
    assert excinfo.value.message == f"s3://{s3_bucket}/p/absent: no such object at {aws_env['AWS_ENDPOINT_URL']}"
    assert (excinfo.value.code, excinfo.value.exit_code) == ("STORE_NOT_FOUND", ExitCode.INVALID_INPUT)
    assert store.head("p/absent") is None
    with pytest.raises(StoreNotFound) as excinfo:
        ObjectStore(f"s3://{s3_bucket}-gone").put_bytes("k", b"v")
    assert excinfo.value.message == f"s3://{s3_bucket}-gone/k: bucket does not exist at {aws_env['AWS_ENDPOINT_URL']}"


def test_missing_credentials_are_a_clear_invalid_input(aws_env, s3_bucket, monkeypatch):
    """No keys anywhere in the chain: STORE_CREDENTIALS_MISSING, exit 2, naming the URL and the variables."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreCredentialsMissing) as excinfo:
        ObjectStore(f"s3://{s3_bucket}/x").put_bytes("x/k", b"v")
    err = excinfo.value
    assert (err.code, err.exit_code) == ("STORE_CREDENTIALS_MISSING", ExitCode.INVALID_INPUT)
    assert err.message == f"s3://{s3_bucket}/x/k: no usable S3 credentials were found"
    assert err.hint == ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in "
                        "~/.aws/credentials")


def test_an_unknown_profile_is_a_clear_invalid_input(aws_env, s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(StoreCredentialsMissing) as excinfo:
        ObjectStore(f"s3://{s3_bucket}")
    assert excinfo.value.message == f"s3://{s3_bucket}: AWS profile 'nope' is not configured"


def test_wrong_credentials_are_denied_without_echoing_them(aws_env, s3_bucket, monkeypatch):
    """A wrong secret is STORE_DENIED (exit 2); neither the key nor the secret appears in the error."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
    with pytest.raises(StoreDenied) as excinfo:
        ObjectStore(f"s3://{s3_bucket}").put_bytes("k", b"v")
    err = excinfo.value
    assert err.message == (f"s3://{s3_bucket}/k: {aws_env['AWS_ENDPOINT_URL']} does not accept these credentials "
                           "(SignatureDoesNotMatch)")
    text = json.dumps(err.to_dict())
    assert "not-the-secret" not in text and aws_env["AWS_ACCESS_KEY_ID"] not in text


def test_a_read_only_identity_is_denied_a_write(s3_server, aws_env, s3_bucket, monkeypatch):
    for name, value in s3_server.env(reader=True).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StoreDenied) as excinfo:
        ObjectStore(f"s3://{s3_bucket}").put_bytes("status/dev-1.json", b"{}")
    assert excinfo.value.message == (f"s3://{s3_bucket}/status/dev-1.json: {aws_env['AWS_ENDPOINT_URL']} denied "
                                     "access (AccessDenied)")


def test_an_unreachable_store_is_a_run_error(aws_env, monkeypatch):
    """Nothing listening at the endpoint: STORE_UNREACHABLE, exit 3, naming host and port."""
    (port,) = free_ports(1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(StoreUnreachable) as excinfo:
        ObjectStore("s3://releases/p", max_attempts=1).put_bytes("p/k", b"v")
    err = excinfo.value
    assert (err.code, err.exit_code) == ("STORE_UNREACHABLE", ExitCode.RUN_ERROR)
    assert err.message == f"s3://releases/p/k: the object store at http://127.0.0.1:{port} did not answer or the " \
                          "connection broke"


def test_an_invalid_endpoint_url(aws_env, monkeypatch):
    with pytest.raises(InvalidInput) as excinfo:
        ObjectStore("s3://releases", endpoint_url="ftp://user:pw@host/")
    assert excinfo.value.message == "endpoint 'ftp://host' is not an http:// or https:// URL"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "not a url")
    with pytest.raises(InvalidInput) as excinfo:
        ObjectStore("s3://releases")
    assert excinfo.value.message == "s3://releases: the S3 endpoint URL is not valid"


def test_an_invalid_region(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "not a region!")
    with pytest.raises(InvalidInput) as excinfo:
        ObjectStore("s3://releases")
    assert excinfo.value.message == "s3://releases: the S3 client configuration is invalid (InvalidRegionError)"


def _client_error(status: int, code: str):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "server text\nsecond line"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("status,code,cls,transient,shown", [
    (503, "SlowDown", StoreError, True, "SlowDown"),
    (500, "InternalError", StoreError, True, "InternalError"),
    (429, "TooManyRequests", StoreError, True, "TooManyRequests"),
    (400, "InvalidArgument", StoreError, False, "InvalidArgument"),
    (403, "\x1b[31mEvil", StoreDenied, None, "??31mEvil"),
])
def test_store_replies_map_to_errors(status, code, cls, transient, shown):
    """Server error statuses are transient STORE_ERRORs (exit 3), a 4xx is not; the server's code is shown
    with anything but letters and digits masked, and its free text never."""
    err = map_store_error(_client_error(status, code), "s3://b/k", "http://h:1")
    assert type(err) is cls
    assert shown in err.message and "server text" not in err.message and "\x1b" not in err.message
    if transient is not None:
        assert err.transient is transient


def test_importing_the_modules_loads_no_client_library():
    """objectstore and download import boto3, botocore, httpx and tenacity only when used."""
    probe = ("import sys, edgegate_cli.objectstore, edgegate_cli.objectstore.failures, edgegate_cli.download; "
             "print([m for m in ('boto3', 'botocore', 'httpx', 'tenacity', 's3transfer') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
