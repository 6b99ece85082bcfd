"""`edgegate publish` on real evidence: a proven model becomes a signed release; every refusal has its
own code, exit code and one-line message."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime

import pytest
from bundle_evidence import entries, home_signer, resign, rewrite
from conftest import write_pipeline
from release_helpers import HEAVY, MODEL, error_line, open_home, publish, publish_json

from edgegate_cli.evidence import release_manifest as rm
from edgegate_cli.evidence.keys import signer_from_seed, trusted_keys

OUTSIDER = signer_from_seed(bytes(range(100, 132)))


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def stored_manifest(home, ref=("quickstart", "1.0.0")):
    ws = open_home(home)
    row = ws.db["releases"].get(ref)
    envelope = json.loads(ws.cas.read_bytes(row["envelope_sha256"], verify=True))
    manifest = rm.verify_release_envelope(envelope, trusted_keys(ws), now=datetime.now(UTC), where="stored")
    return ws, row, envelope, manifest


def test_a_proven_model_becomes_a_signed_release(invoke, ev):
    """The manifest names the model by digest and the re-derived evidence; every blob is in the CAS and
    referenced by the release; the publish is audited."""
    doc = publish_json(invoke, "--bundle", ev.pass_zip)
    ws, row, envelope, manifest = stored_manifest(ev.home)
    model_sha = sha(MODEL.read_bytes())
    assert (doc["status"], doc["identity"], doc["forced"], doc["publisher"]) == ("published", model_sha, False,
                                                                                 ev.key_id)
    assert envelope["payloadType"] == "application/vnd.edgegate.release+json"
    assert json.loads(manifest.raw_payload)["predicateType"] == "https://edgegate.dev/release/v1"
    assert (manifest.identity, manifest.model_format, manifest.channel) == (model_sha, "onnx", "stable")
    assert manifest.files == (rm.ReleaseFile("model.onnx", model_sha, MODEL.stat().st_size),)
    evidence = manifest.evidence
    assert (evidence["bundle_sha256"], evidence["run_id"], evidence["verdict"], evidence["signer"]) == (
        sha(ev.pass_zip.read_bytes()), ev.passed, "passed", ev.key_id)
    signed_gates = json.loads(entries(ev.pass_zip)["summary.json"])["predicate"]["gates"]
    assert [(g["gate"], g["status"]) for g in evidence["gates"]] == [(g["gate"], g["status"]) for g in signed_gates]
    assert (evidence["pipeline"], evidence["backend"], evidence["devices"]) == ("quickstart", "local", ["local:cpu"])
    # Reference data: the run's own inputs, and what the model outputs on them.
    run_inputs = json.loads(ws.db["runs"].get(ev.passed)["inputs_json"])["sha256"]
    assert manifest.reference["inputs"]["sha256"] == "sha256:" + run_inputs
    import numpy as np

    outputs = ws.cas.read_bytes(manifest.reference["outputs"]["sha256"], verify=True)
    with np.load(io.BytesIO(outputs)) as npz:
        assert npz.files == ["logits"] and npz["logits"].shape == (1, 10) and npz["logits"].dtype == np.float32
    assert manifest.input_specs == {"image": {"shape": [1, 3, 64, 64], "dtype": "float32"}}
    refs = {r["sha256"] for r in ws.db["artifact_refs"].rows_where("ref_kind = 'release' AND ref_id = ?",
                                                                     ["quickstart@1.0.0"])}
    wanted = {model_sha, evidence["bundle_sha256"], manifest.reference["inputs"]["sha256"],
              manifest.reference["outputs"]["sha256"], "sha256:" + row["envelope_sha256"]}
    assert {"sha256:" + r for r in refs} == wanted
    (event,) = [json.loads(e["detail_json"]) for e in ws.db["audit_events"].rows_where("event = 'release_published'")]
    assert event == {"name": "quickstart", "version": "1.0.0", "channel": "stable", "payload_sha256":
                     manifest.payload_sha256, "identity": model_sha, "evidence_bundle_sha256":
                     evidence["bundle_sha256"], "run_id": ev.passed, "forced": False}


def test_the_payload_and_envelope_bytes_are_canonical(invoke, ev):
    publish(invoke, "--bundle", ev.pass_zip)
    _, _, envelope, manifest = stored_manifest(ev.home)
    assert manifest.raw_payload == json.dumps(json.loads(manifest.raw_payload), sort_keys=True,
                                              separators=(",", ":"), ensure_ascii=False).encode()
    ws = open_home(ev.home)
    text = ws.cas.read_bytes(ws.db["releases"].get(("quickstart", "1.0.0"))["envelope_sha256"]).decode()
    assert text == json.dumps(envelope, sort_keys=True, indent=2) + "\n"


def test_the_same_release_again_is_a_no_op(invoke, ev):
    first = publish_json(invoke, "--bundle", ev.pass_zip)
    result = publish(invoke, "--bundle", ev.pass_zip)
    assert result.stdout.splitlines()[0] == "Already published (unchanged): quickstart@1.0.0 on channel stable"
    again = publish_json(invoke, "--bundle", ev.pass_zip)
    assert again == {**first, "status": "unchanged"}
    ws = open_home(ev.home)
    assert ws.db["releases"].count == 1 and ws.db["audit_events"].count_where("event = 'release_published'") == 1


def test_human_output(invoke, ev):
    lines = publish(invoke, "--bundle", ev.pass_zip, "--compatible", "qcs6490", "--compatible", "QCS8550").stdout
    lines = lines.splitlines()
    assert lines[0] == "Published: quickstart@1.0.0 on channel stable"
    assert lines[1] == f"  model: onnx, 1 file(s), identity {sha(MODEL.read_bytes())}"
    assert lines[2].startswith(f"  evidence: passed (re-derived) for run {ev.passed} of quickstart, signed by "
                               f"{ev.key_id}, bundle sha256:")
    assert lines[3] == f"  reference data: run {ev.passed}"
    assert lines[4] == "  compatible: QCS8550, qcs6490; expires: never"
    assert lines[-1] == "Export it with `edgegate releases export quickstart@1.0.0 DIR`."


def test_run_id_uses_the_runs_bundle_or_creates_one(invoke, ev):
    ws = open_home(ev.home)
    existing = ws.db["runs"].get(ev.passed)["bundle_sha256"]
    doc = publish_json(invoke, "--run", ev.passed[:-2])  # a unique prefix works
    assert doc["evidence"]["bundle_sha256"] == "sha256:" + existing
    with ws.db.conn:
        ws.db.execute("UPDATE runs SET bundle_sha256 = NULL WHERE id = ?", [ev.passed])
    doc = publish_json(invoke, "--run", ev.passed, version="1.0.1")
    created = ws.db["runs"].get(ev.passed)["bundle_sha256"]
    assert created and doc["evidence"]["bundle_sha256"] == "sha256:" + created
    assert doc["evidence"]["verdict"] == "passed"


def test_force_publishes_without_evidence_and_is_audited(invoke, ev):
    doc = publish_json(invoke, "--force")
    assert (doc["evidence"], doc["forced"], doc["reference"]) == (None, True, None)
    _, row, _, manifest = stored_manifest(ev.home)
    assert manifest.evidence is None and row["forced"] == 1 and row["evidence_verdict"] is None
    ws = open_home(ev.home)
    (forced,) = [json.loads(e["detail_json"]) for e in ws.db["audit_events"].rows_where("event = 'release_forced'")]
    assert (forced["name"], forced["version"], forced["evidence"], forced["forced"]) == ("quickstart", "1.0.0",
                                                                                           "none", True)
    text = publish(invoke, "--force", version="1.0.1").stdout
    assert "  evidence: none (--force; audited): agents that require evidence refuse this release" in text


def test_reference_data_file(invoke, ev, tmp_path):
    import numpy as np

    np.savez(tmp_path / "ref.npz", image=np.ones((1, 3, 64, 64), dtype=np.float32))
    doc = publish_json(invoke, "--bundle", ev.pass_zip, "--reference-data", tmp_path / "ref.npz")
    _, _, _, manifest = stored_manifest(ev.home)
    assert doc["reference"] == str(tmp_path / "ref.npz")
    assert manifest.reference["inputs"] == {"sha256": sha((tmp_path / "ref.npz").read_bytes()),
                                            "size": (tmp_path / "ref.npz").stat().st_size}
    assert manifest.input_specs == {"image": {"shape": [1, 3, 64, 64], "dtype": "float32"}}
    import onnxruntime as ort

    expected = ort.InferenceSession(str(MODEL)).run(["logits"], {"image": np.ones((1, 3, 64, 64), np.float32)})[0]
    outputs = open_home(ev.home).cas.read_bytes(manifest.reference["outputs"]["sha256"], verify=True)
    with np.load(io.BytesIO(outputs)) as npz:
        np.testing.assert_allclose(npz["logits"], expected, rtol=1e-5, atol=1e-6)
    np.savez(tmp_path / "bad.npz", wrong=np.ones(3))
    result = publish(invoke, "--bundle", ev.pass_zip, "--reference-data", tmp_path / "bad.npz", version="1.0.1",
                     expect=2)
    assert error_line(result) == (f"Error [INVALID_INPUT]: --reference-data {tmp_path / 'bad.npz'}: lacks model "
                                  "input(s) image (it has wrong) (key the .npz by model input name)")


# -- refusals (exit 1), each with its own code -----------------------------------------------------------

def test_bundle_of_another_model_is_digest_mismatch(invoke, ev):
    result = publish(invoke, "--bundle", ev.pass_zip, model=HEAVY, expect=1)
    assert error_line(result) == (
        f"Error [DIGEST_MISMATCH]: {ev.pass_zip}: the evidence is of model {sha(MODEL.read_bytes())}, not of this "
        f"model ({sha(HEAVY.read_bytes())}) (pass the bundle of a run of this exact model (its files, byte for "
        "byte))")


def test_failed_bundle_names_the_failed_gate(invoke, ev):
    value = json.loads(entries(ev.fail_zip)["summary.json"])["predicate"]["gates"][0]["value"]
    result = publish(invoke, "--bundle", ev.fail_zip, expect=1)
    assert error_line(result) == (
        f"Error [EVIDENCE_FAILED]: {ev.fail_zip}: the evidence failed gate latency_ms <= 0.001 on local:cpu = "
        f"{value:.4g} ms (verdict re-derived from the bundle: failed) (only a model whose gates passed can be "
        "published (or --force, audited))")


def test_bundle_signed_by_an_untrusted_key(invoke, ev, tmp_path):
    path = resign(ev.pass_zip, tmp_path / "outsider.zip", OUTSIDER)
    assert error_line(publish(invoke, "--bundle", path, expect=1)) == (
        f"Error [EVIDENCE_UNTRUSTED]: {path}: signed by untrusted key {OUTSIDER.key_id} (publish from the home "
        "whose key signed the evidence, or re-bundle the run with a current key)")


def test_bundle_signed_by_a_key_revoked_since_is_refused(invoke, ev):
    """`verify` accepts it (revoked after signing); publish wants a key unrevoked now."""
    invoke("keys", "revoke", ev.key_id)
    invoke("keys", "generate")
    invoke("verify", ev.pass_zip)
    revoked_at = open_home(ev.home).db["signing_keys"].get(ev.key_id)["revoked_at"]
    assert error_line(publish(invoke, "--bundle", ev.pass_zip, expect=1)) == (
        f"Error [EVIDENCE_UNTRUSTED]: {ev.pass_zip}: signed by key {ev.key_id}, revoked at {revoked_at} (publish "
        "from the home whose key signed the evidence, or re-bundle the run with a current key)")


def test_tampered_bundle_is_evidence_invalid(invoke, ev, tmp_path):
    files = entries(ev.pass_zip)
    metrics = files["metrics.json"].replace(b'"latency_ms"', b'"latency_mz"', 1)
    path = rewrite(ev.pass_zip, tmp_path / "tampered.zip", {"metrics.json": metrics})
    assert error_line(publish(invoke, "--bundle", path, expect=1)) == (
        f"Error [EVIDENCE_INVALID]: {path}: metrics.json: content is {sha(metrics)}, summary.json lists "
        f"{sha(files['metrics.json'])} (modified after signing) (the evidence does not verify; do not ship on it)")


def test_bundle_re_signed_with_a_flipped_verdict_is_caught_by_re_derivation(invoke, ev, tmp_path):
    """A trusted key signs a failed run as passed: the signature is fine, the raw payloads say otherwise."""
    files = entries(ev.fail_zip)
    summary = json.loads(files["summary.json"])
    summary["predicate"]["verdict"] = "passed"
    for gate in summary["predicate"]["gates"]:
        gate["status"] = "pass"
    gates = json.loads(files["gates.json"])
    gates["verdict"] = "passed"
    for gate in gates["gates"]:
        gate["status"] = "pass"
    from edgegate_cli.canonical import canonical_json

    path = resign(ev.fail_zip, tmp_path / "flipped.zip", home_signer(ev.home),
                  {"summary.json": canonical_json(summary), "gates.json": canonical_json(gates)})
    invoke("verify", path)  # the signature and every hash check out
    assert error_line(publish(invoke, "--bundle", path, expect=1)) == (
        f"Error [EVIDENCE_INCONSISTENT]: {path}: the verdict re-derived from the raw payloads is failed, but the "
        "bundle is signed as passed (latency_ms <= 0.001 on local:cpu: signed pass, recomputed fail) (the signed "
        "verdict is not what its evidence supports; do not ship on it)")


def test_a_release_envelope_is_not_evidence(invoke, ev, tmp_path):
    """The reverse of `releases verify` refusing an evidence envelope: a bundle whose envelope carries the
    release payloadType is refused where evidence is expected."""
    path = resign(ev.pass_zip, tmp_path / "typed.zip", home_signer(ev.home),
                  payload_type="application/vnd.edgegate.release+json")
    assert error_line(publish(invoke, "--bundle", path, expect=1)) == (
        f"Error [EVIDENCE_INVALID]: {path}: payloadType is application/vnd.edgegate.release+json, expected "
        "application/vnd.in-toto+json (the bundle was altered after signing; do not ship on it)")


def test_no_evidence_is_not_proven(invoke, ev):
    assert error_line(publish(invoke, expect=1)) == (
        "Error [NOT_PROVEN]: quickstart@1.0.0: no evidence given; only a proven model becomes a release (pass "
        "--bundle FILE or --run RUN_ID (or --force to publish without evidence, audited))")


def test_a_run_that_ended_in_error_is_not_proven(invoke, ev, tmp_path):
    pipeline = write_pipeline(tmp_path / "needs-ttft.yaml", gates="[{metric: ttft_ms, op: '<=', value: 100}]")
    invoke("run", pipeline, expect=3)
    (run,) = open_home(ev.home).db["runs"].rows_where("pipeline = 'needs-ttft'")
    assert error_line(publish(invoke, "--run", run["id"], expect=1)) == (
        f"Error [NOT_PROVEN]: run {run['id']} ended in error (MISSING_REQUIRED_METRIC): it proves nothing (re-run "
        "the pipeline until it gives a verdict)")


def test_a_bundle_without_a_verdict_is_not_proven(invoke, ev, tmp_path):
    """A run that measured but cannot decide a required gate (60 samples, too few for a p90) ends `error`; its
    bundle is valid evidence of that, and proves nothing."""
    pipeline = write_pipeline(tmp_path / "short.yaml", gates="[{metric: latency_p90_ms, op: '<=', value: 250}]",
                              iterations=20, repeats=3)
    invoke("run", pipeline, "--bundle", tmp_path / "short.zip", expect=3)
    line = error_line(publish(invoke, "--bundle", tmp_path / "short.zip", expect=1))
    assert line.startswith(f"Error [NOT_PROVEN]: {tmp_path / 'short.zip'}: the evidence reaches no verdict "
                           "(MISSING_REQUIRED_METRIC: ")
    assert line.endswith("(re-run the pipeline until it gives a verdict, then publish that run's bundle)")


# -- invalid input (exit 2) --------------------------------------------------------------------------------

@pytest.mark.parametrize("version,shown", [("1.2", "1.2"), ("v1.2.3", "v1.2.3"), ("1.0.0\n", "'1.0.0\\n'"),
                                           ("", "''"), ("1.0.0-", "1.0.0-")])
def test_invalid_semver(invoke, ev, version, shown):
    result = publish(invoke, "--force", version=version, expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: --version is {shown}, not a semantic version "
                             "MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] (e.g. 1.2.0, 2.0.0-rc.1; no leading 'v')\n")


@pytest.mark.parametrize("name,shown", [("../up", "../up"), ("a/b", "a/b"), ("Quick", "Quick"), ("a b", "a b"),
                                        (".hidden", ".hidden"), ("x\x1b[2J", "'x\\x1b[2J'"), ("a" * 65, "a" * 65)])
def test_name_with_path_or_control_characters(invoke, ev, name, shown):
    result = publish(invoke, "--force", name=name, expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: --name is {shown}: use 1-64 of a-z, 0-9, '.', '_', '-', "
                             "starting with a letter or digit (no '/', spaces or upper case)\n")
    assert "\x1b" not in result.stderr


def test_version_reuse_with_other_bytes_is_release_exists(invoke, ev):
    first = publish_json(invoke, "--bundle", ev.pass_zip)
    result = publish(invoke, "--force", expect=2)
    assert error_line(result) == (
        f"Error [RELEASE_EXISTS]: release quickstart@1.0.0 is already published with other content "
        f"({first['payload_sha256']}); versions are immutable (publish a new version (e.g. bump the patch number))")
    result = publish(invoke, "--force", version="1.0.0+build.7", expect=2)
    assert error_line(result) == (
        "Error [RELEASE_EXISTS]: release quickstart@1.0.0+build.7: quickstart@1.0.0 is already published and "
        "1.0.0+build.7 differs from it only in build metadata (the same semver precedence) (publish a version of "
        "higher precedence)")
    assert open_home(ev.home).db["releases"].count == 1


def test_argument_conflicts_and_missing_files(invoke, ev, tmp_path):
    cases = {
        ("--bundle", ev.pass_zip, "--run", ev.passed): "Error [INVALID_INPUT]: --bundle and --run both name "
                                                       "evidence: give one",
        ("--bundle", ev.pass_zip, "--force"): "Error [INVALID_INPUT]: --force publishes without evidence: drop "
                                              "--bundle/--run, or drop --force",
        ("--bundle", tmp_path / "nope.zip"): f"Error [INVALID_INPUT]: --bundle {tmp_path / 'nope.zip'}: no such file",
        ("--force", "--channel", "Beta"): "Error [INVALID_INPUT]: --channel is Beta: use 1-64 of a-z, 0-9, '.', "
                                          "'_', '-', starting with a letter or digit (no '/', spaces or upper case)",
        ("--force", "--compatible", "qcs/6490"): "Error [INVALID_INPUT]: --compatible is qcs/6490: a device type is "
                                                 "1-64 of letters, digits, '.', '_', '-' (e.g. qcs6490)",
        ("--force", "--expires-at", "2020-01-01T00:00:00Z"): "Error [INVALID_INPUT]: --expires-at "
                                                             "2020-01-01T00:00:00Z is not in the future",
    }
    got = {args: error_line(publish(invoke, *args, expect=2)) for args in cases}
    assert got == cases
    result = publish(invoke, "--force", model=tmp_path / "missing.onnx", expect=2)
    assert error_line(result) == f"Error [INVALID_INPUT]: {tmp_path / 'missing.onnx'}: no such file or directory"
    assert open_home(ev.home).db["releases"].count == 0


def test_expiry_is_signed(invoke, ev):
    doc = publish_json(invoke, "--force", "--expires-at", "2999-01-02T03:04:05+01:00")
    assert doc["expires_at"] == "2999-01-02T02:04:05.000000Z"
    _, row, _, manifest = stored_manifest(ev.home)
    assert manifest.expires_at == row["expires_at"] == "2999-01-02T02:04:05.000000Z"


def test_a_directory_model_is_identified_as_run_identifies_it(invoke, ev, tmp_path):
    """onnx_external: files under their relative paths, identity = sha256 of the canonical {path: sha256}."""
    from edgegate_cli.canonical import canonical_json

    model_dir = tmp_path / "ext"
    model_dir.mkdir()
    import onnx

    model = onnx.load(str(MODEL))
    onnx.save_model(model, str(model_dir / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.data", size_threshold=0)
    doc = publish_json(invoke, "--force", model=model_dir)
    files = {f: hashlib.sha256((model_dir / f).read_bytes()).hexdigest() for f in ("model.data", "model.onnx")}
    assert [f["path"] for f in doc["files"]] == ["model.data", "model.onnx"]
    assert doc["identity"] == sha(canonical_json(files)) and doc["model_format"] == "onnx_external"
    pipeline = write_pipeline(tmp_path / "ext.yaml", gates="[{metric: latency_ms, op: '<=', value: 250}]",
                              iterations=5, model=str(model_dir))
    run_doc = json.loads(invoke("run", pipeline, "--json", expect=None).stdout)
    assert run_doc["model"]["sha256"] == doc["identity"].removeprefix("sha256:")


def test_two_processes_publishing_one_version_at_once(ev, tmp_path):
    """Whatever the interleaving: other bytes -> one wins, one RELEASE_EXISTS; the same bytes -> one
    published, one no-op. Never two rows, never a half-written one."""
    import subprocess
    import sys

    def start(version, *args):
        return subprocess.Popen([sys.executable, "-m", "edgegate_cli.cli", "publish", MODEL, "--name", "race",
                                 "--version", version, "--force", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    procs = [start("1.0.0", "--channel", "stable"), start("1.0.0", "--channel", "beta")]
    outcomes = sorted((p.communicate(timeout=120)[1], p.returncode) for p in procs)
    assert sorted(code for _, code in outcomes) == [0, 2]
    loser = next(err for err, code in outcomes if code == 2)
    assert loser.splitlines()[-1].startswith("Error [RELEASE_EXISTS]: release race@1.0.0 is already published "
                                             "with other content")
    procs = [start("2.0.0"), start("2.0.0")]
    outputs = sorted(p.communicate(timeout=120)[0].splitlines()[0] for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == ["Already published (unchanged): race@2.0.0 on channel stable",
                       "Published: race@2.0.0 on channel stable"]
    ws = open_home(ev.home)
    assert ws.db["releases"].count == 2
    assert ws.db["audit_events"].count_where("event = 'release_published'") == 2
