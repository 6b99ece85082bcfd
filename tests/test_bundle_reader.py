"""Bundle zips: deterministic writing, safe reading of hostile zips, and offline verification.

Hostile zips are real files in tmp_path, built with zipfile or, where zipfile refuses or would need
gigabytes, by writing the zip records byte by byte (the 1 GB+ entry is a repeated, self-contained
deflate block of zeros, so the test itself stays around a megabyte on disk and in memory).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from edgegate_cli.errors import InvalidInput, VerificationFailed
from edgegate_cli.evidence import dsse
from edgegate_cli.evidence.bundle_read import verify_bundle
from edgegate_cli.evidence.keys import signer_from_seed
from edgegate_cli.evidence.zip_safety import (
    ENVELOPE,
    MAX_ENTRY_BYTES,
    SUMMARY,
    open_bundle,
    write_deterministic_zip,
)

MIB = 1 << 20
SIGNER = signer_from_seed(bytes(range(32)))
OTHER = signer_from_seed(bytes(range(1, 33)))
TRUSTED = {SIGNER.key_id: (SIGNER.public_key, None)}
CREATED_AT = "2025-06-01T12:00:00Z"
FILES = {
    "pipeline.json": b'{"name": "detector-nightly", "backend": "local"}\n',
    "metrics.json": b'{"local:cpu": {"latency_ms": {"value": 4.2, "samples": 3}}}\n',
    "gates.json": b'[{"metric": "latency_ms", "status": "pass"}]\n',
    "raw/local-cpu/repeat-1.json": b'{"times_ms": [4.1, 4.2, 4.3]}\n',
    "report.md": b"# Verdict: pass\n",
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def statement(files: dict[str, bytes], **predicate) -> dict:
    return {"_type": dsse.IN_TOTO_STATEMENT_TYPE,
            "subject": [{"name": "model.onnx", "digest": {"sha256": "ab" * 32}}],
            "predicateType": dsse.EVIDENCE_PREDICATE_TYPE,
            "predicate": {"created_at": CREATED_AT, "verdict": "pass",
                          "files": {n: sha(b) for n, b in files.items()}, **predicate}}


def bundle_files(files=FILES, *, stmt=None, signer=SIGNER, payload_type=dsse.EVIDENCE_PAYLOAD_TYPE) -> dict:
    summary = json.dumps(stmt or statement(files), sort_keys=True).encode()
    envelope = dsse.sign_envelope(summary, payload_type, signer)
    return {**files, SUMMARY: summary, ENVELOPE: json.dumps(envelope).encode()}


def write_bundle(path: Path, contents: dict) -> Path:
    write_deterministic_zip(path, contents)
    return path


def verify_file(path: Path, trusted=TRUSTED):
    return verify_bundle(open_bundle(path), trusted)


def failure(path: Path, trusted=TRUSTED) -> str:
    with pytest.raises(VerificationFailed) as exc:
        verify_file(path, trusted)
    return exc.value.message


# ---------------------------------------------------------------- deterministic writing


def test_same_files_give_byte_identical_zips(tmp_path):
    """Sorted entries, fixed time and mode: insertion order doesn't change a byte."""
    contents = bundle_files()
    a = write_bundle(tmp_path / "a.zip", contents)
    b = write_bundle(tmp_path / "b.zip", dict(reversed(list(contents.items()))))
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(contents)
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert (info.create_system, info.external_attr >> 16) == (3, stat.S_IFREG | 0o644)
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.extra == b"" and info.comment == b""
    assert stat.S_IMODE(a.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "b.zip"]  # no temp file left


def test_writer_refuses_unsafe_names_and_writes_nothing(tmp_path):
    with pytest.raises(InvalidInput) as exc:
        write_deterministic_zip(tmp_path / "b.zip", {"ok.json": b"{}", "../evil": b"x"})
    assert exc.value.message == "bundle entry '../evil' escapes the bundle (..)"
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- verification


def test_valid_bundle_verifies(tmp_path):
    path = write_bundle(tmp_path / "b.zip", bundle_files())
    verified = verify_file(path)
    assert verified.key_id == SIGNER.key_id
    assert verified.signed_at == CREATED_AT
    assert verified.files == dict(sorted(FILES.items()))
    assert verified.statement["predicate"]["verdict"] == "pass"


@pytest.mark.parametrize("name", sorted(FILES))
def test_one_flipped_byte_in_a_listed_file_names_that_file(tmp_path, name):
    contents = bundle_files()
    original = contents[name]
    contents[name] = bytes([original[0] ^ 0x01]) + original[1:]
    path = write_bundle(tmp_path / "b.zip", contents)
    assert failure(path) == (f"{name}: content is {sha(contents[name])}, summary.json lists {sha(original)} "
                             "(modified after signing)")


def test_flipped_byte_in_summary_json(tmp_path):
    contents = bundle_files()
    contents[SUMMARY] = contents[SUMMARY].replace(b'"pass"', b'"fail"')
    assert failure(write_bundle(tmp_path / "b.zip", contents)) == \
        "summary.json: bytes differ from the payload signed in summary.dsse.json"


def test_flipped_byte_in_the_envelope(tmp_path):
    contents = bundle_files()
    contents[ENVELOPE] = b"[" + contents[ENVELOPE][1:]
    assert failure(write_bundle(tmp_path / "b.zip", contents)).startswith(
        "summary.dsse.json: not valid UTF-8 JSON (")
    contents = bundle_files()
    envelope = json.loads(contents[ENVELOPE])
    envelope["signatures"][0]["sig"] = ("B" if envelope["signatures"][0]["sig"][0] != "B" else "C") + \
        envelope["signatures"][0]["sig"][1:]
    contents[ENVELOPE] = json.dumps(envelope).encode()
    assert failure(write_bundle(tmp_path / "c.zip", contents)) == \
        f"summary.dsse.json: bad signature by key {SIGNER.key_id} (the payload or the signature was altered)"


def test_added_and_removed_files(tmp_path):
    added = {**bundle_files(), "extra.txt": b"hello"}
    assert failure(write_bundle(tmp_path / "a.zip", added)) == "extra.txt: not listed in summary.json (extra file)"
    removed = {k: v for k, v in bundle_files().items() if k != "metrics.json"}
    assert failure(write_bundle(tmp_path / "r.zip", removed)) == \
        "metrics.json: listed in summary.json but missing from the bundle"


@pytest.mark.parametrize("name", [SUMMARY, ENVELOPE])
def test_missing_summary_or_envelope(tmp_path, name):
    contents = {k: v for k, v in bundle_files().items() if k != name}
    assert failure(write_bundle(tmp_path / "b.zip", contents)) == f"{name}: missing from the bundle"


def test_signature_by_an_untrusted_key(tmp_path):
    path = write_bundle(tmp_path / "b.zip", bundle_files(signer=OTHER))
    assert failure(path) == f"summary.dsse.json: signature by untrusted key {OTHER.key_id}"


def test_a_revoked_key_fails_whatever_signing_time_it_claims(tmp_path):
    """The signing time is the signer's claim (issue 10, item 15): without a home's record of the bundle, a
    revoked key's signature fails even when the revocation is later than the claimed signing time."""
    path = write_bundle(tmp_path / "b.zip", bundle_files())
    for revoked_at in ("2025-06-01T11:59:59.000000Z", "2025-06-02T00:00:00.000000Z"):
        trusted = {SIGNER.key_id: (SIGNER.public_key, revoked_at)}
        assert failure(path, trusted) == (
            f"summary.dsse.json: key {SIGNER.key_id} was revoked at {revoked_at}; a revoked key's signatures are "
            "refused unless this home recorded the bundle before then (this home has no record of this bundle)")


def test_valid_signature_over_a_different_payload_type(tmp_path):
    path = write_bundle(tmp_path / "b.zip", bundle_files(payload_type=dsse.RELEASE_PAYLOAD_TYPE))
    assert failure(path) == ("summary.dsse.json: payloadType is application/vnd.edgegate.release+json, "
                             "expected application/vnd.in-toto+json")


def test_signed_statement_with_the_release_predicate_type(tmp_path):
    stmt = {**statement(FILES), "predicateType": dsse.RELEASE_PREDICATE_TYPE}
    path = write_bundle(tmp_path / "b.zip", bundle_files(stmt=stmt))
    assert failure(path) == ("summary.json: predicateType is 'https://edgegate.dev/release/v1', "
                             "expected https://edgegate.dev/evidence/v1")


@pytest.mark.parametrize("mutate, message", [
    (lambda s: {**s, "_type": "https://in-toto.io/Statement/v0.1"},
     "summary.json: _type is 'https://in-toto.io/Statement/v0.1', expected https://in-toto.io/Statement/v1"),
    (lambda s: {**s, "subject": []},
     "summary.json: subject must be a non-empty list of {name, digest: {sha256: <64 hex>}}"),
    (lambda s: {**s, "predicate": {**s["predicate"], "created_at": "yesterday"}},
     "summary.json: predicate.created_at (the signing time) is 'yesterday', not an ISO-8601 time with a zone "
     "(e.g. 2025-01-02T03:04:05Z)"),
    (lambda s: {**s, "predicate": {**s["predicate"], "files": None}},
     "summary.json: predicate.files is missing or not an object"),
    (lambda s: {**s, "predicate": {**s["predicate"], "files": {**s["predicate"]["files"], "summary.json": "x"}}},
     "summary.json: predicate.files lists 'summary.json', which cannot be a bundle file"),
    (lambda s: {**s, "predicate": {**s["predicate"], "files": {**s["predicate"]["files"], "report.md": "md5:1"}}},
     "summary.json: predicate.files['report.md'] is not 'sha256:<64 lowercase hex>'"),
])
def test_signed_but_malformed_statements(tmp_path, mutate, message):
    path = write_bundle(tmp_path / "b.zip", bundle_files(stmt=mutate(statement(FILES))))
    assert failure(path) == message


def test_signed_statement_with_a_duplicate_json_key(tmp_path):
    """Two parsers could disagree about which duplicate wins, so duplicates are refused outright."""
    summary = json.dumps(statement(FILES), sort_keys=True).encode()
    summary = summary[:-1] + b', "predicateType": "https://edgegate.dev/evidence/v1"}'
    contents = {**FILES, SUMMARY: summary,
                ENVELOPE: json.dumps(dsse.sign_envelope(summary, dsse.EVIDENCE_PAYLOAD_TYPE, SIGNER)).encode()}
    assert failure(write_bundle(tmp_path / "b.zip", contents)) == \
        "summary.json: not valid UTF-8 JSON (duplicate key 'predicateType')"


# ---------------------------------------------------------------- hostile zips


def tree(root: Path) -> list:
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def rejected(path: Path, tmp_path: Path, **limits) -> str:
    """Open a hostile zip: return the message; assert nothing was written and time/memory stay small."""
    before, outside = tree(tmp_path), sorted(os.listdir(tmp_path.parent))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(VerificationFailed) as exc:
            open_bundle(path, **limits)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"\n{path.name} ({path.stat().st_size:,} bytes): rejected in {elapsed * 1000:.1f} ms, "
          f"peak traced memory {peak / MIB:.2f} MiB")
    assert tree(tmp_path) == before and sorted(os.listdir(tmp_path.parent)) == outside
    assert elapsed < 5.0, f"took {elapsed:.2f} s"
    assert peak < 100 * MIB, f"peak {peak / MIB:.1f} MiB"
    return exc.value.message


def zip_with(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], **kwargs) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate names we want
        with zipfile.ZipFile(path, "w", **kwargs) as zf:
            for info, data in entries:
                zf.writestr(info, data)
    return path


@functools.cache
def zero_block() -> bytes:
    """Deflate of 1 MiB of zeros ending in a full flush: self-contained, so it can be repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)


@functools.cache
def crc_of_zeros(mebibytes: int) -> int:
    crc, chunk = 0, bytes(MIB)
    for _ in range(mebibytes):
        crc = zlib.crc32(chunk, crc)
    return crc


def raw_zip(path: Path, entries: list[dict], *, eocd_entries: int | None = None) -> Path:
    """Write zip records by hand. Each entry: name, parts [(bytes, times)], method, crc, file_size,
    and optionally flags and mode. Data is streamed, so a 1 GB+ entry costs its compressed size only."""
    central = []
    with open(path, "wb") as fp:
        for e in entries:
            name, offset = e["name"].encode(), fp.tell()
            csize = sum(len(b) * n for b, n in e["parts"])
            fields = (20, e.get("flags", 0), e["method"], 0, 33, e["crc"], csize, e["file_size"], len(name), 0)
            fp.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields) + name)
            for block, times in e["parts"]:
                for _ in range(times):
                    fp.write(block)
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x0314, *fields, 0, 0, 0,
                                       e.get("mode", 0o100644) << 16, offset) + name)
        start = fp.tell()
        fp.write(b"".join(central))
        count = len(entries) if eocd_entries is None else eocd_entries
        fp.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, fp.tell() - start, start, 0))
    return path


def zeros_entry(name: str, mebibytes: int, *, declared: int | None = None, crc: int | None = None) -> dict:
    return {"name": name, "parts": [(zero_block(), mebibytes), (b"\x03\x00", 1)], "method": 8,
            "crc": crc_of_zeros(mebibytes) if crc is None else crc,
            "file_size": mebibytes * MIB if declared is None else declared}


@pytest.mark.parametrize("name, reason", [
    ("../evil", "escapes the bundle (..)"),
    ("raw/../../evil", "escapes the bundle (..)"),
    ("/etc/x", "is an absolute path"),
    ("..\\evil", "contains a backslash"),
    ("C:/evil", "starts with a drive letter"),
    ("raw//x.json", "is not a normalized path (empty or . component)"),
    ("./x.json", "is not a normalized path (empty or . component)"),
    ("x\n.json", "contains a control character"),
])
def test_unsafe_entry_names_are_rejected(tmp_path, name, reason):
    path = zip_with(tmp_path / "slip.zip", [("ok.json", b"{}"), (zipfile.ZipInfo(name), b"pwned")])
    assert rejected(path, tmp_path) == f"{path}: entry {name!r} {reason}"
    assert not (tmp_path.parent / "evil").exists() and not Path("/etc/x").exists()


def test_symlink_entry_is_rejected(tmp_path):
    link = zipfile.ZipInfo("metrics.json")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = zip_with(tmp_path / "link.zip", [(link, b"/etc/passwd")])
    assert rejected(path, tmp_path) == f"{path}: entry 'metrics.json' is a symlink"


def test_fifo_entry_is_rejected(tmp_path):
    fifo = zipfile.ZipInfo("pipe")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    path = zip_with(tmp_path / "fifo.zip", [(fifo, b"")])
    assert rejected(path, tmp_path) == f"{path}: entry 'pipe' is not a regular file (mode 010644)"


def test_duplicate_names_are_rejected(tmp_path):
    path = zip_with(tmp_path / "dup.zip", [("metrics.json", b"{}"), ("report.md", b"#"), ("metrics.json", b"[]")])
    assert rejected(path, tmp_path) == f"{path}: entry 'metrics.json' appears more than once"


def test_entry_declared_past_1_gb_is_rejected_before_reading(tmp_path):
    """1,100 MiB of zeros (1.15 GB, about 1 MB compressed): refused from its header."""
    path = raw_zip(tmp_path / "bomb.zip", [zeros_entry("raw/bomb.bin", 1100)])
    assert path.stat().st_size < 2 * MIB
    assert rejected(path, tmp_path) == (f"{path}: entry 'raw/bomb.bin' expands to 1,153,433,600 bytes, over the "
                                        f"limit of {MAX_ENTRY_BYTES:,} bytes per entry")


def test_entry_whose_header_understates_a_1_gb_stream_is_cut_at_the_declared_size(tmp_path):
    """A lying header (1,000 bytes declared, 1.15 GB of deflate behind it) is read only to 1,000 bytes."""
    path = raw_zip(tmp_path / "liar.zip", [zeros_entry("raw/bomb.bin", 1100, declared=1000)])
    assert rejected(path, tmp_path) == f"{path}: entry 'raw/bomb.bin' is corrupt (Bad CRC-32 for file 'raw/bomb.bin')"
    honest_crc = raw_zip(tmp_path / "liar2.zip",
                         [zeros_entry("raw/bomb.bin", 1100, declared=1000, crc=zlib.crc32(bytes(1000)))])
    start = time.perf_counter()
    assert open_bundle(honest_crc).files == {"raw/bomb.bin": bytes(1000)}
    assert time.perf_counter() - start < 5.0


def test_compression_ratio_over_the_cap_is_rejected(tmp_path):
    """100 MiB of zeros fits the size caps, but at about 1,000:1 it is a bomb."""
    path = raw_zip(tmp_path / "ratio.zip", [zeros_entry("raw/zeros.bin", 100)])
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("raw/zeros.bin")
    ratio = info.file_size // info.compress_size
    assert ratio > 1000
    assert rejected(path, tmp_path) == (f"{path}: entry 'raw/zeros.bin' has a compression ratio of {ratio:,}:1, "
                                        "over the limit of 200:1")


def test_ten_thousand_entries_are_rejected(tmp_path):
    path = zip_with(tmp_path / "many.zip", [(f"raw/{i:05d}.json", b"{}") for i in range(10_000)])
    assert rejected(path, tmp_path) == f"{path}: has 10,000 entries, over the limit of 1,000"


def test_entry_count_understated_in_the_end_record_is_still_caught(tmp_path):
    """The end record claims 1 entry; the central directory holds 2,000."""
    entries = [{"name": f"{i:04d}", "parts": [(b"{}", 1)], "method": 0, "crc": zlib.crc32(b"{}"),
                "file_size": 2} for i in range(2000)]
    path = raw_zip(tmp_path / "liar-count.zip", entries, eocd_entries=1)
    assert rejected(path, tmp_path) == f"{path}: has 2,000 entries, over the limit of 1,000"


def test_oversized_central_directory_is_rejected_before_parsing(tmp_path):
    path = zip_with(tmp_path / "longnames.zip", [("a" * 1100, b""), ("b" * 1100, b"")])
    assert rejected(path, tmp_path, max_entries=2) == \
        f"{path}: central directory is 2,292 bytes, over the limit of 2,048"


def test_total_over_the_cap_is_rejected(tmp_path):
    path = zip_with(tmp_path / "total.zip", [(n, bytes(1000)) for n in "abc"])
    assert rejected(path, tmp_path, max_total_bytes=2500) == \
        f"{path}: entries expand to more than 2,500 bytes in total (limit reached at entry 'c')"


def test_encrypted_and_unknown_compression_are_rejected(tmp_path):
    enc = raw_zip(tmp_path / "enc.zip", [{"name": "secret.json", "parts": [(b"xx", 1)], "method": 0,
                                          "crc": 0, "file_size": 2, "flags": 1}])
    assert rejected(enc, tmp_path) == f"{enc}: entry 'secret.json' is encrypted"
    bz = zip_with(tmp_path / "bz.zip", [("metrics.json", b"{}")], compression=zipfile.ZIP_BZIP2)
    assert rejected(bz, tmp_path) == \
        f"{bz}: entry 'metrics.json' uses compression method 12 (only stored and deflate are accepted)"


def test_not_a_zip_and_empty_file(tmp_path):
    text = tmp_path / "bundle.zip"
    text.write_bytes(b"this is not a zip file\n" * 10)
    assert rejected(text, tmp_path) == f"{text}: not a zip file"
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    assert rejected(empty, tmp_path) == f"{empty}: not a zip file"


def test_truncated_zip(tmp_path):
    whole = write_bundle(tmp_path / "whole.zip", bundle_files()).read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole[: len(whole) // 2])
    assert rejected(cut, tmp_path) == f"{cut}: truncated zip (no end of central directory record)"


def test_corrupt_central_directory(tmp_path):
    data = bytearray(write_bundle(tmp_path / "whole.zip", bundle_files()).read_bytes())
    start = data.index(b"PK\x01\x02")
    data[start:start + 4] = b"XXXX"
    path = tmp_path / "cd.zip"
    path.write_bytes(bytes(data))
    assert rejected(path, tmp_path) == f"{path}: corrupt zip (Bad magic number for central directory)"


def test_corrupt_entry_data(tmp_path):
    path = zip_with(tmp_path / "crc.zip", [("metrics.json", b'{"latency_ms": 4.2}')])
    data = bytearray(path.read_bytes())
    data[data.index(b"latency")] ^= 0x20
    path.write_bytes(bytes(data))
    assert rejected(path, tmp_path) == f"{path}: entry 'metrics.json' is corrupt (Bad CRC-32 for file 'metrics.json')"


def test_missing_path_and_directory_are_unusable_arguments(tmp_path):
    for target, what in ((tmp_path / "nope.zip", "no such file"), (tmp_path, "is a directory, not a bundle file")):
        with pytest.raises(InvalidInput) as exc:
            open_bundle(target)
        assert exc.value.message == f"{target}: {what}"


def test_gigabyte_bombs_stay_small_in_a_fresh_process(tmp_path):
    """Whole-process peak RSS (interpreter included) while refusing both 1 GB+ bombs.

    Linux's VmHWM is read rather than ru_maxrss, which carries over the parent's peak across exec.
    """
    bomb = raw_zip(tmp_path / "bomb.zip", [zeros_entry("raw/bomb.bin", 1100)])
    liar = raw_zip(tmp_path / "liar.zip", [zeros_entry("raw/bomb.bin", 1100, declared=1000)])
    script = (
        "import resource, sys, time\n"
        "from edgegate_cli.evidence.zip_safety import open_bundle\n"
        "from edgegate_cli.errors import VerificationFailed\n"
        "for path in sys.argv[1:]:\n"
        "    start = time.perf_counter()\n"
        "    try:\n"
        "        open_bundle(path)\n"
        "    except VerificationFailed:\n"
        "        pass\n"
        "    else:\n"
        "        sys.exit(f'{path} was accepted')\n"
        "    print(f'{time.perf_counter() - start:.4f}')\n"
        "try:\n"
        "    hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0].split()[1]\n"
        "except OSError:\n"
        "    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == 'darwin' else 1)\n"
        "print(int(hwm) // 1024)\n"  # KiB -> MiB
    )
    result = subprocess.run([sys.executable, "-c", script, str(bomb), str(liar)], capture_output=True,
                            text=True, check=True, cwd=tmp_path)
    *times, rss_mib = result.stdout.split()
    print(f"\nfresh process: rejected in {', '.join(t + ' s' for t in times)}; peak RSS {rss_mib} MiB")
    assert all(float(t) < 5.0 for t in times)
    assert int(rss_mib) < 100


# ---------------------------------------------------------------- hash-only reading (what `verify` uses)


def test_contents_false_keeps_only_the_summary_and_hashes_the_rest(tmp_path):
    contents = bundle_files()
    path = tmp_path / "s.zip"
    write_deterministic_zip(path, contents, compression=zipfile.ZIP_STORED)
    bundle = open_bundle(path, contents=False)
    assert sorted(bundle.files) == [ENVELOPE, SUMMARY]
    assert bundle.digests == {n: hashlib.sha256(b).hexdigest() for n, b in contents.items()}
    verified = verify_bundle(bundle, TRUSTED)
    assert verified.files == {} and verified.key_id == SIGNER.key_id
    assert open_bundle(path).files == dict(sorted(contents.items()))  # contents=True: everything, CRC checked


def test_hash_only_read_of_a_flipped_stored_byte_names_the_file(tmp_path):
    path = tmp_path / "s.zip"
    write_deterministic_zip(path, bundle_files(), compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    data[data.index(b"4.2, 4.3")] ^= 0x01  # inside raw/local-cpu/repeat-1.json; the zip's CRC is left stale
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed) as exc:
        verify_bundle(open_bundle(path, contents=False), TRUSTED)
    assert exc.value.message.startswith("raw/local-cpu/repeat-1.json: content is sha256:")


def test_stored_entry_with_a_lying_local_header_or_past_the_end_is_rejected(tmp_path):
    path = zip_with(tmp_path / "name.zip", [("metrics.json", b"{}"), ("report.md", b"# ok\n")])
    data = bytearray(path.read_bytes())
    data[data.index(b"report.md")] = ord("R")  # the local header's copy of the name only
    (tmp_path / "name.zip").write_bytes(bytes(data))
    assert rejected(path, tmp_path, contents=False) == (
        f"{path}: entry 'report.md' is corrupt (its local header names 'Report.md')")
    short = zip_with(tmp_path / "short.zip", [("metrics.json", b"{}"), ("report.md", b"# ok\n")])
    data = bytearray(short.read_bytes())
    cd = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 1)  # the central record of report.md
    data[cd + 20:cd + 28] = struct.pack("<2L", 4000, 4000)  # compressed and uncompressed size
    short.write_bytes(bytes(data))
    assert rejected(short, tmp_path, contents=False) == f"{short}: entry 'report.md' is truncated"
