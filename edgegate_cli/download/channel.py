"""Where things live on the pull path (SPEC §10.5), under one root (an s3://BUCKET/PREFIX, an https://
URL or a local directory):

    <root>/channels/<channel>.json            the signed channel manifest (evidence/channel_manifest.py)
    <root>/blobs/sha256/<64 hex>              every release file, evidence bundle and release manifest,
                                              content-addressed (immutable: the same key is the same bytes)
    <root>/status/<device id>/status.json     what each agent reports (one prefix per device, so a device's
                                              credentials can be scoped to it: `Write:BUCKET/status/dev-1/*`)

Agents, the SDK and the release box all name objects through this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from ..errors import InvalidInput, LengthMismatch, ManifestInvalid
from .blob import Blob, display_location, scheme_of

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
DEVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


@dataclass(frozen=True)
class ChannelLocation:
    url: str  # the channel manifest's URL (or path)
    root: str  # what channels/, blobs/ and status/ hang from (no trailing slash)
    name: str  # the channel

    @property
    def where(self) -> str:
        return display_location(self.url)

    def blob(self, sha256: str, size: int) -> Blob:
        """The content-addressed blob `sha256` ("sha256:<hex>" or hex) of `size` bytes under this root."""
        hexdigest = sha256.removeprefix("sha256:")
        return Blob(f"{self.root}/blobs/sha256/{hexdigest}", hexdigest, size)

    def status_location(self, device_id: str) -> str:
        return f"{self.root}/status/{check_device_id(device_id)}/status.json"


def check_device_id(device_id: str) -> str:
    """A device id that can name an object key: letters, digits, '.', '_' and '-' (no '/')."""
    if not isinstance(device_id, str) or not DEVICE_RE.match(device_id) or ".." in device_id:
        raise InvalidInput(f"device id {device_id!r} cannot name a status object on the pull path",
                           field="device_id", hint="use 1-128 of A-Z a-z 0-9 . _ - (starting with a letter or digit)")
    return device_id


def channel_location(url: str) -> ChannelLocation:
    """Parse a channel URL: `<root>/channels/<channel>.json` (s3://, https://, http://, file:// or a path).
    Raises InvalidInput naming what is wrong."""
    if not isinstance(url, str) or scheme_of(url) not in ("s3", "https", "http", "file"):
        raise InvalidInput(f"{display_location(url)}: not an s3://, https:// or file:// URL or a path",
                           hint="give the channel manifest's URL, e.g. s3://BUCKET/PREFIX/channels/stable.json")
    root, _, name = url.rstrip("/").rpartition("/channels/")
    name = name.removesuffix(".json") if name.endswith(".json") else ""
    if not root or not NAME_RE.match(name) or root.endswith("/"):
        raise InvalidInput(f"{display_location(url)}: a channel URL ends in /channels/<channel>.json",
                           hint="e.g. s3://BUCKET/PREFIX/channels/stable.json (the URL `releases push` prints)")
    if scheme_of(url) == "s3":
        from ..objectstore import parse_s3_url

        parse_s3_url(url)  # a valid bucket, no control characters
    return ChannelLocation(url, root, name)


def channel_url(root: str, channel: str) -> str:
    return f"{root.rstrip('/')}/channels/{channel}.json"


def read_channel(fetcher, location: ChannelLocation, trusted_keys, *, now: datetime):
    """Fetch, bound and verify a channel manifest (signatures, name, expiry against `now`); returns the
    ChannelManifest. Raises Store* errors (the fetch), ManifestInvalid, the signature refusals and
    ChannelExpired. The version floor is the caller's (evidence.channel_manifest.check_version)."""
    from ..evidence import channel_manifest as cm

    try:
        data = fetcher.read(location.url, max_bytes=cm.MAX_BYTES)
    except LengthMismatch:
        raise ManifestInvalid(f"{location.where}: the channel manifest is over {cm.MAX_BYTES} bytes; "
                              "not read") from None
    try:
        envelope = json.loads(data)
    except ValueError:
        raise ManifestInvalid(f"{location.where}: the channel manifest is not JSON") from None
    return cm.verify_channel_envelope(envelope, trusted_keys, now=now, where=location.where, channel=location.name)


def read_release_envelope(fetcher, location: ChannelLocation, entry, tmp_dir) -> dict:
    """The release.dsse.json a channel entry names, fetched with its digest and length checked (through a
    file in `tmp_dir`, removed again: a directory that holds only files, such as an agent's blobs/tmp)."""
    import uuid
    from pathlib import Path

    path = Path(tmp_dir) / f"envelope-{uuid.uuid4().hex}.json"
    try:
        fetcher.fetch(location.blob(entry.manifest_sha256, entry.manifest_size), path, tmp_dir=Path(tmp_dir))
        data = path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
    try:
        envelope = json.loads(data)
    except ValueError:
        raise ManifestInvalid(f"{location.where}: the release manifest of {entry.ref} is not JSON") from None
    if not isinstance(envelope, dict):
        raise ManifestInvalid(f"{location.where}: the release manifest of {entry.ref} is not a JSON object")
    return envelope
