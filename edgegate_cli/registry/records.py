"""The `releases` table: list, show, history, deprecate, delete (SPEC §10.1).

Read commands here touch only SQLite and the CAS (no numpy, onnx or onnxruntime on their import path:
`releases list` stays fast). A deleted release stays as a tombstone row (`deleted_at`): it is hidden
from list and show, its blobs are no longer kept by retention, and its version is never reused.
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from ..canonical import tag
from ..errors import InvalidInput, NotFound, ReleaseInUse
from ..evidence.signed_json import TEXT_RE, show
from ..store.state import record_audit
from .names import newest, parse_ref

RELEASE_EVENTS = ("release_published", "release_forced", "release_deprecated", "release_deleted")


class ReleaseRow(BaseModel):
    name: str
    version: str
    channel: str
    identity: str
    model_format: str
    model_bytes: int | None
    evidence: str  # the re-derived verdict ("passed"), or "none" (--force)
    evidence_bundle_sha256: str | None
    run_id: str | None
    publisher: str
    payload_sha256: str
    envelope_sha256: str
    created_at: str
    expires_at: str | None
    status: str  # active | deprecated | deleted
    deprecated_at: str | None
    deprecated_reason: str | None
    deleted_at: str | None


class ReleaseList(BaseModel):
    releases: list[ReleaseRow]


def release_id(name: str, version: str) -> str:
    return f"{name}@{version}"


def to_row(r: dict) -> ReleaseRow:
    status = "deleted" if r["deleted_at"] else "deprecated" if r["deprecated_at"] else "active"
    return ReleaseRow(name=r["name"], version=r["version"], channel=r["channel"], identity=r["identity"],
                      model_format=r["model_format"], model_bytes=r["model_bytes"],
                      evidence=r["evidence_verdict"] or "none", evidence_bundle_sha256=r["evidence_bundle_sha256"],
                      run_id=r["run_id"], publisher=r["publisher"], payload_sha256=r["payload_sha256"],
                      envelope_sha256=tag(r["envelope_sha256"]), created_at=r["created_at"],
                      expires_at=r["expires_at"], status=status, deprecated_at=r["deprecated_at"],
                      deprecated_reason=r["deprecated_reason"], deleted_at=r["deleted_at"])


def row_of(db, name: str, version: str) -> dict | None:
    rows = list(db.query("SELECT * FROM releases WHERE name = ? AND version = ?", [name, version]))
    return rows[0] if rows else None


def find_release(ws, ref: str, *, include_deleted: bool = False) -> dict:
    """The row of `NAME@VERSION`, or of NAME's newest version that is not deprecated. NotFound otherwise."""
    name, version = parse_ref(ref)
    if version is not None:
        row = row_of(ws.db, name, version)
        if row is None or (row["deleted_at"] and not include_deleted):
            raise NotFound(f"release {name}@{version} is not in this home" + (" (deleted)" if row else ""),
                           hint=f"see `edgegate releases list --name {name}`")
        return row
    rows = {r["version"]: r for r in ws.db.query(
        "SELECT * FROM releases WHERE name = ? AND deleted_at IS NULL", [name])}
    live = [v for v in newest(list(rows)) if not rows[v]["deprecated_at"]]
    if not live:
        why = "every version is deprecated; name one as NAME@VERSION" if rows else "no release has this name"
        raise NotFound(f"release {name}: {why}", hint="see `edgegate releases list`")
    return rows[live[0]]


def list_releases(ws, *, name: str | None = None, channel: str | None = None) -> ReleaseList:
    """Releases not deleted, by name, then newest version first."""
    where, args = ["deleted_at IS NULL"], []
    if name is not None:
        where.append("name = ?")
        args.append(name)
    if channel is not None:
        where.append("channel = ?")
        args.append(channel)
    rows = list(ws.db.query(f"SELECT * FROM releases WHERE {' AND '.join(where)}", args))
    by_name: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_name.setdefault(r["name"], {})[r["version"]] = r
    return ReleaseList(releases=[to_row(by_name[n][v]) for n in sorted(by_name) for v in newest(list(by_name[n]))])


def history(ws, name: str) -> list[dict]:
    """Every publish, deprecation and deletion of NAME's versions, oldest first (from the audit log)."""
    events = ws.db.query(
        "SELECT at, actor, event, detail_json FROM audit_events WHERE event IN (?, ?, ?, ?) "
        "AND json_extract(detail_json, '$.name') = ? ORDER BY at, id", [*RELEASE_EVENTS, name])
    out = [{"at": e["at"], "actor": e["actor"], "event": e["event"].removeprefix("release_"),
            **json.loads(e["detail_json"])} for e in events]
    if not out:
        raise NotFound(f"release {name}: no release of this name was ever published here",
                       hint="see `edgegate releases list`")
    return out


def _require_reason(reason: str) -> str:
    if not isinstance(reason, str) or not TEXT_RE.match(reason) or not reason.strip():
        raise InvalidInput(f"--reason is {show(reason)}: give one line of 1-128 printable characters",
                           field="--reason")
    return reason.strip()


def deprecate(ws, ref: str, reason: str) -> ReleaseRow:
    """Mark NAME@VERSION deprecated (no longer the newest of its name for `show NAME`); idempotent."""
    reason = _require_reason(reason)
    parse_ref(ref, version_required=True)
    with ws.db.atomic():
        row = find_release(ws, ref)
        if not row["deprecated_at"]:
            ws.db.execute("UPDATE releases SET deprecated_at = ?, deprecated_reason = ? WHERE name = ? AND "
                          "version = ?", [ws.db.now(), reason, row["name"], row["version"]])
            record_audit(ws.db, "releases deprecate", "release_deprecated",
                         {"name": row["name"], "version": row["version"], "reason": reason})
        return to_row(row_of(ws.db, row["name"], row["version"]))


def users_of(db, release: str) -> list[str]:
    """Who still needs `release` ("NAME@VERSION"): devices running it or holding it for rollback, and
    unfinished rollouts pushing it or rolling back to it (see the package docstring)."""
    found = [f"device {r['device_id']} runs it" for r in db.query(
        "SELECT device_id FROM devices WHERE active_release = ? ORDER BY device_id", [release])]
    found += [f"device {r['device_id']} holds it as its rollback target" for r in db.query(
        "SELECT device_id FROM devices WHERE previous_release = ? ORDER BY device_id", [release])]
    found += [f"rollout {r['id']} ({r['status']}) targets it" for r in db.query(
        "SELECT id, status FROM rollouts WHERE finished_at IS NULL AND (release = ? OR rollback_release = ?) "
        "ORDER BY id", [release, release])]
    return found


def delete(ws, ref: str) -> ReleaseRow:
    """Delete NAME@VERSION: refused (RELEASE_IN_USE) while a device or an unfinished rollout needs it.

    The row stays as a tombstone; its blob references go, so `gc` may free the blobs once they expire.
    """
    name, version = parse_ref(ref, version_required=True)
    rid = release_id(name, version)
    with ws.db.atomic():  # one write lock: no rollout can start on it between the check and the delete
        row = find_release(ws, ref)
        users = users_of(ws.db, rid)
        if users:
            raise ReleaseInUse(f"release {rid} is in use: {'; '.join(users[:5])}"
                               + (f" (and {len(users) - 5} more)" if len(users) > 5 else ""),
                               hint="finish or abort the rollout, or move the devices to another release first")
        ws.db.execute("UPDATE releases SET deleted_at = ? WHERE name = ? AND version = ?",
                      [ws.db.now(), name, version])
        ws.db.execute("DELETE FROM artifact_refs WHERE ref_kind = 'release' AND ref_id = ?", [rid])
        record_audit(ws.db, "releases delete", "release_deleted",
                     {"name": name, "version": version, "payload_sha256": row["payload_sha256"]})
        return to_row(row_of(ws.db, name, version))
