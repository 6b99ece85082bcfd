"""`releases export NAME@VERSION DIR`: the self-contained directory of RELEASE_CONTRACT.md, what an
air-gapped device installs and `releases verify DIR` checks:

    DIR/release.dsse.json     the signed envelope, byte for byte as published
    DIR/model/<path>          each model file
    DIR/evidence.zip          the evidence bundle (absent when the release has no evidence)
    DIR/reference/inputs.npz  reference inputs and outputs (when the release has them)
    DIR/reference/outputs.npz

DIR must not exist or be empty. Everything is written into a hidden sibling directory and renamed
into place at the end, so DIR never holds half an export. Every blob is re-hashed while it is copied.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel

from ..canonical import CHUNK, untag
from ..errors import CorruptBlob, InvalidInput
from .manifests import export_entries, read_manifest
from .records import find_release

ENVELOPE_FILE = "release.dsse.json"


class ExportResult(BaseModel):
    name: str
    version: str
    directory: str
    files: dict[str, int]  # path in DIR -> bytes
    bytes: int
    evidence: bool
    reference: bool


def _copy_verified(ws, digest: str, dest: Path) -> int:
    """Copy a CAS blob to `dest`, hashing on the way; CorruptBlob if the bytes are not `digest`'s."""
    src = ws.cas.path_of(digest)
    h, size = hashlib.sha256(), 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dest, "xb") as fout:
        while chunk := fin.read(CHUNK):
            h.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    if h.hexdigest() != untag(digest):
        raise CorruptBlob(str(src), untag(digest), h.hexdigest())
    return size


def _check_target(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InvalidInput(f"{out}: exists and is not a directory; give a new or empty directory")
    if out.is_dir() and any(out.iterdir()):
        raise InvalidInput(f"{out}: is not empty; give a new or empty directory",
                           hint="an export holds only the release's files (`releases verify DIR` refuses others)")
    if not out.parent.is_dir():
        raise InvalidInput(f"{out}: directory {out.parent} does not exist")


def export_release(ws, ref: str, directory: Path | str) -> ExportResult:
    """Write NAME@VERSION (or NAME's newest) into `directory`; return what was written.

    Raises NotFound (unknown release), InvalidInput (DIR not new or empty), NotFound/CorruptBlob (a blob
    gone from or altered in the CAS: nothing is left behind).
    """
    row = find_release(ws, ref)
    out = Path(directory)
    _check_target(out)
    data, _, manifest = read_manifest(ws, row)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        (staging / ENVELOPE_FILE).write_bytes(data)
        files = {ENVELOPE_FILE: len(data)}
        for name, (sha256, _) in sorted(export_entries(manifest).items()):
            if not ws.cas.exists(sha256):
                ws.cas.read_bytes(sha256)  # raises NotFound naming the blob
            files[name] = _copy_verified(ws, sha256, staging / name)
        for path in staging.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(staging, 0o755)
        if out.is_dir():
            out.rmdir()  # empty (checked above); a racing writer makes rmdir fail, not a merge
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(name=row["name"], version=row["version"], directory=str(out), files=files,
                        bytes=sum(files.values()), evidence=manifest.evidence is not None,
                        reference=manifest.reference is not None)
