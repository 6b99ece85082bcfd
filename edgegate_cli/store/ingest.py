"""Filling a CAS temp file and hashing what it holds, in one pass over the stored bytes (used by `cas.py`).

`copy_hashing` streams any source, hashing each chunk as it is written. `kernel_copy_then_hash` copies a
regular file in the kernel (copy_file_range: no user-space pass, a reflink where the filesystem has them),
then hashes the copy: the digest is of the bytes stored, read once. Hashing is the cost (sha256 without CPU
SHA extensions runs at ~350 MB/s here, the kernel copies 300 MB in ~0.1 s on ext4), so what is left over a
plain hashlib loop is the copy and the final fsync (bench/cas_ingest.py, bench/README.md). Copying on a
thread while the growing copy is hashed measured no better (the copy is a tenth of the time); starting
the writeback of hashed pieces early (posix_fadvise DONTNEED) hid the fsync (~+10 %) but writes every
duplicate ingest (the same model, every run) to disk before it is discarded, so neither is used.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

CHUNK = 1 << 20  # 1 MiB


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
    """Copy `src` into `out` in the kernel, then hash the copy; return (hex digest, size). A kernel or
    filesystem that refuses the copy (EXDEV between filesystems) makes it start over the portable way."""
    out.flush()
    try:
        while os.copy_file_range(src.fileno(), out.fileno(), 1 << 30):
            pass
    except OSError:
        src.seek(0)
        out.seek(0)
        out.truncate()
        return copy_hashing(src, out)
    h = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(tmp_name, "rb", buffering=0) as copy:
        while n := copy.readinto(buf):
            h.update(view[:n])
            size += n
    return h.hexdigest(), size
