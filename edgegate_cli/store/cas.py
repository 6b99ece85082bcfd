"""Content-addressed store (SPEC §2): blobs at `cas/sha256/<2 hex>/<62 hex>`.

Writes stream the source once, hashing while copying into a temp file inside `cas/` (same
filesystem), then fsync and rename into place: a crash never leaves a partial blob under a real
name, and the same bytes are stored once. This module knows only the filesystem; artifact rows,
references and retention live in `artifacts.py`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..canonical import tag, untag  # noqa: F401 (re-exported: the store speaks tagged digests)
from ..errors import CorruptBlob, InvalidInput, NotFound
from .ingest import CHUNK, copy_hashing, kernel_copy_then_hash


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
        """Store everything read from `src` (read once, 1 MiB at a time); return (hex digest, size).

        The bytes go to a temp file in `cas/tmp/` while being hashed; only once complete is the temp
        fsynced, made read-only and renamed to `sha256/<2>/<62>`, so a crash leaves at most a temp
        file (gc removes stale ones). Bytes already stored are not written again.
        """
        return self._ingest(lambda out, _tmp: copy_hashing(src, out))

    def put_file(self, path: Path | str) -> tuple[str, int]:
        """Store a file's bytes; return (hex digest, size). InvalidInput if it is missing.

        A regular file is copied by the kernel (copy_file_range) and the copy is then hashed
        (`ingest.kernel_copy_then_hash`), so the digest is of exactly the bytes stored and user space reads
        them once; that is about twice as fast as hashing while writing (bench/cas_ingest.py). Elsewhere it
        streams.
        """
        try:
            src = open(path, "rb")  # only a failed open means "no such file"
        except FileNotFoundError:
            raise InvalidInput(f"{path}: no such file") from None
        with src:
            if hasattr(os, "copy_file_range") and stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                return self._ingest(lambda out, tmp: kernel_copy_then_hash(src, out, tmp))
            return self.put_stream(src)

    def _ingest(self, fill) -> tuple[str, int]:
        """Temp file → fill(out, tmp_name) → (digest, size) → fsync → read-only → rename (or dedupe)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="ingest-")
        try:
            with os.fdopen(fd, "wb") as out:  # buffered, so each write() is complete
                hexdigest, size = fill(out, tmp_name)
                final = self.path_of(hexdigest)
                duplicate = _same_size(final, size)
                if not duplicate:  # fsync only what we keep: a duplicate never pays for a flush
                    out.flush()
                    os.fsync(out.fileno())
            if duplicate:
                os.unlink(tmp_name)
                return hexdigest, size
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp_name, 0o444)
            # A blob of another size under this name is damaged: the verified bytes replace it.
            os.replace(tmp_name, final)
            _fsync_dir(final.parent)
            return hexdigest, size
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store bytes; return (hex digest, size)."""
        return self.put_stream(io.BytesIO(data))

    def read_bytes(self, digest: str, *, verify: bool = False) -> bytes:
        """The blob's bytes. With verify=True the hash is re-checked first.

        Raises InvalidInput (malformed digest), NotFound (not stored) or CorruptBlob (verify=True and
        the bytes do not hash to `digest`; the blob is left in place as evidence).
        """
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self._missing(digest) from None
        if verify:
            actual = hashlib.sha256(data).hexdigest()
            if actual != untag(digest):
                raise CorruptBlob(str(path), untag(digest), actual)
        return data

    def verify(self, digest: str) -> None:
        """Re-hash a stored blob, streaming. Returns None when it matches.

        Raises NotFound or CorruptBlob(path, expected, actual). Never deletes, unlike dvc's check():
        evidence should not vanish silently.
        """
        path = self.path_of(digest)
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            raise self._missing(digest) from None
        if h.hexdigest() != untag(digest):
            raise CorruptBlob(str(path), untag(digest), h.hexdigest())

    def _missing(self, digest: str) -> NotFound:
        return NotFound(f"blob {tag(untag(digest))} is not in the store at {self.root}",
                        hint="it may have been garbage-collected; re-run to recreate it")

    def iter_digests(self) -> Iterator[str]:
        """Every stored blob's hex digest, sorted. Files that are not named like a blob are skipped."""
        for hexdigest, _entry in self.iter_blobs():
            yield hexdigest

    def iter_blobs(self, *, ordered: bool = True) -> Iterator[tuple[str, os.DirEntry]]:
        """(hex digest, directory entry) of every stored blob, sorted by digest unless `ordered` is
        False, one `sha256/<2>/` folder in memory at a time. `os.scandir` gives names and file types
        without a stat per blob; `entry.stat()` costs one when a caller needs the size or age."""
        for sub in _sorted_entries(self.objects, _HEX2, want_dir=True, ordered=ordered):
            for blob in _sorted_entries(sub.path, _HEX62, want_dir=False, ordered=ordered):
                yield sub.name + blob.name, blob

    def iter_tmp(self) -> Iterator[Path]:
        """Temp files left in `cas/tmp/` (an ingest in progress, or one that crashed)."""
        for entry in _sorted_entries(self.tmp, None, want_dir=False):
            yield Path(entry.path)

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
        """Bytes held by all stored blobs (temp files excluded)."""
        return sum(_size(entry) for _, entry in self.iter_blobs())


_HEX2 = re.compile(r"[0-9a-f]{2}")
_HEX62 = re.compile(r"[0-9a-f]{62}")


def _sorted_entries(directory, name: re.Pattern | None, *, want_dir: bool, ordered: bool = True) -> list[os.DirEntry]:
    """The sub-folders (or files) of `directory` whose names fully match `name`, sorted by name (unless
    not `ordered`); none if `directory` is missing. Symlinks count as what they point to, as
    `Path.is_file()` does."""
    try:
        with os.scandir(directory) as it:
            found = [e for e in it if (name is None or name.fullmatch(e.name))
                     and (e.is_dir() if want_dir else e.is_file())]
    except (FileNotFoundError, NotADirectoryError):
        return []
    if ordered:
        found.sort(key=lambda e: e.name)
    return found


def _size(entry: os.DirEntry) -> int:
    try:
        return entry.stat().st_size
    except FileNotFoundError:  # removed since the walk saw it
        return 0


def _same_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
