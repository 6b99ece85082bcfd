"""`edgegate gc`, `edgegate cas verify` and `edgegate cas ls` through the CLI, on a real home."""

from __future__ import annotations

import hashlib
import json
import os
import time

from edgegate_cli.errors import ExitCode
from edgegate_cli.store.artifacts import add_ref, store_bytes
from edgegate_cli.store.cas import tag
from edgegate_cli.store.workspace import open_workspace


def _expired(ws, data: bytes, name: str) -> str:
    hexdigest = store_bytes(ws.db, ws.cas, data, "raw_payload", name)
    ws.db["artifacts"].update(hexdigest, {"expires_at": "2000-01-01T00:00:00.000000Z"})
    return hexdigest


def test_gc_dry_run_then_gc(invoke):
    """--dry-run --json reports what would go; plain gc removes it and says how many bytes it freed."""
    ws = open_workspace()
    gone = _expired(ws, b"expired payload", "old.json")
    kept = _expired(ws, b"kept by a bundle", "kept.json")
    add_ref(ws.db, kept, "bundle", "b-1")
    untracked, _ = ws.cas.put_bytes(b"untracked")
    old = time.time() - 2 * 86400
    os.utime(ws.cas.path_of(untracked), (old, old))

    dry = json.loads(invoke("gc", "--dry-run", "--json").stdout)
    assert dry == {"dry_run": True, "bytes_freed": 24, "kept_referenced": 1, "removed": [
        {"sha256": tag(gone), "bytes": 15, "kind": "raw_payload", "original_name": "old.json", "reason": "expired"},
        {"sha256": tag(untracked), "bytes": 9, "kind": None, "original_name": None, "reason": "untracked"}]}
    assert ws.cas.exists(gone)
    assert invoke("gc", "--dry-run").stdout.splitlines()[-1] == (
        "Would free 24 bytes (2 would be removed; 1 expired but still referenced)")
    assert ws.cas.exists(gone) and ws.cas.exists(untracked)

    result = invoke("gc")
    assert result.stdout.splitlines()[-1] == "Freed 24 bytes (2 removed; 1 expired but still referenced)"
    assert [line for line in result.stdout.splitlines() if gone[:12] in line] == [
        f"{gone[:12]}\texpired\traw_payload\t15\told.json"]
    assert result.stderr == ""
    assert list(ws.cas.iter_digests()) == [kept]
    assert invoke("gc").stdout == "Freed 0 bytes (0 removed; 1 expired but still referenced)\n"


def test_cas_verify_passes_on_an_intact_store(invoke):
    """Every blob intact: exit 0, a one-line summary, or the report under --json."""
    ws = open_workspace()
    store_bytes(ws.db, ws.cas, b"one", "k")
    store_bytes(ws.db, ws.cas, b"two", "k")
    assert invoke("cas", "verify").stdout == "2 blobs verified, all intact\n"
    assert json.loads(invoke("cas", "verify", "--json").stdout) == {"checked": 2, "ok": True, "corrupt": [],
                                                                    "missing": []}


def test_cas_verify_lists_every_corrupt_blob_and_exits_1(invoke):
    """Two tampered blobs and one missing: all listed, exit 1, one error line; the blobs stay on disk."""
    ws = open_workspace()
    bad = sorted(store_bytes(ws.db, ws.cas, data, "k") for data in (b"first", b"second"))
    missing = store_bytes(ws.db, ws.cas, b"third", "k")
    store_bytes(ws.db, ws.cas, b"fine", "k")
    ws.cas.remove(missing)
    for hexdigest in bad:
        ws.cas.path_of(hexdigest).chmod(0o644)
        ws.cas.path_of(hexdigest).write_bytes(b"tampered")
    error = ("Error [VERIFICATION_FAILED]: 3 of 4 blobs failed verification (2 corrupt, 1 missing) "
             "(the listed blobs were altered or removed on disk; re-ingest the original files)\n")

    result = invoke("cas", "verify", expect=ExitCode.GATES_FAILED)
    assert result.stderr == error
    lines = result.stdout.splitlines()
    assert [line for line in lines if not line.startswith("  ")] == [
        f"corrupt {tag(bad[0])}", f"corrupt {tag(bad[1])}", f"missing {tag(missing)}"]
    assert lines.count(f"  hashes to {tag(hashlib.sha256(b'tampered').hexdigest())}") == 2

    result = invoke("cas", "verify", "--json", expect=ExitCode.GATES_FAILED)
    report = json.loads(result.stdout)  # exactly one document
    assert [c["sha256"] for c in report["corrupt"]] == [tag(h) for h in bad]
    assert report["corrupt"][0]["actual"] == tag(hashlib.sha256(b"tampered").hexdigest())
    assert (report["missing"], report["ok"]) == ([tag(missing)], False)
    assert result.stderr == ""
    assert all(ws.cas.path_of(h).read_bytes() == b"tampered" for h in bad)


def test_cas_verify_of_given_digests_and_a_malformed_one(invoke):
    """Only the given digests are checked; a malformed one is a usage error (exit 2), exact line."""
    ws = open_workspace()
    good = store_bytes(ws.db, ws.cas, b"good", "k")
    bad = store_bytes(ws.db, ws.cas, b"bad", "k")
    ws.cas.path_of(bad).chmod(0o644)
    ws.cas.path_of(bad).write_bytes(b"xyz")
    assert invoke("cas", "verify", tag(good)).stdout == "1 blob verified, all intact\n"
    result = invoke("cas", "verify", tag(good), "sha256:123", expect=ExitCode.INVALID_INPUT)
    assert result.stderr == ("Error [INVALID_INPUT]: 'sha256:123' is not a sha256 digest "
                             "(expected sha256:<64 lowercase hex>)\n")
    assert result.stdout == ""


def test_cas_ls(invoke):
    """ls lists digest, kind, size, dates, original name and reference count; --json has full digests."""
    assert invoke("cas", "ls").stdout == "The store is empty.\n"
    ws = open_workspace()
    hexdigest = store_bytes(ws.db, ws.cas, b"model bytes", "model", "tiny.onnx")
    add_ref(ws.db, hexdigest, "bundle", "b-1")
    [item] = json.loads(invoke("cas", "ls", "--json").stdout)["artifacts"]
    row = ws.db["artifacts"].get(hexdigest)
    assert item == {"sha256": tag(hexdigest), "kind": "model", "bytes": 11, "created_at": row["created_at"],
                    "expires_at": row["expires_at"], "original_name": "tiny.onnx", "refs": 1, "present": True}
    human = invoke("cas", "ls").stdout
    [line] = [line for line in human.splitlines() if hexdigest[:12] in line]
    assert line.split("\t") == [hexdigest[:12], "model", "11", row["created_at"][:10], row["expires_at"][:10],
                                 "tiny.onnx", "1"]


def test_gc_and_cas_name_the_home_with_verbose(invoke, fresh_home):
    """--verbose puts the home in use on stderr, and only there."""
    for args in (["gc"], ["cas", "ls"], ["cas", "verify"]):
        result = invoke("--verbose", *args)
        assert result.stderr == f"home: {fresh_home} (from EDGEGATE_HOME)\n", args
