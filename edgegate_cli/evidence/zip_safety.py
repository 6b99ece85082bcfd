"""Reading zips that may be hostile, and writing deterministic ones (SPEC §7): the file layer of
evidence bundles. `open_bundle` never extracts anything to disk. It checks the zip's metadata first
(entry count, central directory size, names, types, sizes, compression ratios) and only then streams
each member into memory, 1 MiB at a time, never past the member's declared size, hashing it on the
way (with `contents=False` only the summary and its envelope are kept; the rest is hashed and
dropped, which is all `verify` needs). Limits (documented, fixed):

| limit | default | why |
|---|---|---|
| entries | 1,000 | a bundle holds ≤ 5 devices × 6 repeats of raw payloads plus a few documents |
| bytes per entry | 512 MiB | room for a 500 MB model (`--include-model`) |
| bytes in total | 1 GiB | the whole bundle is read into memory |
| compression ratio | 200:1 | checked for entries over 1 MiB; JSON compresses ≈ 5-20:1, zeros ≈ 1000:1 |
| central directory | 1 KiB × entries | parsed only after this check, so a huge directory can't cost time |

What the entries mean (the signed statement, the files it lists) is `bundle_reader.py`'s business.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput, VerificationFailed
from ..files import kind_of, stat_path

MIB = 1 << 20
MAX_ENTRIES = 1000
MAX_ENTRY_BYTES = 512 * MIB
MAX_TOTAL_BYTES = 1024 * MIB
MAX_RATIO = 200
RATIO_FLOOR_BYTES = MIB
CENTRAL_DIRECTORY_BYTES_PER_ENTRY = 1024
SUMMARY = "summary.json"
ENVELOPE = "summary.dsse.json"
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_FILE_MODE = 0o644
ZIP_COMPRESSLEVEL = 9
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # signature ... file name length, extra field length


@dataclass(frozen=True)
class Bundle:
    path: Path
    files: dict[str, bytes]  # every entry read into memory, in zip order (all, unless contents=False)
    digests: dict[str, str] | None = None  # every entry's sha256 hex, computed while reading
    bad_crc: tuple[str, ...] = ()  # hash-only entries whose CRC-32 is wrong (`crc_problem` reports them)


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` is not acceptable as a bundle entry name, or None when it is."""
    if not name:
        return "has an empty name"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "contains a control character"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if re.match(r"^[A-Za-z]:", name):
        return "starts with a drive letter"
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    if ".." in parts:
        return "escapes the bundle (..)"
    if "" in parts or "." in parts:
        return "is not a normalized path (empty or . component)"
    return None


def _zip_counts(fp, size: int, where: str) -> tuple[int, int]:
    """(entries, central directory bytes) from the end records, read before zipfile parses anything."""
    tail_len = min(size, _EOCD.size + 0xFFFF)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) - pos < _EOCD.size:
        fp.seek(0)
        if fp.read(4) == b"PK\x03\x04":
            raise VerificationFailed(f"{where}: truncated zip (no end of central directory record)")
        raise VerificationFailed(f"{where}: not a zip file")
    _, _, _, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    if entries == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
        locator = tail[pos - _ZIP64_LOCATOR.size:pos] if pos >= _ZIP64_LOCATOR.size else b""
        if not locator.startswith(b"PK\x06\x07"):
            raise VerificationFailed(f"{where}: corrupt zip (missing zip64 end of central directory locator)")
        fp.seek(_ZIP64_LOCATOR.unpack(locator)[2])
        record = fp.read(_ZIP64_EOCD.size)
        if len(record) < _ZIP64_EOCD.size or not record.startswith(b"PK\x06\x06"):
            raise VerificationFailed(f"{where}: corrupt zip (bad zip64 end of central directory record)")
        entries, cd_size = _ZIP64_EOCD.unpack(record)[6:8]
    return entries, cd_size


def _entry_problem(info: zipfile.ZipInfo, max_entry_bytes: int, max_ratio: int) -> str | None:
    reason = unsafe_name_reason(info.filename)
    if reason:
        return reason
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symlink"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"is not a regular file (mode {info.external_attr >> 16:06o})"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.extract_version > zipfile.MAX_EXTRACT_VERSION:
        return f"needs zip version {info.extract_version / 10:.1f} to extract (at most 6.3 is read)"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"uses compression method {info.compress_type} (only stored and deflate are accepted)"
    if info.file_size > max_entry_bytes:
        return f"expands to {info.file_size:,} bytes, over the limit of {max_entry_bytes:,} bytes per entry"
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        return "declares a stored size different from its compressed size"
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > max_ratio * info.compress_size:
        ratio = info.file_size // max(info.compress_size, 1)
        return f"has a compression ratio of {ratio:,}:1, over the limit of {max_ratio}:1"
    return None


def _check_infos(infos: list[zipfile.ZipInfo], where: str, max_entry_bytes: int, max_total_bytes: int,
                 max_ratio: int) -> None:
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        problem = _entry_problem(info, max_entry_bytes, max_ratio)
        if problem is None and name in seen:
            problem = "appears more than once"
        if problem:
            raise VerificationFailed(f"{where}: entry {name!r} {problem}")
        seen.add(name)
        total += info.file_size
        if total > max_total_bytes:
            raise VerificationFailed(f"{where}: entries expand to more than {max_total_bytes:,} bytes in "
                                     f"total (limit reached at entry {name!r})")


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, keep: bool) -> tuple[str, bytes | None]:
    """(sha256 hex, bytes or None) of a deflated entry, inflated 1 MiB at a time (CRC-32 checked by
    zipfile) and never past its declared size."""
    chunks, got, h = [], 0, hashlib.sha256()
    try:
        with zf.open(info) as member:
            while chunk := member.read(MIB):
                got += len(chunk)
                if got > info.file_size:
                    raise VerificationFailed(f"{where}: entry {info.filename!r} expands past its declared "
                                             f"size of {info.file_size:,} bytes")
                h.update(chunk)
                if keep:
                    chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise VerificationFailed(f"{where}: entry {info.filename!r} is corrupt ({exc})") from None
    return h.hexdigest(), b"".join(chunks) if keep else None


def _read_stored(fp, info: zipfile.ZipInfo, where: str, keep: bool, buf: bytearray) -> tuple[str, bytes | None]:
    """(sha256 hex, bytes or None) of a stored entry, read straight from the file after checking its
    local header. Kept bytes are CRC-32 checked at once; for hash-only reads the CRC-32 is computed too and
    a mismatch returned as False in place of the bytes (verify first names the file whose sha256 changed,
    then refuses a wrong CRC-32 even where the data is intact: see `crc_problem`)."""
    name = info.filename
    fp.seek(info.header_offset)
    header = fp.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or not header.startswith(b"PK\x03\x04"):
        raise VerificationFailed(f"{where}: entry {name!r} is corrupt (bad local file header)")
    flags, name_len, extra_len = (_LOCAL_HEADER.unpack(header)[i] for i in (3, 10, 11))
    local_name = fp.read(name_len).decode("utf-8" if flags & 0x800 else "cp437", "replace")
    if local_name != info.orig_filename:
        raise VerificationFailed(f"{where}: entry {name!r} is corrupt (its local header names {local_name!r})")
    fp.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
    if keep:
        data = fp.read(info.file_size)
        if len(data) < info.file_size:
            raise VerificationFailed(f"{where}: entry {name!r} is truncated")
        if zlib.crc32(data) != info.CRC:
            raise VerificationFailed(f"{where}: entry {name!r} is corrupt (Bad CRC-32 for file {name!r})")
        return hashlib.sha256(data).hexdigest(), data
    h, view, left, crc = hashlib.sha256(), memoryview(buf), info.file_size, 0
    while left:
        n = fp.readinto(view[:min(left, len(buf))])
        if not n:
            raise VerificationFailed(f"{where}: entry {name!r} is truncated")
        h.update(view[:n])
        crc = zlib.crc32(view[:n], crc)
        left -= n
    return h.hexdigest(), None if crc == info.CRC else False


def open_bundle(path: Path | str, *, contents: bool = True, max_entries: int = MAX_ENTRIES,
                max_entry_bytes: int = MAX_ENTRY_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                max_ratio: int = MAX_RATIO) -> Bundle:
    """Read a bundle zip into memory after checking it is safe; nothing is written anywhere.

    Returns a Bundle with every entry's sha256 and bytes; with contents=False only summary.json and
    summary.dsse.json are kept in memory, the rest streamed through a 1 MiB buffer and hashed (what
    `verify` needs, at the cost of one hashing pass). Raises InvalidInput when `path` is not a readable file,
    and VerificationFailed, naming the zip and the entry, for: not a zip, truncated or corrupt zip,
    too many entries, an oversized central directory, unsafe names (`..`, absolute, backslash, drive
    letter), symlinks and other non-regular entries, encrypted entries, unknown compression, duplicate
    names, an entry over the size cap (declared, or while streaming), a ratio over the cap, a total over the cap.
    """
    path = Path(path)
    where = str(path)
    st = stat_path(path)
    if st is None:
        raise InvalidInput(f"{where}: no such file")
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"{where}: is {kind_of(st.st_mode)}, not a bundle file")
    try:
        with open(path, "rb") as fp:
            entries, cd_size = _zip_counts(fp, os.fstat(fp.fileno()).st_size, where)
            if entries > max_entries:
                raise VerificationFailed(f"{where}: has {entries:,} entries, over the limit of {max_entries:,}")
            if cd_size > max_entries * CENTRAL_DIRECTORY_BYTES_PER_ENTRY:
                raise VerificationFailed(f"{where}: central directory is {cd_size:,} bytes, over the limit of "
                                         f"{max_entries * CENTRAL_DIRECTORY_BYTES_PER_ENTRY:,}")
            fp.seek(0)
            try:
                zf = zipfile.ZipFile(fp)
            except (zipfile.BadZipFile, EOFError) as exc:
                raise VerificationFailed(f"{where}: corrupt zip ({exc})") from None
            except NotImplementedError as exc:  # "zip file version 14.8": a version zipfile cannot read
                raise VerificationFailed(f"{where}: unsupported zip ({exc})") from None
            with zf:
                infos = zf.infolist()
                if len(infos) > max_entries:
                    raise VerificationFailed(f"{where}: has {len(infos):,} entries, over the limit of "
                                             f"{max_entries:,}")
                _check_infos(infos, where, max_entry_bytes, max_total_bytes, max_ratio)
                return _read_all(fp, zf, infos, where, contents)
    except OSError as exc:
        raise InvalidInput(f"{where}: cannot read ({exc.strerror or exc})") from None


def _read_all(fp, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], where: str, contents: bool) -> Bundle:
    files, digests, buf, bad_crc = {}, {}, bytearray(MIB), []
    for info in infos:
        keep = contents or info.filename in (SUMMARY, ENVELOPE)
        if info.compress_type == zipfile.ZIP_STORED:
            digest, data = _read_stored(fp, info, where, keep, buf)
        else:
            digest, data = _read_entry(zf, info, where, keep)
        digests[info.filename] = digest
        if data is False:
            bad_crc.append(info.filename)
        elif keep:
            files[info.filename] = data
    return Bundle(path=Path(where), files=files, digests=digests, bad_crc=tuple(bad_crc))


def crc_problem(bundle: Bundle) -> VerificationFailed | None:
    """The error for the first entry whose CRC-32 was wrong (hash-only reads), or None."""
    if not bundle.bad_crc:
        return None
    name = bundle.bad_crc[0]
    return VerificationFailed(f"{bundle.path}: entry {name!r} is corrupt (Bad CRC-32 for file {name!r})")


def write_deterministic_zip(path: Path | str, files: dict[str, bytes], *,
                            compression: int = zipfile.ZIP_DEFLATED) -> None:
    """Write `files` as a zip whose bytes depend only on `files`: entries sorted by name, each dated
    1980-01-01 00:00:00, mode 0644 (create_system 3, Unix), deflated at level 9 (or stored, with
    `compression=zipfile.ZIP_STORED`), no comment.

    The same input gives byte-identical output with the same zlib. The file appears atomically
    (temp file in the same directory, then rename). Raises InvalidInput for an unsafe entry name.
    """
    for name in files:
        reason = unsafe_name_reason(name)
        if reason:
            raise InvalidInput(f"bundle entry {name!r} {reason}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fp, zipfile.ZipFile(fp, "w") as zf:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
                info.create_system = 3
                info.external_attr = (stat.S_IFREG | ZIP_FILE_MODE) << 16
                zf.writestr(info, files[name], compress_type=compression,
                            compresslevel=ZIP_COMPRESSLEVEL if compression == zipfile.ZIP_DEFLATED else None)
        os.chmod(tmp, ZIP_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
