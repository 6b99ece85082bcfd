"""A bundle is exactly the bytes EdgeGate writes (`zip_safety.write_deterministic_zip`, stored entries).

Hashes and the signature cover what is *in* a bundle; this covers the zip around it. Anything a zip reader
tolerates but EdgeGate never writes fails verification with its own message: bytes before the first entry
(`cat script.sh b.zip > x.zip` still unzips, and `sh x.zip` runs the script), bytes after the end record,
an entry no central-directory record names (hidden from readers that trust the directory, seen by those
that scan local headers), a local header that disagrees with its directory record, any header field other
than EdgeGate writes (version, flags, method, date, attributes, extra fields, comments), unsorted or
duplicate names, and an envelope that is not EdgeGate's canonical JSON and base64. Only headers are read
here (entry data is hashed by `zip_safety.open_bundle`, which also checks every CRC-32).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
import struct

from ..canonical import canonical_json
from ..errors import VerificationFailed
from .zip_safety import ENVELOPE, MAX_ENTRIES, SUMMARY, Bundle

_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_VERSION = 20  # zipfile's DEFAULT_VERSION: "version needed" and "made by" (2.0)
_UNIX = 3
_DOS_DATE = (1 << 5) | 1  # 1980-01-01
_EXTERNAL = (stat.S_IFREG | 0o644) << 16
_LOCAL_FIELDS = ("signature", "version needed", "reserved byte", "flags", "compression method", "time", "date",
                 "CRC-32", "compressed size", "size", "name length", "extra field length")
_CENTRAL_FIELDS = ("signature", "version made by", "system made on", "version needed", "reserved byte", "flags",
                   "compression method", "time", "date", "CRC-32", "compressed size", "size", "name length",
                   "extra field length", "comment length", "disk number", "internal attributes",
                   "external attributes", "local header offset")


def _fail(where: str, text: str) -> VerificationFailed:
    return VerificationFailed(f"{where}: {text} (a bundle is exactly the zip EdgeGate writes)")


def _end_record(fp, size: int, where: str) -> tuple[int, int, int]:
    """(entries, central directory size, its offset) from the end record, which must close the file."""
    tail_len = min(size, _END.size + 0xFFFF)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) - pos < _END.size:
        raise _fail(where, "no end of central directory record")
    _sig, disk, cd_disk, here, entries, cd_size, cd_offset, comment = _END.unpack_from(tail, pos)
    if comment:
        raise _fail(where, f"the zip has a {comment}-byte comment")
    trailing = len(tail) - pos - _END.size
    if trailing:
        raise _fail(where, f"{trailing:,} bytes follow the end of the zip")
    if (disk, cd_disk) != (0, 0) or here != entries:
        raise _fail(where, "the end record describes a multi-disk archive")
    if entries > MAX_ENTRIES:
        raise _fail(where, f"{entries:,} entries, over the limit of {MAX_ENTRIES:,}")
    end_at = size - tail_len + pos
    if cd_offset + cd_size != end_at:
        gap = end_at - cd_size - cd_offset
        raise _fail(where, f"{gap:,} bytes precede the zip (something was prepended)" if gap > 0 else
                    "the central directory is not where the end record says")
    return entries, cd_size, cd_offset


def _central_records(fp, entries: int, cd_size: int, cd_offset: int, where: str) -> list[tuple[tuple, bytes]]:
    fp.seek(cd_offset)
    data = fp.read(cd_size)
    records, pos = [], 0
    for _ in range(entries):
        if len(data) - pos < _CENTRAL.size or data[pos:pos + 4] != b"PK\x01\x02":
            raise _fail(where, f"the central directory is malformed at its byte {pos:,}")
        fields = _CENTRAL.unpack_from(data, pos)
        name_len, extra_len, comment_len = fields[12:15]
        name = data[pos + _CENTRAL.size:pos + _CENTRAL.size + name_len]
        records.append((fields, name))
        pos += _CENTRAL.size + name_len + extra_len + comment_len
    if pos != len(data):
        raise _fail(where, f"{len(data) - pos:,} unexplained bytes in the central directory")
    return records


def _name(raw: bytes, flags: int, where: str) -> str:
    try:
        return raw.decode("utf-8" if flags & 0x800 else "ascii")
    except UnicodeDecodeError:
        raise _fail(where, f"entry name {raw[:60]!r} is not {'UTF-8' if flags & 0x800 else 'ASCII'}") from None


def _expected_central(flags: int, crc: int, size: int, name_len: int, offset: int) -> tuple:
    return (b"PK\x01\x02", _VERSION, _UNIX, _VERSION, 0, flags, 0, 0, _DOS_DATE, crc, size, size, name_len,
            0, 0, 0, 0, _EXTERNAL, offset)


def _check_entry(fp, record: tuple, raw_name: bytes, offset: int, where: str) -> int:
    """Check one entry's local header against its directory record and EdgeGate's form; return the next offset."""
    fields = record
    name = _name(raw_name, fields[5], where)
    flags = 0 if name.isascii() else 0x800
    expected = _expected_central(flags, fields[9], fields[11], len(raw_name), offset)
    for label, got, want in zip(_CENTRAL_FIELDS, fields, expected, strict=True):
        if got != want:
            raise _fail(where, f"entry {name!r}: its directory record's {label} is {got}, EdgeGate writes {want}")
    fp.seek(offset)
    head = fp.read(_LOCAL.size)
    if len(head) < _LOCAL.size or not head.startswith(b"PK\x03\x04"):
        raise _fail(where, f"entry {name!r}: no local header at offset {offset:,}")
    local = _LOCAL.unpack(head)
    want_local = (b"PK\x03\x04", _VERSION, 0, flags, 0, 0, _DOS_DATE, fields[9], fields[10], fields[11],
                  len(raw_name), 0)
    for label, got, want in zip(_LOCAL_FIELDS, local, want_local, strict=True):
        if got != want:
            raise _fail(where, f"entry {name!r}: its local header and directory record disagree on the {label} "
                               f"({got} and {want})")
    if fp.read(len(raw_name)) != raw_name:
        raise _fail(where, f"entry {name!r}: its local header names another file")
    return offset + _LOCAL.size + len(raw_name) + fields[10]


def check_zip_form(bundle: Bundle) -> None:
    """Raise VerificationFailed unless the bundle's file is laid out exactly as EdgeGate writes bundles."""
    where = str(bundle.path)
    with open(bundle.path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        entries, cd_size, cd_offset = _end_record(fp, size, where)
        records = _central_records(fp, entries, cd_size, cd_offset, where)
        offset, previous = 0, None
        for fields, raw_name in records:
            if fields[18] != offset:
                fp.seek(offset)
                head = fp.read(_LOCAL.size)
                if head.startswith(b"PK\x03\x04") and len(head) == _LOCAL.size:
                    hidden = fp.read(_LOCAL.unpack(head)[10])
                    raise _fail(where, f"entry {hidden[:60].decode('utf-8', 'replace')!r} at offset {offset:,} has no "
                                       "central directory record (a hidden entry)")
                raise _fail(where, f"{abs(fields[18] - offset):,} unexplained bytes at offset {offset:,}")
            offset = _check_entry(fp, fields, raw_name, offset, where)
            if previous is not None and raw_name.decode("utf-8", "replace") <= previous:
                raise _fail(where, f"entry {raw_name.decode('utf-8', 'replace')!r} is out of order or repeated")
            previous = raw_name.decode("utf-8", "replace")
        if offset != cd_offset:
            fp.seek(offset)
            hidden = fp.read(4) == b"PK\x03\x04"
            raise _fail(where, f"a local entry at offset {offset:,} has no central directory record (a hidden entry)"
                        if hidden else f"{cd_offset - offset:,} unexplained bytes before the central directory")


def _is_canonical(data: bytes | None) -> bool:
    try:
        return data is not None and canonical_json(json.loads(data)) == data
    except (ValueError, TypeError, RecursionError):
        return False


def check_envelope_form(bundle: Bundle) -> None:
    """The envelope must be in the form EdgeGate wrote it, with standard, canonical base64, so no byte of it can
    change without the change being refused (base64 ignores some bits of its last character). The form follows
    the signed summary's: canonical JSON since issue 9; before that (a pretty-printed summary) the envelope
    was `json.dumps(indent=2, sort_keys=True)` and a line feed."""
    data = bundle.files.get(ENVELOPE)
    if data is None:
        return  # verify_bundle names it missing
    try:
        envelope = json.loads(data)
        values = [envelope["payload"], *(s["sig"] for s in envelope["signatures"])]
        canonical_b64 = all(base64.b64encode(base64.b64decode(v, validate=True)).decode("ascii") == v for v in values)
        if _is_canonical(bundle.files.get(SUMMARY)):
            canonical = canonical_json(envelope) == data
        else:
            canonical = (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode() == data
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        return  # verify_bundle reports the malformed envelope precisely
    if not (canonical and canonical_b64):
        raise VerificationFailed(f"{ENVELOPE}: not in EdgeGate's canonical form (canonical JSON, standard base64); "
                                 "its bytes were changed after signing")
