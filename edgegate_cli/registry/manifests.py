"""A stored release's manifest and the blobs it names, read back from the CAS (`releases show`, `export`,
`verify NAME@VERSION`). Reading re-checks the envelope blob's hash and parses the payload strictly;
signatures are `verify`'s business."""

from __future__ import annotations

import json

from pydantic import BaseModel

from ..errors import ManifestInvalid
from ..evidence import release_manifest as rm
from ..evidence.dsse import parse_envelope
from .records import ReleaseRow, find_release, to_row


def read_manifest(ws, row: dict) -> tuple[bytes, dict, rm.ReleaseManifest]:
    """(envelope file bytes, envelope, manifest) of a release row. CorruptBlob if the blob was altered."""
    data = ws.cas.read_bytes(row["envelope_sha256"], verify=True)
    where = f"release {row['name']}@{row['version']}"
    try:
        envelope = json.loads(data)
        _, payload, _ = parse_envelope(envelope)
    except ValueError:
        raise ManifestInvalid(f"{where}: the stored release.dsse.json is not JSON") from None
    return data, envelope, rm.parse_release_payload(payload, where=where)


def export_entries(manifest: rm.ReleaseManifest) -> dict[str, tuple[str, int | None]]:
    """Every file of the exported layout but release.dsse.json: {path: ("sha256:<hex>", size or None)}."""
    entries: dict[str, tuple[str, int | None]] = {f"model/{f.path}": (f.sha256, f.size) for f in manifest.files}
    if manifest.evidence is not None:
        entries["evidence.zip"] = (manifest.evidence["bundle_sha256"], None)  # the manifest gives no size
    for side in ("inputs", "outputs") if manifest.reference else ():
        entries[f"reference/{side}.npz"] = (manifest.reference[side]["sha256"], manifest.reference[side]["size"])
    return entries


class ReleaseDetail(BaseModel):
    release: ReleaseRow
    files: list[dict]  # path, sha256, size
    input_specs: dict | None
    compatible: list[str]
    evidence: dict | None
    reference: dict | None
    edgegate_version: str


def show_release(ws, ref: str) -> ReleaseDetail:
    """NAME@VERSION, or NAME's newest version not deprecated: its row and what its manifest says."""
    row = find_release(ws, ref)
    _, _, manifest = read_manifest(ws, row)
    return ReleaseDetail(release=to_row(row), files=[{"path": f.path, "sha256": f.sha256, "size": f.size}
                                                     for f in manifest.files],
                         input_specs=manifest.input_specs, compatible=list(manifest.compatible),
                         evidence=manifest.evidence, reference=manifest.reference,
                         edgegate_version=json.loads(manifest.raw_payload)["predicate"]["edgegate_version"])
