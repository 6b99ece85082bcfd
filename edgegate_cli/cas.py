"""Content-addressed store (SPEC §2): blobs at `cas/sha256/<2 hex>/<62 hex>`.

Writes stream the source once, hashing while copying into a temp file inside `cas/` (same
filesystem), then fsync and rename into place: a crash never leaves a partial blob under a real
name, and the same bytes are stored once. This module knows only the filesystem; artifact rows,
references and retention live in `artifacts.py`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import CorruptBlob, InvalidInput, NotFound

CHUNK = 1 << 20  # 1 MiB
PREFIX = "sha256:"


def tag(hexdigest: str) -> str:
    """The tagged form used in every JSON document: `sha256:<hex>`."""
    return PREFIX + hexdigest


def untag(digest: str) -> str:
    """Accept `sha256:<hex>` or `<hex>`; return the 64-hex digest or raise InvalidInput."""
    hexdigest = digest[len(PREFIX):] if digest.startswith(PREFIX) else digest
    if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
        raise InvalidInput(f"{digest!r} is not a sha256 digest (expected sha256:<64 lowercase hex>)")
    return hexdigest


class CAS:
    """A content-addressed blob store rooted at `root` (the home's `cas/`)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.objects = self.root / "sha256"
        self.tmp = self.root / "tmp"

    def path_of(self, digest: str) -> Path:
        hexdigest = untag(digest)
        return self.objects / hexdigest[:2] / hexdigest[2:]

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def put_stream(self, src: BinaryIO) -> tuple[str, int]:
        """Store everything read from `src`; return (hex digest, size). Reads the source once."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="ingest-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            hexdigest = h.hexdigest()
            final = self.path_of(hexdigest)
            if final.is_file():
                os.unlink(tmp_name)  # dedupe: these bytes are already stored
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp_name, 0o444)
                os.replace(tmp_name, final)
                _fsync_dir(final.parent)
            return hexdigest, size
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def put_file(self, path: Path | str) -> tuple[str, int]:
        """Store a file's bytes; return (hex digest, size)."""
        try:
            with open(path, "rb") as src:
                return self.put_stream(src)
        except FileNotFoundError:
            raise InvalidInput(f"{path}: no such file") from None

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store bytes; return (hex digest, size)."""
        import io

        return self.put_stream(io.BytesIO(data))

    def read_bytes(self, digest: str, *, verify: bool = False) -> bytes:
        """The blob's bytes; with verify=True the hash is re-checked (CorruptBlob on mismatch)."""
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {tag(untag(digest))} is not in the store at {self.root}",
                           hint="it may have been garbage-collected; re-run to recreate it") from None
        if verify:
            actual = hashlib.sha256(data).hexdigest()
            if actual != untag(digest):
                raise CorruptBlob(str(path), untag(digest), actual)
        return data

    def verify(self, digest: str) -> None:
        """Re-hash a stored blob (streaming). Raises CorruptBlob; never deletes: evidence should
        not vanish silently."""
        path = self.path_of(digest)
        if not path.is_file():
            raise NotFound(f"blob {tag(untag(digest))} is not in the store at {self.root}")
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        if h.hexdigest() != untag(digest):
            raise CorruptBlob(str(path), untag(digest), h.hexdigest())

    def iter_digests(self) -> Iterator[str]:
        """Every stored blob's hex digest."""
        if not self.objects.is_dir():
            return
        for sub in sorted(self.objects.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for blob in sorted(sub.iterdir()):
                    yield sub.name + blob.name

    def remove(self, digest: str) -> int:
        """Delete a blob; return the bytes freed (0 if absent)."""
        path = self.path_of(digest)
        try:
            size = path.stat().st_size
            path.unlink()
            return size
        except FileNotFoundError:
            return 0

    def total_bytes(self) -> int:
        return sum(self.path_of(d).stat().st_size for d in self.iter_digests())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
