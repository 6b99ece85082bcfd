"""The one serialisation rule for everything EdgeGate hashes, stores as a blob or signs, tagged digests,
and the one model-identity rule.

Canonical JSON (contract: changing it changes every digest; golden tests pin it):
  `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`,
  encoded as UTF-8, no trailing newline. NaN and infinities are refused (JSON has neither).
Digests in JSON documents are tagged: `sha256:<64 lowercase hex>`.
A model's identity is the sha256 of its file for a one-file model, and for a multi-file model (a
directory) the sha256 of the canonical JSON of its manifest `{file name: hex sha256}`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

from .errors import InvalidInput

PREFIX = "sha256:"
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
CHUNK = 1 << 20


def canonical_json(obj) -> bytes:
    """The canonical bytes of a JSON-like value. Raises ValueError for NaN/infinity or a non-JSON type."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_hex64(text: str) -> bool:
    """True for exactly 64 lowercase hex digits (one regex, no per-character loop)."""
    return isinstance(text, str) and _HEX64.match(text) is not None


def tag(hexdigest: str) -> str:
    """The tagged form used in every JSON document: `sha256:<hex>`."""
    return PREFIX + hexdigest


def untag(digest: str) -> str:
    """Accept `sha256:<hex>` or `<hex>`; return the 64-hex digest or raise InvalidInput."""
    hexdigest = digest[len(PREFIX):] if isinstance(digest, str) and digest.startswith(PREFIX) else digest
    if not is_hex64(hexdigest):
        raise InvalidInput(f"{str(digest)[:80]!r} is not a sha256 digest (expected sha256:<64 lowercase hex>)")
    return hexdigest


def file_sha256(path: Path | str) -> str:
    """The hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_identity(files: Mapping[str, str], *, single_file: bool) -> str:
    """A model's identity digest (hex) from its files `{name: hex sha256}`: the file's own digest for a
    one-file model, else the digest of the canonical manifest."""
    if single_file:
        (digest,) = files.values()
        return digest
    return sha256_hex(canonical_json(dict(files)))


def model_manifest(files: Mapping[str, str]) -> bytes:
    """The stored manifest of a multi-file model, whose sha256 is its identity."""
    return canonical_json(dict(files))
