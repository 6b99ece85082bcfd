"""PromptPack versions stored in a home (SPEC §3): immutable, in the `promptpacks` table plus a CAS
copy of the canonical bytes; listing, lookup by id[@version], export and diff. The file format and
its canonical form live in `promptpack_format.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from ..errors import InvalidInput, NotFound, PackVersionExists
from ..files import is_regular_file
from .promptpack_format import (
    DEFAULT_MAX_NEW_TOKENS,
    PackInfo,
    StoredPack,
    canonicalize,
    info_fields,
    load_pack,
    pack_digest,
)

# --- versions stored in a home ---------------------------------------------------------------------


class AddResult(BaseModel):
    pack_id: str
    version: str
    sha256: str
    cases: int
    status: Literal["added", "unchanged"]


def add_pack(ws, path: Path | str) -> AddResult:
    """Store a pack file's canonical form as an immutable version (row, CAS blob, pack reference,
    audit event). The same id+version with the same digest is a no-op (`unchanged`).

    Raises what load_pack raises, or PackVersionExists when id+version exist with other content.
    """
    from ..store.artifacts import add_ref, store_bytes
    from ..store.state import record_audit

    doc = load_pack(path)
    data = canonicalize(doc)
    digest = hashlib.sha256(data).hexdigest()
    pid, version = doc["promptpack_id"], doc["version"]
    result = AddResult(pack_id=pid, version=version, sha256="sha256:" + digest, cases=len(doc["cases"]),
                       status="unchanged")
    if (row := _row(ws.db, pid, version)) is not None:
        return _unchanged_or_refuse(row, result)
    store_bytes(ws.db, ws.cas, data, "promptpack", f"{pid}@{version}.json")
    ws.db.execute("BEGIN IMMEDIATE")  # re-check under the write lock: another process may have added it
    try:
        if (row := _row(ws.db, pid, version)) is None:
            ws.db["promptpacks"].insert({"pack_id": pid, "version": version, "sha256": digest,
                                         "json": data.decode("utf-8"), "published": 1, "created_at": ws.db.now()})
            add_ref(ws.db, digest, "pack", f"{pid}@{version}")
            record_audit(ws.db, "pack add", "pack_added", {"pack_id": pid, "version": version,
                                                            "sha256": result.sha256, "source": str(path)})
        ws.db.execute("COMMIT")
    except BaseException:
        ws.db.execute("ROLLBACK")
        raise
    return _unchanged_or_refuse(row, result) if row is not None else result.model_copy(update={"status": "added"})


def _unchanged_or_refuse(row: dict, result: AddResult) -> AddResult:
    if row["sha256"] != result.sha256.removeprefix("sha256:"):
        raise PackVersionExists(f"pack {result.pack_id}@{result.version} already exists with different content "
                                f"(sha256:{row['sha256']}); publish a new version")
    return result


def _row(db, pid: str, version: str) -> dict | None:
    rows = list(db.query("SELECT * FROM promptpacks WHERE pack_id = ? AND version = ?", [pid, version]))
    return rows[0] if rows else None


def semver_key(version: str) -> tuple:
    """Sort key giving semver 2.0 precedence (a pre-release sorts before its release; build ignored,
    then used as a tie-break so the order is total)."""
    core, _, build = version.partition("+")
    core, dash, pre = core.partition("-")
    nums = tuple(int(x) if x.isdigit() else 0 for x in core.split("."))
    pre_key = (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))) if dash else (1,)
    return nums, pre_key, build


class PackListing(BaseModel):
    packs: list[PackInfo]


def list_packs(ws) -> PackListing:
    """Every stored pack version, by id, then newest version first."""
    rows = list(ws.db.query("SELECT * FROM promptpacks"))
    rows.sort(key=lambda r: semver_key(r["version"]), reverse=True)
    rows.sort(key=lambda r: r["pack_id"])
    return PackListing(packs=[_stored(r) for r in rows])


def _stored(row: dict, document: bool = False):
    doc = json.loads(row["json"])
    info = info_fields(doc, created_at=row["created_at"]) | {"sha256": "sha256:" + row["sha256"]}
    return StoredPack(**info, document=doc) if document else PackInfo(**info)


def get_pack(ws, ref: str, *, source: str | None = None) -> StoredPack:
    """A stored pack by `ID` (its newest version by semver) or `ID@VERSION`.

    Raises NotFound for an unknown id, InvalidInput (listing the known versions) for an unknown
    version. With `source`, messages start `<source>: $.promptpack.…` (for a pipeline file).
    """
    pid, _, version = ref.partition("@")
    rows = sorted(ws.db.query("SELECT * FROM promptpacks WHERE pack_id = ?", [pid]),
                  key=lambda r: semver_key(r["version"]))
    if not rows:
        where = f"{source}: $.promptpack.id: " if source else ""
        raise NotFound(f"{where}no PromptPack {pid!r} in this home", path=source,
                       hint="add it with: edgegate pack add FILE")
    if not version:
        return _stored(rows[-1], document=True)
    for row in rows:
        if row["version"] == version:
            return _stored(row, document=True)
    where = f"{source}: $.promptpack.version: " if source else ""
    known = ", ".join(r["version"] for r in rows)
    raise InvalidInput(f"{where}{pid} has no version {version} (known: {known})", path=source)


def resolve_pipeline_pack(ws, pack_id: str, version: str, source: str) -> StoredPack:
    """The pack a pipeline names (`promptpack: {id, version}`), for the runner. Errors name the
    pipeline file: `<source>: $.promptpack.version: <id> has no version X (known: 1.0.0, 1.1.0)`
    (InvalidInput) or `<source>: $.promptpack.id: no PromptPack 'x' in this home` (NotFound)."""
    return get_pack(ws, f"{pack_id}@{version}", source=source)


def export_pack(ws, ref: str) -> bytes:
    """The canonical bytes of a stored pack (their sha256 is the pack digest). Raises what get_pack
    raises, or CorruptBlob if the stored JSON no longer hashes to the recorded digest."""
    from ..errors import CorruptBlob

    pack = get_pack(ws, ref)
    data = canonicalize(pack.document)
    actual, expected = hashlib.sha256(data).hexdigest(), pack.sha256.removeprefix("sha256:")
    if actual != expected:
        raise CorruptBlob(f"promptpacks[{pack.pack_id}@{pack.version}]", expected, actual)
    return data


class ExportResult(PackInfo):
    out: str
    bytes: int


def write_export(ws, ref: str, out: Path | str) -> ExportResult:
    """Write `export_pack(ws, ref)` to `out` (temp file then rename); return what was written."""
    data = export_pack(ws, ref)
    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        problem = "is a directory" if out.is_dir() else f"cannot be written: no directory {out.parent}"
        raise InvalidInput(f"--out {out}: {problem}", path=str(out), hint="give a file path in an existing directory")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; an exported pack is meant to be shared
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    doc = json.loads(data)
    return ExportResult(**info_fields(doc), out=str(out), bytes=len(data))


# --- diff ------------------------------------------------------------------------------------------


class CaseChange(BaseModel):
    case_id: str
    fields: list[str]  # the case's keys whose values differ
    values: dict[str, dict] = {}  # field -> {"a": old value, "b": new value} (absent: None)


class PackDiff(BaseModel):
    a: str  # `id@version` or the file path
    b: str
    a_sha256: str
    b_sha256: str
    identical: bool
    added: list[str]  # case ids only in b
    removed: list[str]  # case ids only in a
    changed: list[CaseChange]
    order_changed: bool  # the common cases appear in another order
    defaults_changed: dict[str, dict]  # {"max_new_tokens": {"a": 128, "b": 64}}, effective values
    fields_changed: list[str]  # other top-level fields: promptpack_id, version, description
    field_values: dict[str, dict] = {}  # those fields -> {"a": old, "b": new}


def diff_packs(a: dict, b: dict, a_label: str = "a", b_label: str = "b") -> PackDiff:
    """What changed from pack document `a` to `b`: cases added, removed and changed (by case_id),
    effective defaults, other top-level fields."""
    ca, cb = {c["case_id"]: c for c in a["cases"]}, {c["case_id"]: c for c in b["cases"]}
    changed = []
    for cid, case in cb.items():
        if cid in ca and ca[cid] != case:
            fields = sorted(k for k in set(ca[cid]) | set(case) if ca[cid].get(k) != case.get(k))
            changed.append(CaseChange(case_id=cid, fields=fields,
                                      values={k: {"a": ca[cid].get(k), "b": case.get(k)} for k in fields}))
    common_a = [c for c in ca if c in cb]
    common_b = [c for c in cb if c in ca]
    effective = {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, "temperature": 0}
    da, db_ = effective | a.get("defaults", {}), effective | b.get("defaults", {})
    da_sha, db_sha = pack_digest(a), pack_digest(b)
    return PackDiff(
        a=a_label, b=b_label, a_sha256="sha256:" + da_sha, b_sha256="sha256:" + db_sha, identical=da_sha == db_sha,
        added=[c for c in cb if c not in ca], removed=[c for c in ca if c not in cb], changed=changed,
        order_changed=common_a != common_b,
        defaults_changed={k: {"a": da.get(k), "b": db_.get(k)} for k in sorted(set(da) | set(db_))
                          if da.get(k) != db_.get(k)},
        fields_changed=(top := sorted(k for k in (set(a) | set(b)) - {"cases", "defaults"} if a.get(k) != b.get(k))),
        field_values={k: {"a": a.get(k), "b": b.get(k)} for k in top})


def load_pack_ref(arg: str, open_ws) -> tuple[str, dict]:
    """(label, canonical document) for `arg`: an existing file is loaded with load_pack (a file wins
    over a ref of the same name); otherwise `ID[@VERSION]` is looked up in `open_ws()`'s home."""
    if is_regular_file(arg):
        return arg, load_pack(arg)
    pack = get_pack(open_ws(), arg)
    return f"{pack.pack_id}@{pack.version}", pack.document


def diff_pack_refs(a: str, b: str, open_ws) -> PackDiff:
    """diff_packs over two files or refs (see load_pack_ref); the home is opened only for a ref."""
    from functools import cache

    once = cache(open_ws)  # two refs share one opened home
    (la, da), (lb, db_) = load_pack_ref(a, once), load_pack_ref(b, once)
    return diff_packs(da, db_, la, lb)
