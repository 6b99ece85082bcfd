"""`fetch_release`: a verified release on disk, for a device-side program of its own (the SDK half of
SPEC §10.5; seed 003).

    from edgegate_cli.download import fetch_release
    release = fetch_release("s3://fleet/edgegate/channels/stable.json", "quickstart@1.1.0",
                            keys=["publisher.pem"], dest="models/quickstart", cache="~/.cache/edgegate")
    session = onnxruntime.InferenceSession(release.model_path)

From a channel (s3://, https:// or a path, as `releases push` lays it out): the channel manifest's
signature and expiry, then the release manifest it names (digest and length), its signature and expiry,
then every file, at most its declared length and its sha256 checked while streaming. From a
`releases export` directory: the release manifest's signature and expiry, then every file the same way.
`dest` receives the exported layout (release.dsse.json, model/, reference/, evidence.zip on request)
only once everything verified (staged beside it, then renamed); a `cache` directory keeps blobs by
digest (LRU, `cache_bytes` cap) so the next fetch of the same files sends nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvalidInput, ManifestInvalid, NotFound
from ..evidence import dsse
from ..evidence.release_manifest import ReleaseManifest, envelope_text, verify_release_envelope
from .blob import Blob, export_blob
from .cache import BlobCache
from .fetch import Fetcher
from .verify import hash_file

ENVELOPE = "release.dsse.json"


@dataclass(frozen=True)
class FetchedRelease:
    name: str
    version: str
    identity: str  # "sha256:<hex>": the model identity
    directory: Path  # the exported layout
    model_path: Path  # the file ONNX Runtime opens
    files: dict[str, Path]  # path in the layout -> file
    manifest: ReleaseManifest
    channel_version: int | None  # the channel manifest's version (None from an export directory)
    downloaded_bytes: int  # file bytes fetched from the source this time (0: all from the cache or `dest`)


def _trusted(keys) -> dsse.TrustedKeys:
    if isinstance(keys, dict):
        return keys
    if isinstance(keys, str | os.PathLike) or not keys:
        raise InvalidInput("keys must list at least one public key file (`edgegate keys export`)", field="keys")
    trusted = {}
    for path in keys:
        key_id, raw = dsse.read_public_key_file(path)
        trusted[key_id] = (raw, None)
    return trusted


def _entries(manifest: ReleaseManifest, evidence_size: int | None) -> list[tuple[str, str, int]]:
    """(path in the layout, hex, size) of the files to fetch."""
    out = [(f"model/{f.path}", f.hexdigest, f.size) for f in manifest.files]
    for side in ("inputs", "outputs") if manifest.reference else ():
        ref = manifest.reference[side]
        out.append((f"reference/{side}.npz", ref["sha256"].removeprefix("sha256:"), ref["size"]))
    if evidence_size is not None and manifest.evidence is not None:
        out.append(("evidence.zip", manifest.evidence["bundle_sha256"].removeprefix("sha256:"), evidence_size))
    return out


def _from_channel(fetcher: Fetcher, source: str, ref, digest, trusted, now, evidence: bool, tmp: Path):
    from ..download.channel import channel_location, read_channel, read_release_envelope

    location = channel_location(source)
    channel = read_channel(fetcher, location, trusted, now=now)
    entry = _select(channel, ref, digest, location.where)
    envelope = read_release_envelope(fetcher, location, entry, tmp)
    manifest = verify_release_envelope(envelope, trusted, now=now, where=f"{location.where}: {entry.ref}")
    if (manifest.name, manifest.version, manifest.identity) != (entry.name, entry.version, entry.identity):
        raise ManifestInvalid(f"{location.where}: the channel lists {entry.ref} ({entry.identity}), but its "
                              f"manifest is {manifest.name}@{manifest.version} ({manifest.identity})")
    size = entry.evidence["size"] if evidence and entry.evidence else None
    blobs = [(rel, location.blob(hexdigest, n)) for rel, hexdigest, n in _entries(manifest, size)]
    return envelope, manifest, blobs, channel.version


def _select(channel, ref, digest, where: str):
    import semver

    if digest is not None:
        found = [r for r in channel.releases if digest in (r.identity, r.manifest_sha256)]
    elif ref is None:
        found = [channel.release(*channel.current)] if channel.current else []
    elif "@" in ref:
        found = [r for r in channel.releases if r.ref == ref]
    else:
        found = sorted((r for r in channel.releases if r.name == ref),
                       key=lambda r: semver.Version.parse(r.version))[-1:]
    if not found:
        wanted = digest or ref or "a current release"
        raise NotFound(f"{where}: channel {channel.channel} (version {channel.version}) has no {wanted}",
                       hint="listed: " + (", ".join(r.ref for r in channel.releases) or "nothing"))
    return found[-1]


def _from_export(directory: Path, ref, digest, trusted, now, evidence: bool):
    from ..evidence.channel_manifest import MAX_ENVELOPE_BYTES

    if (directory / ENVELOPE).stat().st_size > MAX_ENVELOPE_BYTES:
        raise ManifestInvalid(f"{directory / ENVELOPE}: over {MAX_ENVELOPE_BYTES} bytes; not read")
    data = (directory / ENVELOPE).read_bytes()
    try:
        envelope = json.loads(data)
    except ValueError:
        raise ManifestInvalid(f"{directory / ENVELOPE}: not JSON") from None
    manifest = verify_release_envelope(envelope, trusted, now=now, where=str(directory / ENVELOPE))
    wanted = {None, manifest.name, f"{manifest.name}@{manifest.version}"}
    if ref not in wanted or digest not in (None, manifest.identity):
        raise NotFound(f"{directory}: holds {manifest.name}@{manifest.version} ({manifest.identity}), "
                       f"not {digest or ref}")
    size = (directory / "evidence.zip").stat().st_size if evidence and (directory / "evidence.zip").is_file() \
        else None
    blobs = [(rel, export_blob(directory, rel, hexdigest, n)) for rel, hexdigest, n in _entries(manifest, size)]
    return envelope, manifest, blobs, None


def _model_path(root: Path, manifest: ReleaseManifest) -> Path:
    paths = [f.path for f in manifest.files]
    onnx = [p for p in paths if p.endswith(".onnx")]
    name = onnx[0] if len(onnx) == 1 else "model.onnx" if "model.onnx" in onnx else paths[0]
    return root / "model" / name


def _place(blob: Blob, target: Path, fetcher: Fetcher, cache: BlobCache | None, tmp: Path) -> int:
    """Put the verified blob at `target`; returns the bytes fetched from the source (0 on a cache hit)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if cache is None:
        fetcher.fetch(blob, target, tmp_dir=tmp)
        return blob.size
    result = cache.fetch(blob, fetcher)
    try:
        os.link(result.path, target)
    except OSError:  # another filesystem: copy, verified again on the way
        fetcher.fetch(Blob(str(result.path), blob.sha256, blob.size), target, tmp_dir=tmp)
    return blob.size if result.attempts else 0


def _already(dest: Path, envelope_bytes: bytes, blobs) -> bool:
    """Whether `dest` already holds exactly this release (envelope bytes, every file's length and sha256)."""
    try:
        if (dest / ENVELOPE).read_bytes() != envelope_bytes:
            return False
    except OSError:
        return False
    return all((dest / rel).is_file() and (dest / rel).stat().st_size == b.size and hash_file(dest / rel) == b.sha256
               for rel, b in blobs)


def fetch_release(source: str | os.PathLike, ref: str | None = None, *, keys, dest: str | os.PathLike,
                  digest: str | None = None, cache: str | os.PathLike | None = None, cache_bytes: int = 2 << 30,
                  evidence: bool = False, now: datetime | None = None, **fetcher_options) -> FetchedRelease:
    """Fetch and verify a release into `dest` (new, empty, or already holding exactly this release).

    `source`: a channel URL (…/channels/<name>.json) or a `releases export` directory. `ref`: NAME@VERSION,
    NAME (its newest version on the channel) or None (the channel's current release); or `digest`: the
    model identity or the release manifest's sha256. `keys`: public key files from `edgegate keys export`
    (or {key_id: (raw key, revoked_at)}). Raises the signature refusals, MANIFEST_EXPIRED, CHANNEL_EXPIRED,
    MANIFEST_INVALID, LENGTH_MISMATCH / DIGEST_MISMATCH (exit 1), NotFound, InvalidInput, Store* errors."""
    trusted, now = _trusted(keys), now or datetime.now(UTC)
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise InvalidInput(f"{dest}: exists and is not a directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    store = BlobCache(Path(cache).expanduser(), max_bytes=cache_bytes) if cache is not None else None
    with Fetcher(**fetcher_options) as fetcher, tempfile.TemporaryDirectory(dir=dest.parent,
                                                                          prefix=f".{dest.name}.fetch-") as tmp:
        tmp = Path(tmp)
        exported = Path(source) if not str(source).startswith(("s3://", "https://", "http://", "file://")) else None
        if exported is not None and (exported / ENVELOPE).is_file():
            envelope, manifest, blobs, version = _from_export(exported, ref, digest, trusted, now, evidence)
        else:
            envelope, manifest, blobs, version = _from_channel(fetcher, str(source), ref, digest, trusted, now,
                                                               evidence, tmp)
        envelope_bytes = envelope_text(envelope).encode()
        downloaded = 0
        if not _already(dest, envelope_bytes, blobs):
            if dest.is_dir() and any(dest.iterdir()):
                raise InvalidInput(f"{dest}: is not empty and holds another release; give a new or empty directory")
            staging = tmp / "release"
            for rel, blob in blobs:
                downloaded += _place(blob, staging / rel, fetcher, store, tmp)
            (staging / ENVELOPE).write_bytes(envelope_bytes)
            if dest.is_dir():
                dest.rmdir()
            os.rename(staging, dest)
    files = {rel: dest / rel for rel, _ in blobs} | {ENVELOPE: dest / ENVELOPE}
    return FetchedRelease(manifest.name, manifest.version, manifest.identity, dest, _model_path(dest, manifest),
                          files, manifest, version, downloaded)

