"""Filling a CAS temp file and hashing what it holds, in one pass over the stored bytes (used by `cas.py`).

`copy_hashing` streams any source, hashing each chunk as it is written. `kernel_copy_then_hash` copies a
regular file in the kernel (copy_file_range: no user-space pass, a reflink where the filesystem has them)
and hashes the copy as it grows: above PIPELINE_MIN a thread copies the next pieces while the caller
hashes the bytes already stored (both release the GIL), so copying overlaps with hashing, the slower of
the two (bench/cas_ingest.py). The digest is always of the bytes stored, read once.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import BinaryIO

CHUNK = 1 << 20  # 1 MiB
PIPELINE_MIN = 16 << 20  # below this a copying thread costs more than the overlap saves
PIECE = 8 << 20  # bytes per copy_file_range call in the pipeline: the hasher follows a piece behind


def _read_into(src: BinaryIO, buf: bytearray) -> int:
    """Fill `buf` from `src` without allocating a new bytes object per chunk when possible."""
    readinto = getattr(src, "readinto", None)
    if readinto is not None:
        return readinto(buf) or 0
    chunk = src.read(len(buf))
    buf[:len(chunk)] = chunk
    return len(chunk)


def copy_hashing(src: BinaryIO, out) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := _read_into(src, buf):
        h.update(view[:n])
        out.write(view[:n])
        size += n
    return h.hexdigest(), size


def kernel_copy_then_hash(src, out, tmp_name: str) -> tuple[str, int]:
    """Copy `src` into `out` in the kernel and hash the copy as it grows (see the module doc); return
    (hex digest, size). Small files are copied, then hashed. A kernel or filesystem that refuses the copy
    (EXDEV between filesystems) makes it start over the portable way (`copy_hashing`)."""
    out.flush()
    if os.fstat(src.fileno()).st_size < PIPELINE_MIN:
        try:
            while os.copy_file_range(src.fileno(), out.fileno(), 1 << 30):
                pass
        except OSError:
            return _restart_portably(src, out)
        return _hash_file(tmp_name, lambda _position: None)
    copy = _KernelCopy(src.fileno(), out.fileno())
    copy.thread.start()
    try:
        hexdigest, size = _hash_file(tmp_name, copy.wait_past)
    finally:
        copy.stop = True
        copy.thread.join()
    if copy.error is not None:
        return _restart_portably(src, out)
    return hexdigest, size


class _KernelCopy:
    """copy_file_range(src → out) piece by piece in a thread, publishing how far it got."""

    def __init__(self, src_fd: int, out_fd: int):
        self.src_fd, self.out_fd = src_fd, out_fd
        self.copied, self.done, self.stop, self.error = 0, False, False, None
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="edgegate-cas-copy", daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop:
                n = os.copy_file_range(self.src_fd, self.out_fd, PIECE)
                with self.cond:
                    self.copied += n
                    self.done = n == 0
                    self.cond.notify_all()
                if n == 0:
                    return
        except OSError as exc:
            self.error = exc
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def wait_past(self, position: int) -> int | None:
        """Block until more than `position` bytes are stored; return how many are, or None at the end."""
        with self.cond:
            while self.copied <= position and not self.done:
                self.cond.wait()
            return self.copied if self.copied > position else None


def _hash_file(path: str, wait_past) -> tuple[str, int]:
    """sha256 and size of the file at `path`, read once; `wait_past(n)` says how far it may be read
    (None: to its end)."""
    h = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as copy:
        while True:
            limit = wait_past(size)
            while limit is None or size < limit:
                n = copy.readinto(view[:CHUNK if limit is None else min(CHUNK, limit - size)])
                if not n:
                    if limit is None:
                        return h.hexdigest(), size
                    raise OSError(f"{path}: the copy shrank while it was hashed")
                h.update(view[:n])
                size += n


def _restart_portably(src, out) -> tuple[str, int]:
    """A filesystem or kernel refused copy_file_range: start over, hashing while writing."""
    src.seek(0)
    out.seek(0)
    out.truncate()
    return copy_hashing(src, out)
