"""`releases push NAME@VERSION s3://BUCKET/PREFIX` and `publish --to`: put a release on an S3-compatible
store for agents that pull (SPEC §10.5).

Objects first, manifest last: every file of the release (model files, reference data, the evidence
bundle) and its signed release.dsse.json go to `PREFIX/blobs/sha256/<hex>` (an object already there
with the right length is not sent again; each blob is re-hashed from the CAS on the way), and only then
is the channel manifest `PREFIX/channels/<channel>.json` rewritten (registry/channel.py), listing the
release and making it the channel's current one. Credentials come from the standard AWS chain and are
never stored or printed.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from ..canonical import tag, untag
from ..errors import CorruptBlob, InvalidInput
from ..evidence.release_manifest import ReleaseManifest
from .channel import DEFAULT_EXPIRY, ChannelUpdate, update_channel, with_release
from .manifests import export_entries, read_manifest
from .records import find_release

IMMUTABLE = "max-age=31536000, immutable"


class PushResult(BaseModel):
    name: str
    version: str
    root: str  # s3://BUCKET/PREFIX
    objects: int  # blobs the release needs
    uploaded: int  # of those, sent now
    bytes_uploaded: int
    channel: ChannelUpdate


def parse_expiry(text: str, option: str = "--channel-expires-in") -> timedelta:
    """`7d`, `36h`, `90m` or `3600s` (1 minute to 366 days). InvalidInput naming the option otherwise."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    value = text.strip().lower() if isinstance(text, str) else ""
    if len(value) < 2 or value[-1] not in units or not value[:-1].isdigit():
        raise InvalidInput(f"{option} {text!r} is not a duration like 7d, 36h, 90m or 3600s", field=option)
    seconds = int(value[:-1]) * units[value[-1]]
    if not 60 <= seconds <= 366 * 86400:
        raise InvalidInput(f"{option} {text!r} is outside 1 minute to 366 days", field=option)
    return timedelta(seconds=seconds)


def open_store(url: str):
    """(ObjectStore, S3Location) for `s3://BUCKET/PREFIX`, with credentials resolved now
    (StoreCredentialsMissing names what is missing before anything is done)."""
    from ..objectstore import ObjectStore, parse_s3_url

    location = parse_s3_url(url)
    store = ObjectStore(location)
    store.require_credentials()
    return store, location


def _blobs(ws, envelope_sha256: str, manifest: ReleaseManifest) -> list[tuple[str, int]]:
    """(hex, size) of every object the release needs, the envelope last."""
    out = []
    digests = [digest for _, (digest, _) in sorted(export_entries(manifest).items())] + [tag(untag(envelope_sha256))]
    for digest in digests:
        if not ws.cas.exists(digest):
            ws.cas.read_bytes(digest)  # raises NotFound naming the blob
        out.append((untag(digest), ws.cas.path_of(digest).stat().st_size))
    return out


def _upload(ws, store, location, hexdigest: str, size: int) -> bool:
    """Send one CAS blob unless the store holds an object of its length; returns whether it was sent."""
    import hashlib

    key = location.key(f"blobs/sha256/{hexdigest}")
    held = store.head(key)
    if held is not None and held.size == size:
        return False
    path = ws.cas.path_of(tag(hexdigest))
    digest = hashlib.sha256()
    with open(path, "rb") as f:  # re-hash what leaves this home: the store gets exactly the named bytes
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != hexdigest:
        raise CorruptBlob(str(path), hexdigest, digest.hexdigest())
    store.put_file(key, path, cache_control=IMMUTABLE)
    return True


class Uploaded(BaseModel):
    entry: dict  # the release's channel-manifest entry (registry/channel.py `with_release`)
    channel: str  # the channel its manifest names
    objects: int
    uploaded: int
    bytes_uploaded: int


def upload_release(ws, ref: str, store, location, *, progress=lambda _text: None) -> Uploaded:
    """Every object of NAME@VERSION under `location` (blobs first, its signed manifest last); the channel
    is not touched. Raises NotFound (release), CorruptBlob, Store* errors."""
    row = find_release(ws, ref)
    _, _, manifest = read_manifest(ws, row)
    blobs = _blobs(ws, row["envelope_sha256"], manifest)
    sent = uploaded = 0
    for i, (hexdigest, size) in enumerate(blobs, 1):
        progress(f"object {i}/{len(blobs)}: blobs/sha256/{hexdigest[:12]}… ({size:,} bytes)")
        if _upload(ws, store, location, hexdigest, size):
            sent, uploaded = sent + size, uploaded + 1
    evidence = manifest.evidence
    entry = {"name": manifest.name, "version": manifest.version, "identity": manifest.identity,
             "manifest": {"sha256": tag(untag(row["envelope_sha256"])), "size": blobs[-1][1]},
             "evidence": None if evidence is None else {
                 "sha256": evidence["bundle_sha256"], "size": ws.cas.path_of(evidence["bundle_sha256"]).stat().st_size}}
    return Uploaded(entry=entry, channel=manifest.channel, objects=len(blobs), uploaded=uploaded,
                    bytes_uploaded=sent)


def push_release(ws, ref: str, url: str, *, key: str | None = None, expires_in: timedelta = DEFAULT_EXPIRY,
                 progress=lambda _text: None, store=None) -> PushResult:
    """Upload NAME@VERSION's objects under `url` (s3://BUCKET/PREFIX), then make it the current release of
    its channel there. Raises NotFound (release), InvalidInput (URL, key, a lower version than current),
    Store* errors (exit 2/3; the channel manifest is then unchanged), the refusal of a channel manifest
    this home cannot verify."""
    from ..evidence.keys import load_signing_key

    find_release(ws, ref)  # NotFound before the store is opened
    if store is None:
        store, location = open_store(url)
    else:
        location = store.location
    signer = load_signing_key(ws, key)
    up = upload_release(ws, ref, store, location, progress=progress)
    progress(f"signing channel {up.channel}")
    update = update_channel(ws, store, location, up.channel, signer,
                            lambda body: with_release(body, up.entry, make_current=True), expires_in=expires_in)
    return PushResult(name=up.entry["name"], version=up.entry["version"], root=location.url(), objects=up.objects,
                      uploaded=up.uploaded, bytes_uploaded=up.bytes_uploaded, channel=update)
