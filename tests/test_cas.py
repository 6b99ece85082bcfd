"""cas.py: blobs at sha256/<2>/<62>, written once through a temp file, verified without deleting."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from edgegate_cli.errors import CorruptBlob, ExitCode, InvalidInput, NotFound
from edgegate_cli.store.cas import CAS, tag, untag


def _files(directory):
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def test_same_bytes_twice_are_stored_once(tmp_path):
    """Two ingests of the same bytes give one read-only file at sha256/<2>/<62> and no leftover temp."""
    cas = CAS(tmp_path / "cas")
    data = b"the same model bytes\n"
    first = cas.put_bytes(data)
    second = cas.put_bytes(data)
    hexdigest = hashlib.sha256(data).hexdigest()
    assert first == second == (hexdigest, len(data))
    assert _files(cas.objects) == [tmp_path / "cas" / "sha256" / hexdigest[:2] / hexdigest[2:]]
    assert _files(cas.tmp) == []
    assert stat.S_IMODE(cas.path_of(hexdigest).stat().st_mode) == 0o444
    assert list(cas.iter_digests()) == [hexdigest]


def test_put_file_of_10_mb_round_trips(tmp_path):
    """A 10 MB file (not a whole number of chunks) hashes like hashlib and reads back byte for byte."""
    src = tmp_path / "model.onnx"
    data = os.urandom(10 * 1024 * 1024 + 12345)
    src.write_bytes(data)
    cas = CAS(tmp_path / "cas")
    hexdigest, size = cas.put_file(src)
    assert (hexdigest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert cas.read_bytes(tag(hexdigest), verify=True) == data
    cas.verify(hexdigest)  # returns without raising
    assert cas.total_bytes() == len(data)


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a second filesystem")
def test_put_file_across_filesystems_starts_over_the_portable_way(tmp_path):
    """copy_file_range between two filesystems is refused (EXDEV) by current kernels: the ingest starts
    over, hashing while writing, and stores the right bytes."""
    cas = CAS(tmp_path / "cas")
    for size in (1000, 3 * 1024 * 1024 + 1):
        data = os.urandom(size)
        fd, name = tempfile.mkstemp(dir="/dev/shm")
        try:
            os.write(fd, data)
            os.close(fd)
            if os.stat(name).st_dev == os.stat(tmp_path).st_dev:
                pytest.skip("/dev/shm is on the same filesystem here")
            assert cas.put_file(name) == (hashlib.sha256(data).hexdigest(), len(data))
            assert cas.path_of(hashlib.sha256(data).hexdigest()).read_bytes() == data
        finally:
            os.unlink(name)


def test_put_stream_handles_short_reads_from_a_pipe(tmp_path):
    """An unbuffered pipe delivers bytes in small pieces; all of them are stored, in order."""
    data = os.urandom(3 * 1024 * 1024 + 7)
    read_fd, write_fd = os.pipe()

    def feed():
        with os.fdopen(write_fd, "wb", buffering=0) as w:
            for i in range(0, len(data), 4096):
                w.write(data[i:i + 4096])

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(read_fd, "rb", buffering=0) as r:
        hexdigest, size = CAS(tmp_path / "cas").put_stream(r)
    feeder.join()
    assert (hexdigest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert CAS(tmp_path / "cas").read_bytes(hexdigest) == data


class _ReadOnlyStream:
    """A source with read() but no readinto(), handing out at most 1000 bytes at a time."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int) -> bytes:
        piece = self.data[self.pos:self.pos + min(n, 1000)]
        self.pos += len(piece)
        return piece


def test_put_stream_accepts_a_source_without_readinto(tmp_path):
    """A plain read()-only source is stored whole, whatever the size of its pieces."""
    data = os.urandom(2 * 1024 * 1024 + 3)
    cas = CAS(tmp_path / "cas")
    assert cas.put_stream(_ReadOnlyStream(data)) == (hashlib.sha256(data).hexdigest(), len(data))
    assert cas.read_bytes(hashlib.sha256(data).hexdigest()) == data


def test_put_file_of_a_missing_path_is_invalid_input(tmp_path):
    """A missing source names the path; nothing is left in the store."""
    cas = CAS(tmp_path / "cas")
    with pytest.raises(InvalidInput) as info:
        cas.put_file(tmp_path / "nope.onnx")
    assert info.value.message == f"{tmp_path / 'nope.onnx'}: no such file"
    assert _files(cas.root) == []


KILLED_WRITER = textwrap.dedent("""
    import sys
    from edgegate_cli.store.cas import CAS
    CAS(sys.argv[1]).put_stream(sys.stdin.buffer)
    print("finished")
""")


def test_a_writer_killed_half_way_leaves_no_blob_under_a_final_name(tmp_path):
    """SIGKILL during a streamed ingest leaves at most a partial temp file in cas/tmp, never a blob."""
    root = tmp_path / "cas"
    with subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        chunk = os.urandom(1024 * 1024)
        for _ in range(8):  # the pipe stays open, so the writer waits for more mid-stream
            proc.stdin.write(chunk)
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size >= 4 * 1024 * 1024 for p in _files(root / "tmp")):
            assert time.monotonic() < deadline, "the writer never got half-way"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert proc.stdout.read() == b""
    assert _files(root / "sha256") == []
    leftovers = _files(root / "tmp")
    assert len(leftovers) == 1 and leftovers[0].name.startswith("ingest-")
    assert 4 * 1024 * 1024 <= leftovers[0].stat().st_size <= 8 * 1024 * 1024
    assert list(CAS(root).iter_digests()) == []


def _corrupt(cas: CAS, hexdigest: str, data: bytes) -> None:
    path = cas.path_of(hexdigest)
    path.chmod(0o644)
    path.write_bytes(data)


def test_verify_reports_wrong_bytes_and_keeps_the_blob(tmp_path):
    """Same-size wrong bytes under a digest: CorruptBlob names path, expected and actual; the blob stays."""
    cas = CAS(tmp_path / "cas")
    hexdigest, _ = cas.put_bytes(b"original bytes")
    _corrupt(cas, hexdigest, b"tampered bytes")
    actual = hashlib.sha256(b"tampered bytes").hexdigest()
    path = cas.path_of(hexdigest)
    with pytest.raises(CorruptBlob) as info:
        cas.verify(tag(hexdigest))
    err = info.value
    assert (err.path, err.expected, err.actual) == (str(path), hexdigest, actual)
    assert err.message == f"{path}: content hash is sha256:{actual}, expected sha256:{hexdigest}"
    assert (err.code, err.exit_code) == ("CORRUPT_BLOB", ExitCode.GATES_FAILED)
    assert path.read_bytes() == b"tampered bytes"  # evidence is reported, never deleted


def test_read_bytes_with_verify_reports_wrong_bytes_and_keeps_the_blob(tmp_path):
    """read_bytes(verify=True) raises the same CorruptBlob; without verify it returns what is on disk."""
    cas = CAS(tmp_path / "cas")
    hexdigest, _ = cas.put_bytes(b"original bytes")
    _corrupt(cas, hexdigest, b"tampered bytes")
    with pytest.raises(CorruptBlob) as info:
        cas.read_bytes(hexdigest, verify=True)
    assert info.value.message == (f"{cas.path_of(hexdigest)}: content hash is "
                                  f"sha256:{hashlib.sha256(b'tampered bytes').hexdigest()}, "
                                  f"expected sha256:{hexdigest}")
    assert cas.read_bytes(hexdigest) == b"tampered bytes"
    assert cas.exists(hexdigest)


def test_reingesting_repairs_a_blob_of_the_wrong_size(tmp_path):
    """A truncated blob is replaced by the verified bytes when the original is ingested again."""
    cas = CAS(tmp_path / "cas")
    data = os.urandom(5000)
    hexdigest, _ = cas.put_bytes(data)
    _corrupt(cas, hexdigest, data[:100])
    assert cas.put_bytes(data) == (hexdigest, len(data))
    cas.verify(hexdigest)
    assert stat.S_IMODE(cas.path_of(hexdigest).stat().st_mode) == 0o444


def test_missing_blob_is_not_found(tmp_path):
    """Reading or verifying a digest that is not stored names the digest and the store."""
    cas = CAS(tmp_path / "cas")
    digest = tag("0" * 64)
    expected = f"blob {digest} is not in the store at {tmp_path / 'cas'}"
    for call in (lambda: cas.read_bytes(digest), lambda: cas.verify(digest)):
        with pytest.raises(NotFound) as info:
            call()
        assert info.value.message == expected
        assert info.value.hint == "it may have been garbage-collected; re-run to recreate it"


@pytest.mark.parametrize("bad", ["abc", "sha256:" + "A" * 64, "md5:" + "a" * 64, "a" * 63, "sha256:" + "g" * 64,
                                 ""])
def test_untag_rejects_malformed_digests(bad):
    """Anything but 64 lowercase hex, optionally tagged, is refused with the exact message."""
    with pytest.raises(InvalidInput) as info:
        untag(bad)
    assert info.value.message == f"{bad!r} is not a sha256 digest (expected sha256:<64 lowercase hex>)"
    assert info.value.exit_code == ExitCode.INVALID_INPUT


def test_untag_accepts_tagged_and_bare_forms():
    """`sha256:<hex>` and `<hex>` name the same blob; tag() adds the prefix back."""
    hexdigest = "0123456789abcdef" * 4
    assert untag(tag(hexdigest)) == untag(hexdigest) == hexdigest
    assert tag(hexdigest) == "sha256:" + hexdigest


def test_iter_digests_skips_files_not_named_like_blobs(tmp_path):
    """Stray files in sha256/ are not blobs; iter_digests and remove see only real ones."""
    cas = CAS(tmp_path / "cas")
    hexdigest, size = cas.put_bytes(b"blob")
    (cas.objects / hexdigest[:2] / "README").write_text("stray")
    (cas.objects / "zz").mkdir()
    assert list(cas.iter_digests()) == [hexdigest]
    assert cas.remove(hexdigest) == size
    assert cas.remove(hexdigest) == 0
    assert list(cas.iter_digests()) == []
