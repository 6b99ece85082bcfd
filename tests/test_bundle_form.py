"""Issue 10, items 17-19: a bundle is exactly the bytes EdgeGate writes. Structural tampering that leaves every
hashed entry intact fails `verify` with its own message; hostile summaries never crash `bundle show`; and
nothing read from a bundle reaches the terminal with its control characters."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib

import pytest
from bundle_evidence import entries, resign, rewrite


def error_of(result) -> str:
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_prepended_script_fails(invoke, ev, tmp_path):
    """`cat script b.zip > x.zip` still unzips (and `sh x.zip` runs the script): not a bundle."""
    script = b"#!/bin/sh\necho pwned\nexit 0\n"
    bad = tmp_path / "x.zip"
    bad.write_bytes(script + ev.pass_zip.read_bytes())
    assert zipfile.ZipFile(bad).testzip() is None  # zip readers accept it
    assert error_of(invoke("verify", bad, expect=1)) == (
        f"Error [VERIFICATION_FAILED]: {bad}: {len(script)} bytes precede the zip (something was prepended) "
        "(a bundle is exactly the zip EdgeGate writes)\n")


def test_appended_bytes_fail(invoke, ev, tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(ev.pass_zip.read_bytes() + b"\x00trailer")
    assert error_of(invoke("verify", bad, expect=1)) == (
        f"Error [VERIFICATION_FAILED]: {bad}: 8 bytes follow the end of the zip (a bundle is exactly the zip "
        "EdgeGate writes)\n")


def _hidden_entry(src, dst):
    """Insert a local entry (header + data) that no central directory record names, fixing the offsets."""
    data = src.read_bytes()
    hidden_data = b"#!/bin/sh\necho hidden\n"
    name = b"hidden.sh"
    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 33, zlib.crc32(hidden_data),
                        len(hidden_data), len(hidden_data), len(name), 0) + name + hidden_data
    eocd = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<2L", data, eocd + 12)
    out = bytearray(data[:cd_offset] + local + data[cd_offset:])
    struct.pack_into("<L", out, eocd + len(local) + 16, cd_offset + len(local))
    dst.write_bytes(bytes(out))
    return dst, cd_offset


def test_an_entry_without_a_directory_record_fails(invoke, ev, tmp_path):
    bad, at = _hidden_entry(ev.pass_zip, tmp_path / "x.zip")
    assert [i.filename for i in zipfile.ZipFile(bad).infolist()] == sorted(entries(ev.pass_zip))  # invisible
    assert error_of(invoke("verify", bad, expect=1)) == (
        f"Error [VERIFICATION_FAILED]: {bad}: a local entry at offset {at:,} has no central directory record (a "
        "hidden entry) (a bundle is exactly the zip EdgeGate writes)\n")


def test_a_local_header_that_disagrees_with_the_directory_fails(invoke, ev, tmp_path):
    """The local header of the first entry claims another date; its data and hashes are untouched."""
    data = bytearray(ev.pass_zip.read_bytes())
    struct.pack_into("<H", data, 12, 0x4A21)  # local header date field of the first entry
    bad = tmp_path / "x.zip"
    bad.write_bytes(bytes(data))
    first = sorted(entries(ev.pass_zip))[0]
    assert error_of(invoke("verify", bad, expect=1)) == (
        f"Error [VERIFICATION_FAILED]: {bad}: entry {first!r}: its local header and directory record disagree on "
        "the date (18977 and 33) (a bundle is exactly the zip EdgeGate writes)\n")


def test_a_wrong_crc_fails_even_when_the_data_is_intact(invoke, ev, tmp_path):
    """Both CRC-32 fields of report.md changed consistently; its bytes (and so its sha256) are the original."""
    data = bytearray(ev.pass_zip.read_bytes())
    with zipfile.ZipFile(ev.pass_zip) as zf:
        info = zf.getinfo("report.md")
    wrong = (info.CRC ^ 1).to_bytes(4, "little")
    data[info.header_offset + 14:info.header_offset + 18] = wrong  # local header CRC-32
    record = data.index(b"PK\x01\x02")
    while struct.unpack_from("<L", data, record + 42)[0] != info.header_offset:  # this entry's directory record
        record = data.index(b"PK\x01\x02", record + 4)
    data[record + 16:record + 20] = wrong
    bad = tmp_path / "x.zip"
    bad.write_bytes(bytes(data))
    assert error_of(invoke("verify", bad, expect=1)) == (
        f"Error [VERIFICATION_FAILED]: {bad}: entry 'report.md' is corrupt (Bad CRC-32 for file 'report.md')\n")


def test_a_non_canonical_envelope_fails(invoke, ev, tmp_path):
    """Re-serialising the envelope with spaces keeps its meaning and signature: still not EdgeGate's bytes."""
    envelope = json.loads(entries(ev.pass_zip)["summary.dsse.json"])
    bad = rewrite(ev.pass_zip, tmp_path / "x.zip", {"summary.dsse.json": json.dumps(envelope).encode()})
    assert error_of(invoke("verify", bad, expect=1)) == (
        "Error [VERIFICATION_FAILED]: summary.dsse.json: not in EdgeGate's canonical form (canonical JSON, "
        "standard base64); its bytes were changed after signing\n")


def test_zip_version_needed_14_8_is_refused_not_a_crash(invoke, ev, tmp_path):
    """`version needed to extract` 14.8 made zipfile raise NotImplementedError (exit 4) in verify and show."""
    data = bytearray(ev.pass_zip.read_bytes())
    cd = data.index(b"PK\x01\x02")
    data[cd + 6] = 148  # version needed, first central directory record
    bad = tmp_path / "x.zip"
    bad.write_bytes(bytes(data))
    message = f"{bad}: unsupported zip (zip file version 14.8)"
    assert error_of(invoke("verify", bad, expect=1)) == f"Error [VERIFICATION_FAILED]: {message}\n"
    assert error_of(invoke("bundle", "show", bad, expect=2)) == (
        f"Error [INVALID_INPUT]: {message} (`edgegate verify` says whether a bundle can be trusted)\n")


def _with_summary(ev, tmp_path, summary: bytes):
    return rewrite(ev.pass_zip, tmp_path / "x.zip", {"summary.json": summary})


def test_bundle_show_of_hostile_summaries_is_exit_2_or_shown_as_text(invoke, ev, tmp_path):
    summary = json.loads(entries(ev.pass_zip)["summary.json"])
    summary["predicate"]["run_id"] = 5
    shown = invoke("bundle", "show", _with_summary(ev, tmp_path, json.dumps(summary).encode())).stdout
    assert "  run: 5 of quickstart on local" in shown
    for depth in (2_000, 100_000):
        deep = b'{"predicate": ' + b"[" * depth + b"]" * depth + b"}"
        result = invoke("bundle", "show", _with_summary(ev, tmp_path, deep), expect=2)
        assert error_of(result) in (
            f"Error [INVALID_INPUT]: {tmp_path / 'x.zip'}: summary.json has no predicate object; this is not an "
            "EdgeGate summary\n",  # json parsed it (its C parser's limit is the stack's)
            f"Error [INVALID_INPUT]: {tmp_path / 'x.zip'}: summary.json: not valid UTF-8 JSON (maximum recursion "
            "depth exceeded while decoding a JSON array from a unicode string) (`edgegate verify` says whether a "
            "bundle can be trusted)\n")


def test_terminal_escapes_from_a_bundle_are_shown_escaped(invoke, ev, tmp_path):
    """A `pipeline` field that clears the screen and prints a green VALID reaches the terminal as text."""
    summary = json.loads(entries(ev.pass_zip)["summary.json"])
    summary["predicate"]["pipeline"] = "\x1b[2J\x1b[32mVALID\x1b[0m\nVALID: forged"
    shown = invoke("bundle", "show", _with_summary(ev, tmp_path, json.dumps(summary).encode())).stdout
    assert "\x1b" not in shown
    assert "of \\x1b[2J\\x1b[32mVALID\\x1b[0m\\x0aVALID: forged on local" in shown
    assert not any(line.startswith("VALID") for line in shown.splitlines())


@pytest.mark.parametrize("offset", [0, 5, 30, 200, -1, -10, -30])
def test_every_single_byte_change_is_refused(invoke, ev, tmp_path, offset):
    """A flipped byte anywhere (headers, names, data, directory, end record): never accepted."""
    data = bytearray(ev.pass_zip.read_bytes())
    data[offset] ^= 0x20
    bad = tmp_path / "x.zip"
    bad.write_bytes(bytes(data))
    result = invoke("verify", bad, expect=None)
    assert result.exit_code in (1, 2), result.stderr


def test_resigned_bundle_with_the_home_key_still_verifies(invoke, ev, tmp_path):
    """The form checks do not refuse what EdgeGate itself writes (`bundles.seal` through the zip writer)."""
    from bundle_evidence import home_signer

    again = resign(ev.pass_zip, tmp_path / "again.zip", home_signer(ev.home))
    assert invoke("verify", again).stdout.startswith("VALID: ")
