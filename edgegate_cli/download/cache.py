"""A content-addressed blob cache with a size cap, least recently used evicted first.

Layout: `ROOT/sha256/<2 hex>/<62 hex>` (read-only files), `ROOT/tmp/` for downloads in flight (same
filesystem, so the final rename is atomic). Recency is the file's mtime, set on every insert and hit
(with nanoseconds from a counter that never repeats within a process, since the kernel's own clock
for file times is coarse). A hit re-checks the size (one stat) and, when asked, the sha256.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import LimitExceeded
from .blob import Blob
from .fetch import Fetcher, FetchResult
from .verify import Progress, hash_file


class BlobCache:
    """Blobs by sha256 under `root`, at most `max_bytes` in all after each insert."""

    def __init__(self, root: Path | str, *, max_bytes: int):
        if max_bytes <= 0:
            raise LimitExceeded(f"cache cap {max_bytes} bytes is not positive")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.tmp = self.root / "tmp"
        self._stamp = 0

    def path_of(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def lookup(self, blob: Blob, *, verify_digest: bool = False) -> Path | None:
        """The cached file for `blob` (now the most recently used), or None. An entry of the wrong size,
        or of the wrong sha256 when `verify_digest`, is removed and reported as a miss."""
        path = self.path_of(blob.sha256)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        if size != blob.size or (verify_digest and hash_file(path) != blob.sha256):
            _remove(path)
            return None
        self._touch(path)
        return path

    def fetch(self, blob: Blob, fetcher: Fetcher, *, verify_digest: bool = False,
              on_progress: Progress | None = None) -> FetchResult:
        """The blob's cached file, downloading it (verified) on a miss; then evicts least recently used
        entries until the cache is within its cap. LimitExceeded if the blob alone is over the cap."""
        started = time.monotonic()
        hit = self.lookup(blob, verify_digest=verify_digest)
        if hit is not None:
            return FetchResult(hit, blob.size, 0, time.monotonic() - started)
        if blob.size > self.max_bytes:
            raise LimitExceeded(f"{blob.where}: {blob.size} bytes is more than the cache cap of {self.max_bytes}",
                                hint="raise the cache size")
        path = self.path_of(blob.sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        result = fetcher.fetch(blob, path, tmp_dir=self.tmp, on_progress=on_progress)
        path.chmod(0o444)
        self._touch(path)
        self.evict(keep=path)
        return result

    def entries(self) -> list[tuple[int, int, Path]]:
        """(mtime_ns, size, path) of every cached blob, least recently used first."""
        found = []
        for path in (self.root / "sha256").glob("??/*"):
            try:
                st = path.stat()
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            found.append((st.st_mtime_ns, st.st_size, path))
        return sorted(found)

    def usage(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least recently used blobs (never `keep`) until the total is within the cap; return them."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            if path != keep:
                _remove(path)
                total -= size
                removed.append(path)
        return removed

    def _touch(self, path: Path) -> None:
        self._stamp = max(time.time_ns(), self._stamp + 1)
        os.utime(path, ns=(self._stamp, self._stamp))


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)  # the parent directory's write bit suffices; the file stays 0444 until then
