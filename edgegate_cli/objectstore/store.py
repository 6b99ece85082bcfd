"""S3-compatible object stores (AWS S3, MinIO, SeaweedFS, Ceph RGW) through boto3 (SPEC §10.5).

Credentials and endpoint come from botocore's standard chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
(/ AWS_SESSION_TOKEN), AWS_PROFILE, ~/.aws/config and ~/.aws/credentials, and for stores other than AWS
the endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL or `endpoint_url` in the profile (botocore ≥ 1.31
reads these itself), unless an explicit `endpoint_url` is given. This module never reads the environment
and never signs anything by hand. boto3 is imported only when a store is opened (`--help` stays light).

Every botocore/boto3 failure leaves this module as an EdgeGate error (`errors.Store*`), one line naming
the s3:// URL and what to do; no secret, and no text the server chose, is ever put in a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InvalidInput, LengthMismatch, StoreCredentialsMissing, StoreNotFound
from .failures import safe_endpoint, store_errors

BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
CHUNK = 1 << 20
PART_SIZE = 64 << 20  # put_file sends larger files as a multipart upload of parts this size


@dataclass(frozen=True)
class S3Location:
    """`s3://bucket/prefix`: a bucket and a key prefix ("" or "a/b", never a leading or trailing slash)."""

    bucket: str
    prefix: str = ""

    def key(self, name: str) -> str:
        """The full key of `name` under the prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def url(self, key: str | None = None) -> str:
        """`s3://bucket/key` (or the prefix) as it may be shown: control characters come out escaped."""
        url = f"s3://{self.bucket}/{self.prefix if key is None else key}".rstrip("/")
        return repr(url) if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url) else url


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    content_type: str | None
    last_modified: datetime | None


def parse_s3_url(url: str) -> S3Location:
    """Parse `s3://BUCKET[/PREFIX]`. Raises InvalidInput naming what is wrong."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise InvalidInput(f"{url!r} is not an s3:// URL", hint="write it as s3://BUCKET/PREFIX")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url) or "\\" in url or "?" in url or "#" in url:
        raise InvalidInput(f"{url!r}: control characters, backslashes, '?' and '#' are not allowed in an s3:// URL")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise InvalidInput(f"{url!r}: bucket name {bucket!r} is not valid",
                           hint="3-63 characters: lowercase letters, digits, '.' and '-'")
    prefix = prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise InvalidInput(f"{url!r}: the key prefix has an empty, '.' or '..' part")
    return S3Location(bucket, prefix)


class ObjectStore:
    """One bucket (and key prefix) of an S3-compatible store.

    `endpoint_url` overrides the chain's endpoint; `profile` selects an AWS profile; `max_attempts` is
    botocore's own retry budget per API call (1 = no retry, for callers that retry themselves);
    `ca_bundle` is a PEM file of CAs to trust instead of botocore's (AWS_CA_BUNDLE works too);
    `max_connections` bounds the connection pool (callers that read from many threads raise it)."""

    def __init__(self, location: S3Location | str, *, endpoint_url: str | None = None,
                 profile: str | None = None, region: str | None = None, max_attempts: int = 3,
                 connect_timeout: float = 10, read_timeout: float = 60, ca_bundle: Path | str | None = None,
                 max_connections: int = 10):
        self.location = parse_s3_url(location) if isinstance(location, str) else location
        if endpoint_url is not None and urlsplit(endpoint_url).scheme not in ("http", "https"):
            raise InvalidInput(f"endpoint {safe_endpoint(endpoint_url)!r} is not an http:// or https:// URL")
        with store_errors(self.location.url()):
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            session = boto3.session.Session(profile_name=profile)
            try:
                self._client = session.client(
                    "s3", endpoint_url=endpoint_url, region_name=region or session.region_name or "us-east-1",
                    verify=str(ca_bundle) if ca_bundle else None,
                    config=Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                                  max_pool_connections=max_connections,
                                  retries={"mode": "standard", "total_max_attempts": max_attempts}))
            except ValueError as exc:  # botocore: "Invalid endpoint: <url>" (the argument or AWS_ENDPOINT_URL*)
                if isinstance(exc, BotoCoreError):  # e.g. InvalidRegionError is a ValueError too
                    raise
                raise InvalidInput(f"{self.location.url()}: the S3 endpoint URL is not valid",
                                   hint="set AWS_ENDPOINT_URL to http(s)://HOST:PORT") from None
        self.endpoint_url = self._client.meta.endpoint_url
        self._session = session

    def require_credentials(self) -> None:
        """Resolve the AWS credential chain now (no request is sent); StoreCredentialsMissing naming what
        was looked for when it finds none, so a long-running program fails at start, not at its first write."""
        from .failures import CREDENTIALS_HINT

        with store_errors(self.location.url(), self.endpoint_url):
            credentials = self._session.get_credentials()
        if credentials is None or not credentials.access_key:
            raise StoreCredentialsMissing(f"{self.location.url()}: no S3 credentials were found (looked for "
                                          "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials "
                                          "and ~/.aws/config)", hint=CREDENTIALS_HINT)

    @property
    def bucket(self) -> str:
        return self.location.bucket

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
                  cache_control: str | None = None) -> ObjectInfo:
        """Store `data` at `key` (a full key; see `location.key(name)`). Returns what the store holds.
        `cache_control` is the Cache-Control a CDN in front of the bucket obeys."""
        extra = {"CacheControl": cache_control} if cache_control else {}
        with store_errors(self.location.url(key), self.endpoint_url):
            reply = self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra)
        return ObjectInfo(key, len(data), _etag(reply), content_type, None)

    def put_file(self, key: str, path: Path | str, *, content_type: str = "application/octet-stream",
                 part_size: int = PART_SIZE, cache_control: str | None = None) -> ObjectInfo:
        """Upload a file, streamed from disk by s3transfer: one PUT up to `part_size`, else a multipart
        upload in `part_size` parts (S3's minimum part is 5 MiB). InvalidInput if the file is missing."""
        from boto3.s3.transfer import TransferConfig

        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
        size = path.stat().st_size
        config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=4)
        with store_errors(self.location.url(key), self.endpoint_url):
            extra = {"ContentType": content_type} | ({"CacheControl": cache_control} if cache_control else {})
            self._client.upload_file(str(path), self.bucket, key, ExtraArgs=extra, Config=config)
        return ObjectInfo(key, size, None, content_type, None)

    def head(self, key: str) -> ObjectInfo | None:
        """What the store holds at `key`, or None when there is nothing (a HEAD reply has no body, so a
        missing bucket looks the same as a missing key)."""
        try:
            with store_errors(self.location.url(key), self.endpoint_url):
                reply = self._client.head_object(Bucket=self.bucket, Key=key)
        except StoreNotFound:
            return None
        return ObjectInfo(key, int(reply["ContentLength"]), _etag(reply), reply.get("ContentType"),
                          reply.get("LastModified"))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (a full key prefix), in key order, page by page."""
        with store_errors(self.location.url(prefix), self.endpoint_url):
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"], int(obj["Size"]), obj.get("ETag", "").strip('"') or None, None,
                                     obj.get("LastModified"))

    def delete(self, key: str) -> None:
        """Remove `key` (no error when it is already gone)."""
        with store_errors(self.location.url(key), self.endpoint_url):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    @contextmanager
    def get_stream(self, key: str, *, max_bytes: int, chunk_size: int = CHUNK) -> Iterator[Iterator[bytes]]:
        """Yield an iterator over the object's bytes, `chunk_size` at a time, never more than `max_bytes`.

        An object the store says is longer than `max_bytes` is refused (LengthMismatch) before its body
        is read; a body that runs on past it anyway is cut off with the same error. StoreNotFound when
        the key is absent; failures while reading are mapped like every other store error."""
        url = self.location.url(key)
        with store_errors(url, self.endpoint_url):
            reply = self._client.get_object(Bucket=self.bucket, Key=key)
        body = reply["Body"]
        try:
            declared = int(reply["ContentLength"])
            if declared > max_bytes:
                raise LengthMismatch(f"{url}: the store holds {declared} bytes, more than the {max_bytes} declared",
                                     hint="the object is not the one the manifest names; refusing to read it")
            yield _bounded_chunks(body, url, self.endpoint_url, max_bytes, chunk_size)
        finally:
            body.close()


def _bounded_chunks(body, url: str, endpoint: str | None, max_bytes: int, chunk_size: int) -> Iterator[bytes]:
    seen = 0
    with store_errors(url, endpoint):
        while chunk := body.read(min(chunk_size, max_bytes + 1 - seen)):
            seen += len(chunk)
            if seen > max_bytes:
                raise LengthMismatch(f"{url}: more than the {max_bytes} declared bytes arrived")
            yield chunk


def _etag(reply: dict) -> str | None:
    etag = reply.get("ETag")
    return etag.strip('"') if etag else None
