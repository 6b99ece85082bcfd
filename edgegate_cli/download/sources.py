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
from .blob import Blob, Capped, scheme_of

CHUNK = 1 << 20
MAX_REDIRECTS = 5


@contextmanager
def open_chunks(blob: Blob | Capped, *, http: Callable, store_for: Callable,
                chunk_size: int = CHUNK) -> Iterator[Iterator[bytes]]:
    """Yield an iterator over the blob's bytes. `http()` returns an httpx.Client (called only for http(s)
    locations, so s3:// and file reads never import httpx); `store_for(bucket)` returns an
    objectstore.ObjectStore for that bucket."""
    scheme = scheme_of(blob.location)
    if scheme in ("http", "https"):
        with _http_chunks(blob, http(), chunk_size) as chunks:
            yield chunks
    elif scheme == "s3":
        bucket, _, key = blob.location[len("s3://"):].partition("/")
        with store_for(bucket).get_stream(key, max_bytes=blob.size, chunk_size=chunk_size) as chunks:
            yield chunks
    else:
        with _file_chunks(blob, chunk_size) as chunks:
            yield chunks


def _too_long(blob: Blob | Capped, declared: int) -> LengthMismatch:
    return LengthMismatch(f"{blob.where}: the source declares {declared} bytes, more than the {blob.size} "
                          "expected", hint="the source does not hold the blob the manifest names; nothing was read")


@contextmanager
def _http_chunks(blob: Blob | Capped, http, chunk_size: int):
    import httpx

    try:
        response = _follow_redirects(blob, http)
        try:
            _check_http_response(blob, response)
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > blob.size:
                raise _too_long(blob, int(length))
            yield _guarded(response.iter_raw(chunk_size), blob)
        finally:
            response.close()
    except httpx.TransportError as exc:  # raised while connecting (the body's errors are mapped in _guarded)
        raise _unreachable(blob, exc) from None


def _follow_redirects(blob: Blob | Capped, http):
    """GET, following up to MAX_REDIRECTS redirects by hand so that one from https to anything else is
    refused before a request goes out in the clear (model files may be confidential)."""
    request = http.build_request("GET", blob.location, headers={"Accept-Encoding": "identity"})
    for _ in range(MAX_REDIRECTS + 1):
        response = http.send(request, stream=True, follow_redirects=False)
        if not response.has_redirect_location:
            return response
        response.close()
        request = response.next_request
        if request.url.scheme not in ("http", "https"):
            raise StoreError(f"{blob.where}: redirected to a URL that is not http(s); refused")
        if scheme_of(blob.location) == "https" and request.url.scheme != "https":
            raise StoreDenied(f"{blob.where}: redirected from https to plain http; refused",
                              hint="the server must keep the download on https")
    raise StoreError(f"{blob.where}: more than {MAX_REDIRECTS} redirects")


def _guarded(chunks: Iterator[bytes], blob: Blob | Capped) -> Iterator[bytes]:
    import httpx

    try:
        yield from chunks
    except httpx.TransportError as exc:
        raise _unreachable(blob, exc) from None


def _unreachable(blob: Blob | Capped, exc) -> StoreUnreachable:
    if _cert_failure(exc):
        return StoreUnreachable(f"{blob.where}: TLS certificate verification failed", transient=False,
                                hint="the server's certificate is not trusted: fix it, or give the CA bundle")
    what = "timed out" if "Timeout" in type(exc).__name__ else "did not answer or the connection broke"
    return StoreUnreachable(f"{blob.where}: the server {what} ({type(exc).__name__})",
                            hint="check the URL and the network; transient failures are retried")


def _cert_failure(exc: BaseException | None) -> bool:
    """Whether an ssl.SSLCertVerificationError is in the exception's cause/context chain."""
    import ssl

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _check_http_response(blob: Blob | Capped, response) -> None:
    status = response.status_code
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
def _file_chunks(blob: Blob | Capped, chunk_size: int):
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
