"""Write a stream to a file only if it is exactly the declared blob (length, then sha256).

Bytes go to a temp file beside the destination while being counted and hashed; more than the declared
length stops the stream at once (LENGTH_MISMATCH, TUF's endless-data attack), fewer is LENGTH_MISMATCH at
the end, other bytes are DIGEST_MISMATCH. Only a verified file is fsynced and renamed to its final name, so
a failure at any point leaves nothing under that name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import DigestMismatch, LengthMismatch
from .blob import Blob

Progress = Callable[[int, int], None]  # (bytes so far, declared size)


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
    digest = hashlib.sha256()
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > blob.size:
            raise LengthMismatch(f"{blob.where}: more than the {blob.size} declared bytes arrived",
                                 hint="the source does not hold the blob the manifest names; nothing was kept")
        digest.update(chunk)
        out.write(chunk)
        if on_progress is not None:
            on_progress(seen, blob.size)
    if seen != blob.size:
        raise LengthMismatch(f"{blob.where}: {seen} bytes arrived, {blob.size} declared",
                             hint="the source does not hold the blob the manifest names; nothing was kept")
    if digest.hexdigest() != blob.sha256:
        raise DigestMismatch(f"{blob.where}: sha256 is {digest.hexdigest()}, expected {blob.sha256}",
                             hint="the source does not hold the blob the manifest names; nothing was kept")


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
