"""The agent's content-addressed blob store: `<state_dir>/blobs/sha256/<2 hex>/<62 hex>`, read-only.

A blob is received into `blobs/tmp/`, hashed as it arrives, cut the moment it passes its declared
length, and renamed into place only when its length and sha256 match (fsync first): a blob under its
name is always whole. A release's files are hard links to blobs in a per-release directory, so a
multi-file ONNX model (external data) loads from one folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from .codes import AgentRefusal, Code
from .state import fsync_dir

CHUNK = 1 << 20


class BlobStore:
    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp.iterdir():  # a receive cut short by a crash: never a blob
            stale.unlink(missing_ok=True)

    def path(self, hexdigest: str) -> Path:
        return self.root / "sha256" / hexdigest[:2] / hexdigest[2:]

    def size(self, hexdigest: str) -> int | None:
        """The held blob's size, or None when the agent does not hold it."""
        try:
            return self.path(hexdigest).stat().st_size
        except FileNotFoundError:
            return None

    async def receive(self, hexdigest: str, declared: int, chunks: AsyncIterator[bytes]) -> int:
        """Store the bytes of `chunks` as blob `hexdigest`; return the size.

        Raises AgentRefusal LENGTH_MISMATCH (more bytes than declared: cut at the limit, with the
        connection to be closed; or fewer) or DIGEST_MISMATCH. Nothing is kept on any refusal.
        """
        import anyio

        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        digest, received = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                async for chunk in chunks:
                    received += len(chunk)
                    if received > declared:
                        raise AgentRefusal(Code.LENGTH_MISMATCH, f"blob sha256:{hexdigest}: more than the declared "
                                           f"{declared} bytes arrived; cut at the limit, nothing kept", close=True)
                    digest.update(chunk)
                    out.write(chunk)
                if received != declared:
                    raise AgentRefusal(Code.LENGTH_MISMATCH, f"blob sha256:{hexdigest}: {received} bytes arrived, "
                                       f"{declared} declared; nothing kept")
                if digest.hexdigest() != hexdigest:
                    raise AgentRefusal(Code.DIGEST_MISMATCH, f"blob sha256:{hexdigest}: the bytes hash to "
                                       f"sha256:{digest.hexdigest()}; nothing kept")
                out.flush()
                await anyio.to_thread.run_sync(os.fsync, out.fileno())
            await anyio.to_thread.run_sync(self._commit, tmp, hexdigest)
        finally:
            tmp.unlink(missing_ok=True)
        return received

    def _commit(self, tmp: Path, hexdigest: str) -> None:
        final = self.path(hexdigest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        fsync_dir(final.parent)

    def verify(self, hexdigest: str, size: int, what: str) -> Path:
        """Rehash a held blob before use. Raises BLOB_MISSING, LENGTH_MISMATCH or DIGEST_MISMATCH."""
        path = self.path(hexdigest)
        held = self.size(hexdigest)
        if held is None:
            raise AgentRefusal(Code.BLOB_MISSING, f"{what}: blob sha256:{hexdigest} is not on this device",
                               hint="PUT it to /v1/blobs/sha256:<hex> first")
        if held != size:
            raise AgentRefusal(Code.LENGTH_MISMATCH, f"{what}: blob sha256:{hexdigest} holds {held} bytes, the "
                                                     f"manifest says {size}")
        digest = hashlib.sha256()
        with open(path, "rb") as src:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != hexdigest:
            raise AgentRefusal(Code.DIGEST_MISMATCH, f"{what}: blob sha256:{hexdigest} on disk hashes to "
                                                     f"sha256:{digest.hexdigest()} (corrupted storage)")
        return path

    def link_release(self, entries: list[tuple[str, str, int]], dest: Path, extra: dict[str, bytes]) -> None:
        """Materialize `dest` (a per-release directory) from verified blobs: each (relative path, hex, size)
        is hard-linked into place, each `extra` file written. Built under a temporary name and renamed,
        so `dest` is always complete (an existing `dest` is such a complete directory, and kept)."""
        if dest.is_dir():
            return
        building = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            building.mkdir(parents=True)
            for name, data in extra.items():
                with open(building / name, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
            for rel, hexdigest, size in entries:
                source = self.verify(hexdigest, size, rel)
                target = building / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, target)
            for folder in {(building / rel).parent for rel, _, _ in entries} | {building}:
                fsync_dir(folder)
            os.replace(building, dest)
            fsync_dir(dest.parent)
        finally:
            shutil.rmtree(building, ignore_errors=True)

    def collect(self, keep: set[str], grace_s: float = 3600.0) -> int:
        """Delete blobs not in `keep` and older than `grace_s` (an upload for the next deploy survives)."""
        removed, cutoff = 0, time.time() - grace_s
        for path in (self.root / "sha256").glob("*/*"):
            hexdigest = path.parent.name + path.name
            if hexdigest not in keep and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
