"""The content-addressed download cache: hits cost no request, the size cap evicts the least recently
used blob, damaged entries are fetched again, failures leave nothing behind."""

from __future__ import annotations

import hashlib
import os

import pytest
from blob_server import BlobServer, Route

from edgegate_cli.download import Blob, BlobCache, Fetcher, RetryPolicy
from edgegate_cli.errors import DigestMismatch, LimitExceeded

FAST = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.05)
KB = 1000


@pytest.fixture
def served():
    """A BlobServer with four 10 kB blobs a-d; yields (server, {name: (Blob, Route)}), plus a Fetcher."""
    with BlobServer() as server, Fetcher(retry=FAST) as fetcher:
        blobs = {}
        for name in "abcd":
            data = os.urandom(10 * KB)
            route = server.add(f"/{name}", Route(data))
            blobs[name] = (Blob(server.url(f"/{name}"), hashlib.sha256(data).hexdigest(), len(data)), route)
        yield blobs, fetcher


def test_a_hit_costs_no_request(served, tmp_path):
    """The second fetch of a blob is served from `sha256/<2>/<62>` without asking the server."""
    blobs, fetcher = served
    blob, route = blobs["a"]
    cache = BlobCache(tmp_path / "cache", max_bytes=100 * KB)
    first = cache.fetch(blob, fetcher)
    second = cache.fetch(blob, fetcher)
    assert first.path == second.path == tmp_path / "cache" / "sha256" / blob.sha256[:2] / blob.sha256[2:]
    assert (first.attempts, second.attempts, route.requests) == (1, 0, 1)
    assert hashlib.sha256(second.path.read_bytes()).hexdigest() == blob.sha256
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_the_least_recently_used_blob_is_evicted(served, tmp_path):
    """Cap = three blobs. After a, b, c and a hit on a, fetching d evicts b (the least recently used),
    and the cache is back within its cap."""
    blobs, fetcher = served
    cache = BlobCache(tmp_path / "cache", max_bytes=30 * KB)
    for name in "abc":
        cache.fetch(blobs[name][0], fetcher)
    assert cache.lookup(blobs["a"][0]) is not None
    cache.fetch(blobs["d"][0], fetcher)
    present = {name for name in "abcd" if cache.path_of(blobs[name][0].sha256).exists()}
    assert present == {"a", "c", "d"}
    assert cache.usage() == 30 * KB
    assert [p for _, _, p in cache.entries()] == [cache.path_of(blobs[n][0].sha256) for n in "cad"]  # LRU first


def test_a_blob_over_the_cap_is_refused_before_download(served, tmp_path):
    blobs, fetcher = served
    blob, route = blobs["a"]
    with pytest.raises(LimitExceeded) as excinfo:
        BlobCache(tmp_path / "cache", max_bytes=10 * KB - 1).fetch(blob, fetcher)
    assert excinfo.value.message == f"{blob.where}: {10 * KB} bytes is more than the cache cap of {10 * KB - 1}"
    assert route.requests == 0


def test_a_truncated_entry_is_fetched_again(served, tmp_path):
    """A hit checks the size with one stat: a damaged (shorter) entry is replaced by a fresh download."""
    blobs, fetcher = served
    blob, route = blobs["a"]
    cache = BlobCache(tmp_path / "cache", max_bytes=100 * KB)
    path = cache.fetch(blob, fetcher).path
    path.chmod(0o644)
    path.write_bytes(b"short")
    assert cache.fetch(blob, fetcher).attempts == 1 and route.requests == 2
    assert hashlib.sha256(path.read_bytes()).hexdigest() == blob.sha256


def test_verify_digest_catches_a_same_size_corruption(served, tmp_path):
    """Size alone cannot see a flipped byte; with verify_digest the hit is re-hashed and re-fetched."""
    blobs, fetcher = served
    blob, route = blobs["a"]
    cache = BlobCache(tmp_path / "cache", max_bytes=100 * KB)
    path = cache.fetch(blob, fetcher).path
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    assert cache.lookup(blob) == path  # the cheap check trusts the size
    assert cache.fetch(blob, fetcher, verify_digest=True).attempts == 1 and route.requests == 2
    assert hashlib.sha256(path.read_bytes()).hexdigest() == blob.sha256


def test_a_failed_download_leaves_no_entry(tmp_path):
    """Wrong bytes: DIGEST_MISMATCH, and neither an entry nor a temp file stays in the cache."""
    data = os.urandom(5 * KB)
    with BlobServer() as server, Fetcher(retry=FAST) as fetcher:
        server.add("/x", Route(data, corrupt=True))
        cache = BlobCache(tmp_path / "cache", max_bytes=100 * KB)
        with pytest.raises(DigestMismatch):
            cache.fetch(Blob(server.url("/x"), hashlib.sha256(data).hexdigest(), len(data)), fetcher)
    assert cache.entries() == [] and list((tmp_path / "cache" / "tmp").iterdir()) == []
