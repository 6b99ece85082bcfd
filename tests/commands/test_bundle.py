"""`edgegate bundle create|show`, `run --bundle` and `gate check BUNDLE` through the real CLI, and a
scan of every byte a signed run writes for the signing seed."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from bundle_evidence import (
    LOOSE,
    QUICKSTART,
    entries,
    example_pipeline,
    home_signer,
    resign,
)
from conftest import write_pipeline


def test_bundle_create_default_path_human_and_json(invoke, ev, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("bundle", "create", ev.passed)
    path = tmp_path / f"{ev.passed}.bundle.zip"
    assert path.read_bytes() == ev.pass_zip.read_bytes()
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert " ".join(result.stdout.split()) == (
        f"Wrote {path} (12 files, {path.stat().st_size:,} bytes, {digest}) Run {ev.passed}: passed; signed by "
        f"{ev.key_id}. Check it with `edgegate verify {path}`.")
    doc = json.loads(invoke("bundle", "create", ev.failed[:-1], "--out", "f.zip", "--json").stdout)
    assert (doc["run_id"], doc["verdict"], doc["key_id"], doc["path"]) == (ev.failed, "failed", ev.key_id, "f.zip")
    assert sorted(doc["files"]) == sorted(n for n in entries(ev.fail_zip) if not n.startswith("summary"))


def test_bundle_create_errors(invoke, ev, tmp_path, monkeypatch):
    result = invoke("bundle", "create", "run-nope", expect=2)
    assert result.stderr == ("Error [NOT_FOUND]: no run 'run-nope' in this home (list runs with "
                             "`edgegate runs list`)\n")
    result = invoke("bundle", "create", ev.passed, "--out", tmp_path / "no" / "dir.zip", expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: --out {tmp_path / 'no' / 'dir.zip'}: directory "
                             f"{tmp_path / 'no'} does not exist\n")
    result = invoke("bundle", "create", ev.passed, "--key", "eg-0000000000000000", expect=2)
    assert result.stderr == ("Error [NOT_FOUND]: signing key eg-0000000000000000 is not known to this home "
                             "(run `edgegate keys list` to see the key ids of this home)\n")
    invoke("keys", "revoke", ev.key_id)
    result = invoke("bundle", "create", ev.passed, expect=2)
    assert result.stderr == ("Error [INVALID_INPUT]: no signing key: this home has no non-revoked key file (run "
                             "`edgegate keys generate`, or set EDGEGATE_SIGNING_KEY to a base64 Ed25519 seed)\n")


def test_bundle_show_says_it_did_not_verify(invoke, ev):
    lines = invoke("bundle", "show", ev.fail_zip).stdout.splitlines()
    assert lines[0] == f"NOT VERIFIED: {ev.fail_zip} (this only reads the bundle; run `edgegate verify {ev.fail_zip}`)"
    assert lines[1] == "  verdict: failed"
    assert lines[2].startswith(f"  run: {ev.failed} of quickstart-fail on local, finished ")
    assert f"  signer (claimed): {ev.key_id}" in lines
    assert any(ln.startswith("    raw/local-cpu/0-warmup.json  ") for ln in lines)
    doc = json.loads(invoke("bundle", "show", ev.fail_zip, "--json").stdout)
    assert (doc["verified"], doc["verdict"], doc["signer"]) == (False, "failed", ev.key_id)
    assert set(doc["entries"]) == set(entries(ev.fail_zip))


def test_gate_check_bundle_agrees_exit_0_and_1(invoke, ev, tmp_path, monkeypatch):
    result = invoke("gate", "check", ev.pass_zip)
    assert result.stdout.splitlines()[-1] == (f"PASSED: recomputed from the bundle's raw payloads; agrees with the "
                                              f"verdict signed by {ev.key_id} for run {ev.passed}")
    doc = json.loads(invoke("gate", "check", ev.fail_zip, "--json", expect=1).stdout)
    assert (doc["verdict"], doc["signed_verdict"], doc["agrees"], doc["mismatches"]) == ("failed", "failed", True, [])
    monkeypatch.setenv("EDGEGATE_HOME", str(tmp_path / "absent"))  # offline, with the public key only
    invoke("gate", "check", ev.pass_zip, "--key", ev.pem)
    assert not (tmp_path / "absent").exists()


def test_gate_check_bundle_names_the_gate_an_altered_resigned_payload_breaks(invoke, ev, tmp_path):
    files = entries(ev.fail_zip)
    changes = {}
    for name in ("raw/local-cpu/1.json", "raw/local-cpu/2.json", "raw/local-cpu/3.json"):
        payload = json.loads(files[name])
        payload["peak_rss_mb"] = 4096.0
        changes[name] = json.dumps(payload, sort_keys=True).encode()
    forged = resign(ev.fail_zip, tmp_path / "forged.zip", home_signer(ev.home), changes)
    invoke("verify", forged)  # hashes and signature hold
    result = invoke("gate", "check", forged, expect=1)
    assert result.stdout == ""
    assert result.stderr == (f"Error [VERIFICATION_FAILED]: {forged}: recomputed verdict failed disagrees with the "
                             "signed failed (gates: peak_memory_mb < 1024 on local:cpu: signed pass, recomputed fail) "
                             "(the evidence does not support the signed verdict; do not ship on it)\n")


def test_gate_check_bundle_that_does_not_verify_exits_1(invoke, ev, tmp_path):
    from edgegate_cli.evidence.keys import signer_from_seed

    forged = resign(ev.pass_zip, tmp_path / "x.zip", signer_from_seed(bytes(32)))
    result = invoke("gate", "check", forged, expect=1)
    assert result.stderr.startswith("Error [VERIFICATION_FAILED]: summary.dsse.json: signature by untrusted key ")
    result = invoke("gate", "check", ev.passed, "--key", ev.pem, expect=2)
    assert result.stderr == f"Error [INVALID_INPUT]: --key applies to a BUNDLE file, and {ev.passed} is not a file\n"


def test_run_with_bundle_writes_a_verifiable_bundle(invoke, probed_home, tmp_path):
    invoke("keys", "generate")
    out = tmp_path / "run.zip"
    result = invoke("run", example_pipeline(tmp_path, failing=True), "--bundle", out, expect=1)
    assert f"Bundle: {out} (sha256:" in " ".join(result.stderr.split())
    assert json.loads(entries(out)["summary.json"])["predicate"]["verdict"] == "failed"
    assert invoke("verify", out).stdout.startswith(f"VALID: {out}")
    invoke("gate", "check", out, expect=1)
    doc = json.loads(invoke("run", example_pipeline(tmp_path, failing=True), "--bundle", tmp_path / "j.zip",
                            "--json", expect=1).stdout)
    assert doc["bundle"]["path"] == str(tmp_path / "j.zip") and doc["bundle"]["sha256"].startswith("sha256:")


def test_run_bundle_without_a_key_fails_before_running(invoke, probed_home, tmp_path):
    result = invoke("run", QUICKSTART, "--bundle", tmp_path / "b.zip", expect=2)
    assert result.stderr.startswith("Error [INVALID_INPUT]: no signing key: this home has no non-revoked key file")
    result = invoke("run", QUICKSTART, "--key", "eg-0000000000000000", expect=2)
    assert result.stderr == ("Error [INVALID_INPUT]: --key names the key that signs the --bundle; pass --bundle "
                             "FILE too\n")
    assert invoke("runs", "list", "--json").stdout.count('"id"') == 0


def test_run_bundle_into_a_missing_directory_fails_before_running(invoke, probed_home, tmp_path):
    """The output directory is checked before any device time (a failure after the run: tests/test_cli_output)."""
    invoke("keys", "generate")
    pipe = write_pipeline(tmp_path / "p.yaml", gates="[{metric: latency_ms, op: '<=', value: 1000}]",
                          extra_policy=LOOSE)
    result = invoke("run", pipe, "--bundle", tmp_path / "missing" / "b.zip", expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: --bundle {tmp_path / 'missing' / 'b.zip'}: directory "
                             f"{tmp_path / 'missing'} does not exist (create the directory first, or give another "
                             "path)\n")
    assert json.loads(invoke("runs", "list", "--json").stdout)["runs"] == []


def test_no_byte_written_during_a_signed_run_holds_the_seed(invoke, probed_home, tmp_path, monkeypatch):
    """EDGEGATE_SIGNING_KEY set; every file in the home and the bundle, and every stdout/stderr, scanned."""
    seed = os.urandom(32)
    seed_b64 = base64.b64encode(seed).decode()
    monkeypatch.setenv("EDGEGATE_SIGNING_KEY", seed_b64)
    out = tmp_path / "signed.zip"
    pipe = write_pipeline(tmp_path / "s.yaml", gates="[{metric: latency_ms, op: '<=', value: 1000}]",
                          extra_policy=LOOSE)
    results = [invoke("run", pipe, "--bundle", out, "--json"), invoke("run", pipe, "--bundle", tmp_path / "h.zip")]
    run_id = json.loads(results[0].stdout)["run_id"]
    results += [invoke("bundle", "create", run_id, "--out", tmp_path / "c.zip", "--json"),
                invoke("bundle", "create", run_id, "--out", tmp_path / "c2.zip", "--include-model"),
                invoke("bundle", "show", out), invoke("bundle", "show", out, "--json"),
                invoke("verify", out), invoke("verify", out, "--json"),
                invoke("gate", "check", out), invoke("gate", "check", out, "--json"),
                invoke("keys", "list"), invoke("keys", "list", "--json"), invoke("runs", "show", run_id),
                invoke("bundle", "create", "nope", expect=2), invoke("bundle", "create", "nope", "--json", expect=2)]
    key_id = json.loads(invoke("keys", "list", "--json").stdout)["active"]
    assert key_id and not list((probed_home / "keys").glob("*.key"))  # an env key leaves no key file
    needles = (seed_b64.encode(), seed, base64.urlsafe_b64encode(seed), seed.hex().encode())
    written: dict[str, bytes] = {str(p): p.read_bytes() for p in [*probed_home.rglob("*"), *tmp_path.glob("*.zip")]
                                 if p.is_file()}
    assert any(name.endswith("state.db-wal") or name.endswith("state.db") for name in written)
    for i, r in enumerate(results):
        written[f"stdout {i}"], written[f"stderr {i}"] = r.stdout.encode(), r.stderr.encode()
    hits = [(name, needle[:6]) for name, data in written.items() for needle in needles if needle in data]
    assert hits == []
    assert len(written) > 30 and Path(out).stat().st_size > 0
