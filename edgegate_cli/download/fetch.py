"""Fetch a blob to a file, verified, retrying transient failures with exponential backoff (tenacity).

Transient = the source did not answer, the connection broke, a timeout, HTTP 408/425/429/5xx, S3
throttling. Not retried: a refusal (404, 403, missing credentials) or a blob that is not the declared one
(LENGTH_MISMATCH, DIGEST_MISMATCH) — a mirror serving other bytes is not fixed by asking again (TUF).
Each attempt starts over in a fresh temp file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeGateError, InvalidInput, LengthMismatch
from .blob import Blob, Capped
from .sources import CHUNK, open_chunks
from .verify import Progress, write_verified


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` in all; waits grow from `initial_wait` doubling up to `max_wait`, plus up to
    `initial_wait` of random jitter."""

    attempts: int = 4
    initial_wait: float = 0.5
    max_wait: float = 8.0


@dataclass(frozen=True)
class FetchResult:
    path: Path
    size: int
    attempts: int  # 0 when served from a cache
    seconds: float


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, EdgeGateError) and bool(getattr(exc, "transient", False))


class Fetcher:
    """Downloads blobs over one HTTP connection pool and one S3 client per bucket; use as a context
    manager (or call close()). `endpoint_url`/`profile` apply to s3:// locations, whose credentials come
    from the standard AWS chain (objectstore.py); `ca_bundle` (a PEM file) replaces the system's CAs for
    https:// and s3:// over https, e.g. a fleet's private CA."""

    def __init__(self, *, retry: RetryPolicy = RetryPolicy(), connect_timeout: float = 10, read_timeout: float = 60,
                 endpoint_url: str | None = None, profile: str | None = None, chunk_size: int = CHUNK,
                 ca_bundle: Path | str | None = None):
        self.retry = retry
        self.ca_bundle = ca_bundle  # PEM file of CAs to trust for https:// instead of the system's
        self.chunk_size = chunk_size
        self._timeouts = (connect_timeout, read_timeout)
        self._s3 = {"endpoint_url": endpoint_url, "profile": profile}
        self._http = None
        self._stores = {}

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def fetch(self, blob: Blob, dest: Path | str, *, tmp_dir: Path | None = None,
              on_progress: Progress | None = None) -> FetchResult:
        """Download `blob` to `dest`, verified; return what it took. Raises LengthMismatch/DigestMismatch
        (exit 1), Store* errors (2 or 3) once retries are spent; `dest` is then untouched."""
        started = time.monotonic()

        def attempt() -> None:
            with open_chunks(blob, http=self._client, store_for=self._store, chunk_size=self.chunk_size) as chunks:
                write_verified(chunks, Path(dest), blob, tmp_dir=tmp_dir, on_progress=on_progress)

        _, number = self._retrying(attempt)
        return FetchResult(Path(dest), blob.size, number, time.monotonic() - started)

    def read(self, location: str, *, max_bytes: int) -> bytes:
        """The bytes at `location` (any scheme a Blob takes) when there are at most `max_bytes` of them: for
        small documents whose digest is not known in advance (a channel manifest). A source that declares
        or sends more is LengthMismatch, unread past the limit. Retried like `fetch`."""
        source = Capped(location, max_bytes)

        def attempt() -> bytes:
            with open_chunks(source, http=self._client, store_for=self._store, chunk_size=self.chunk_size) as chunks:
                data = bytearray()
                for chunk in chunks:
                    data += chunk
                    if len(data) > max_bytes:
                        raise LengthMismatch(f"{source.where}: more than {max_bytes} bytes")
                return bytes(data)

        data, _ = self._retrying(attempt)
        return data

    def _retrying(self, attempt):
        """(what `attempt()` returns, the attempt number that succeeded), retrying transient failures."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

        policy = self.retry
        retrying = Retrying(stop=stop_after_attempt(policy.attempts), reraise=True,
                            retry=retry_if_exception(is_transient),
                            wait=wait_exponential(multiplier=policy.initial_wait, max=policy.max_wait)
                            + wait_random(0, policy.initial_wait))
        number = 0
        try:
            for state in retrying:
                number = state.retry_state.attempt_number
                with state:
                    result = attempt()
        except EdgeGateError as exc:
            if number > 1 and is_transient(exc):
                exc.message = f"{exc.message} (gave up after {number} attempts)"
                exc.args = (exc.message,)
            raise
        return result, number

    def _client(self):
        if self._http is None:
            import httpx

            connect, read = self._timeouts
            verify = _tls_context(self.ca_bundle) if self.ca_bundle else True
            self._http = httpx.Client(verify=verify, trust_env=True, timeout=httpx.Timeout(read, connect=connect))
        return self._http

    def _store(self, bucket: str):
        if bucket not in self._stores:
            from ..objectstore import ObjectStore, parse_s3_url

            connect, read = self._timeouts
            self._stores[bucket] = ObjectStore(parse_s3_url(f"s3://{bucket}"), max_attempts=1,
                                               connect_timeout=connect, read_timeout=read,
                                               ca_bundle=self.ca_bundle, **self._s3)
        return self._stores[bucket]


def _tls_context(ca_bundle: Path | str):
    import ssl

    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError):
        raise InvalidInput(f"{ca_bundle}: not a readable PEM file of CA certificates") from None


def fetch_blob(blob: Blob, dest: Path | str, **options) -> FetchResult:
    """One verified download with a fresh Fetcher (`options` as for Fetcher)."""
    with Fetcher(**options) as fetcher:
        return fetcher.fetch(blob, dest)
