"""Open a blob's bytes as a bounded stream of chunks: HTTP(S) through httpx, s3:// through objectstore,
a local file (an export directory) from disk. Each refuses a source that declares more bytes than the
blob before reading its body, and maps every failure to an errors.Store* error (transient ones marked)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import (
    InvalidInput,
    LengthMismatch,
    StoreDenied,
    StoreError,
    StoreNotFound,
    StoreUnreachable,
)
from .blob import Blob, scheme_of

CHUNK = 1 << 20


@contextmanager
def open_chunks(blob: Blob, *, http, store_for: Callable, chunk_size: int = CHUNK) -> Iterator[Iterator[bytes]]:
    """Yield an iterator over the blob's bytes. `http` is an httpx.Client; `store_for(bucket)` returns an
    objectstore.ObjectStore for that bucket."""
    scheme = scheme_of(blob.location)
    if scheme in ("http", "https"):
        with _http_chunks(blob, http, chunk_size) as chunks:
            yield chunks
    elif scheme == "s3":
        bucket, _, key = blob.location[len("s3://"):].partition("/")
        with store_for(bucket).get_stream(key, max_bytes=blob.size, chunk_size=chunk_size) as chunks:
            yield chunks
    else:
        with _file_chunks(blob, chunk_size) as chunks:
            yield chunks


def _too_long(blob: Blob, declared: int) -> LengthMismatch:
    return LengthMismatch(f"{blob.where}: the source declares {declared} bytes, more than the {blob.size} "
                          "expected", hint="the source does not hold the blob the manifest names; nothing was read")


@contextmanager
def _http_chunks(blob: Blob, http, chunk_size: int):
    import httpx

    try:
        with http.stream("GET", blob.location, headers={"Accept-Encoding": "identity"}) as response:
            _check_http_response(blob, response)
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > blob.size:
                raise _too_long(blob, int(length))
            yield _guarded(response.iter_raw(chunk_size), blob)
    except httpx.UnsupportedProtocol:
        raise StoreError(f"{blob.where}: redirected to a URL that is not http(s); refused") from None
    except httpx.TooManyRedirects:
        raise StoreError(f"{blob.where}: too many redirects") from None
    except httpx.TransportError as exc:  # raised while connecting (the body's errors are mapped in _guarded)
        raise _unreachable(blob, exc) from None


def _guarded(chunks: Iterator[bytes], blob: Blob) -> Iterator[bytes]:
    import httpx

    try:
        yield from chunks
    except httpx.TransportError as exc:
        raise _unreachable(blob, exc) from None


def _unreachable(blob: Blob, exc) -> StoreUnreachable:
    what = "timed out" if "Timeout" in type(exc).__name__ else "did not answer or the connection broke"
    return StoreUnreachable(f"{blob.where}: the server {what} ({type(exc).__name__})",
                            hint="check the URL and the network; transient failures are retried")


def _check_http_response(blob: Blob, response) -> None:
    status = response.status_code
    if scheme_of(blob.location) == "https" and response.url.scheme != "https":
        raise StoreDenied(f"{blob.where}: redirected from https to plain http; refused")
    if status == 200:
        return
    if status in (404, 410):
        raise StoreNotFound(f"{blob.where}: the server has no such file (HTTP {status})")
    if status in (401, 403):
        raise StoreDenied(f"{blob.where}: the server denied access (HTTP {status})",
                          hint="the URL needs credentials, or a presigned URL has expired")
    transient = status in (408, 425, 429) or status >= 500
    raise StoreError(f"{blob.where}: the server answered HTTP {status}", transient=transient,
                     hint="try again later" if transient else None)


@contextmanager
def _file_chunks(blob: Blob, chunk_size: int):
    path = Path(unquote(urlsplit(blob.location).path)) if blob.location.startswith("file://") else Path(blob.location)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise StoreNotFound(f"{blob.where}: no such file") from None
    except PermissionError:
        raise StoreDenied(f"{blob.where}: permission denied") from None
    except IsADirectoryError:
        raise InvalidInput(f"{blob.where}: is a directory, not a file") from None
    with f:
        declared = os.fstat(f.fileno()).st_size
        if declared > blob.size:
            raise _too_long(blob, declared)
        yield iter(lambda: f.read(min(chunk_size, blob.size + 1)), b"")
