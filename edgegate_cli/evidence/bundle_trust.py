"""What a home trusts a bundle with (`bundle_read.BundleTrust`): its keys with their standing (revoked,
retired, created here) and the digests of the bundles it wrote or verified, with when it first saw each.

The signing time inside a bundle is the signer's own claim, so a revoked (compromised) key could backdate
anything; what a home recorded before the revocation is a fact. See `keys.py` for the rule.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

from ..canonical import file_sha256
from .bundle_read import BundleTrust, KeyStanding

if TYPE_CHECKING:
    from ..store.workspace import Workspace


def record_bundle(ws: Workspace, path: Path | str, key_id: str | None, how: str) -> str:
    """Remember that this home has seen the bundle at `path` (its zip's sha256) now, unless it saw it before;
    return the digest. A revoked key's bundles keep verifying only if recorded before the revocation."""
    digest = file_sha256(path)
    with ws.db.conn:
        ws.db.execute("INSERT OR IGNORE INTO bundle_records (sha256, key_id, first_seen_at, how) VALUES (?, ?, ?, ?)",
                      [digest, key_id, ws.db.now(), how])
    return digest


def _first_seen(ws: Workspace, path: str) -> str | None:
    digest = file_sha256(path)
    row = next(iter(ws.db.query("SELECT first_seen_at FROM bundle_records WHERE sha256 = ?", [digest])), None)
    return row["first_seen_at"] if row else None


def bundle_trust(ws: Workspace):
    """This home's keys for verifying bundles (bundle_read.BundleTrust): each key's standing, when the home
    first recorded a bundle, and (on a writable home) recording what verifies."""
    rows = list(ws.db["signing_keys"].rows)
    return BundleTrust(
        keys={r["key_id"]: (base64.b64decode(r["public_key"]), r["revoked_at"]) for r in rows},
        standing={r["key_id"]: KeyStanding(revoked_at=r["revoked_at"], retired_at=r.get("retired_at"),
                                           created_at=r["created_at"] if r["source"] == "generated" else None)
                  for r in rows},
        first_seen=lambda path: _first_seen(ws, path),
        record=None if ws.readonly else (lambda path, key_id: record_bundle(ws, path, key_id, "verified")),
        source=f"signing keys of the home {ws.home.path}")
