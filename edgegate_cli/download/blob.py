"""What a verified download needs to know before the first byte: where, how long, which sha256."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InvalidInput

HEX64 = re.compile(r"[0-9a-f]{64}\Z")
SCHEMES = ("https", "http", "s3", "file")


@dataclass(frozen=True)
class Blob:
    """A blob to fetch: `location` is an https://, http://, s3://BUCKET/KEY or file:// URL, or a local
    path; `sha256` is 64 lowercase hex (a `sha256:` prefix is accepted and dropped); `size` in bytes."""

    location: str
    sha256: str
    size: int

    def __post_init__(self):
        digest = self.sha256.removeprefix("sha256:") if isinstance(self.sha256, str) else ""
        if not HEX64.match(digest):
            raise InvalidInput(f"{display_location(self.location)}: sha256 {self.sha256!r} is not 64 lowercase hex")
        object.__setattr__(self, "sha256", digest)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise InvalidInput(f"{display_location(self.location)}: size {self.size!r} is not a byte count")
        if scheme_of(self.location) not in SCHEMES:
            raise InvalidInput(f"{display_location(self.location)}: not an https://, http://, s3:// or file:// URL "
                               "or a local path")

    @property
    def where(self) -> str:
        """The location as it may be shown: no user:password, no query string (presigned URLs carry
        signatures there), control characters escaped."""
        return display_location(self.location)


@dataclass(frozen=True)
class Capped:
    """A source read without a known digest (a channel manifest): at most `size` bytes of `location`."""

    location: str
    size: int

    def __post_init__(self):
        if scheme_of(self.location) not in SCHEMES:
            raise InvalidInput(f"{display_location(self.location)}: not an https://, http://, s3:// or file:// URL "
                               "or a local path")

    @property
    def where(self) -> str:
        return display_location(self.location)


def scheme_of(location: str) -> str:
    """The URL scheme, or "file" for a plain path (Windows drive letters included)."""
    if not isinstance(location, str) or not location:
        return ""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", location)
    return match.group(1).lower() if match else "file"


def display_location(location: object) -> str:
    """`location` safe to print: credentials and query dropped, control characters escaped."""
    text = str(location)
    if "://" in text:
        parts = urlsplit(text)
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # a port that is not a number
            port = ":?"
        text = f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return repr(text)
    return text


def export_blob(export_dir: Path | str, relpath: str, sha256: str, size: int) -> Blob:
    """A blob inside a `releases export` directory (e.g. relpath `model/model.onnx`). Refuses a relpath
    that is absolute, has a backslash, a control character, or an empty/'.'/'..' part."""
    parts = relpath.split("/") if isinstance(relpath, str) else [""]
    if (not relpath or relpath.startswith("/") or "\\" in relpath or any(p in ("", ".", "..") for p in parts)
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in relpath)):
        raise InvalidInput(f"{export_dir}: {relpath!r} is not a relative path inside the export directory")
    return Blob(str(Path(export_dir, *parts)), sha256, size)
