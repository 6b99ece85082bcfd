"""Write a stream to a file only if it is exactly the declared blob (length, then sha256).

Bytes go to a temp file beside the destination while being counted and hashed; more than the declared
length stops the stream at once (LENGTH_MISMATCH, TUF's endless-data attack), fewer is LENGTH_MISMATCH at
the end, other bytes are DIGEST_MISMATCH. Only a verified file is fsynced and renamed to its final name, so
a failure at any point leaves nothing under that name.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import DigestMismatch, LengthMismatch
from .blob import Blob

Progress = Callable[[int, int], None]  # (bytes so far, declared size)
THREADED_HASH_MIN = 8 << 20  # blobs this large are hashed in a second thread


def write_verified(chunks: Iterable[bytes], dest: Path, blob: Blob, *, tmp_dir: Path | None = None,
                   on_progress: Progress | None = None) -> Path:
    """Consume `chunks` into `dest` if they are exactly `blob`; return `dest`. Raises LengthMismatch or
    DigestMismatch (exit 1), or whatever the stream raises; `dest` is then untouched."""
    dest = Path(dest)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir or dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            _copy_verified(chunks, out, blob, on_progress)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)
    return dest


def _copy_verified(chunks: Iterable[bytes], out, blob: Blob, on_progress: Progress | None) -> None:
    hasher = _BackgroundHash() if blob.size >= THREADED_HASH_MIN else _InlineHash()
    seen = 0
    try:
        for chunk in chunks:
            seen += len(chunk)
            if seen > blob.size:
                raise LengthMismatch(f"{blob.where}: more than the {blob.size} declared bytes arrived",
                                     hint="the source does not hold the blob the manifest names; nothing was kept")
            hasher.update(chunk)
            out.write(chunk)
            if on_progress is not None:
                on_progress(seen, blob.size)
    finally:
        actual = hasher.hexdigest()
    if seen != blob.size:
        raise LengthMismatch(f"{blob.where}: {seen} bytes arrived, {blob.size} declared",
                             hint="the source does not hold the blob the manifest names; nothing was kept")
    if actual != blob.sha256:
        raise DigestMismatch(f"{blob.where}: sha256 is {actual}, expected {blob.sha256}",
                             hint="the source does not hold the blob the manifest names; nothing was kept")


class _InlineHash:
    def __init__(self):
        self._digest = hashlib.sha256()
        self.update = self._digest.update

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class _BackgroundHash:
    """sha256 in a second thread, so hashing overlaps receiving and writing (hashlib releases the GIL on
    large buffers). Without SHA CPU instructions sha256 runs at ~300 MB/s, slower than loopback HTTP;
    inline it would more than double a download's time. At most QUEUE chunks wait (bounded memory)."""

    QUEUE = 16

    def __init__(self):
        self._digest = hashlib.sha256()
        self._queue: queue.Queue = queue.Queue(self.QUEUE)
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(bytes(chunk))

    def hexdigest(self) -> str:
        """Wait for every queued chunk, stop the thread, return the digest (call once)."""
        self._queue.put(None)
        self._thread.join()
        return self._digest.hexdigest()


def hash_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """sha256 hex of a file, read once in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
